package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/agent/agentcmd"
	"github.com/drover-dev/drover/internal/bench"
)

// newBenchCmd groups the end-to-end benchmarks.
func newBenchCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Measure drover end to end on this machine (loopback only)", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
	cmd.AddCommand(newBenchRolloutCmd(e), newBenchAgentsCmd(e), newBenchServerCmd(e))
	return cmd
}

// self is how the benchmarks start this binary again.
func self() (bench.Command, error) {
	exe, err := os.Executable()
	if err != nil {
		return bench.Command{}, exitf(ExitError, "bench: own executable: %w", err)
	}
	return bench.Command{Path: exe}, nil
}

func newBenchRolloutCmd(e *env) *cobra.Command {
	cfg := bench.RolloutConfig{}
	var asJSON bool
	var runs int
	cmd := &cobra.Command{Use: "rollout --agents N --batch K",
		Short: "Roll a no-op script across N real agent processes, K at a time, and report the scheduler's overhead",
		Long: `Start a server (SQLite in a temporary directory) and N agents as processes
of this binary, each running the trusted artifact "true" (a copy of
/bin/true) as its step and "test -e /tmp" as its node probe. Once every
agent polls, create a rollout of one wave with maxInFlight K, and report the
time from creation to success against the physical limit: ceil(N/K) times
the measured time of /bin/true plus the probe.

With --step D each node's step runs the trusted artifact "sleep" (a copy of
/bin/sleep) for D instead; with --probe D each node's probe must keep
passing for D (the plan's minHealthy soak) before it succeeds. The makespan
is then held against the ideal ceil(N/K) x (step + probe), and the result
adds idealSeconds and ratio (makespan / ideal); progress prints a line per
round of K nodes done.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := self()
			if err != nil {
				return err
			}
			cfg.Drover = c
			if !asJSON {
				cfg.Progress = e.stderr
			}
			var out []bench.RolloutResult
			for i := range max(runs, 1) {
				res, err := bench.RunRollout(cmd.Context(), cfg)
				if err != nil {
					return exitf(ExitError, "bench rollout (run %d): %w", i+1, err)
				}
				out = append(out, res)
				if !asJSON {
					printFields(e.stdout, fmt.Sprintf("run %d", i+1), res)
				}
			}
			if asJSON {
				return writeJSONOut(e.stdout, out)
			}
			return nil
		}}
	f := cmd.Flags()
	f.IntVar(&cfg.Agents, "agents", 20, "agent processes")
	f.IntVar(&cfg.Batch, "batch", 5, "nodes in flight (the plan's maxInFlight)")
	f.IntVar(&runs, "runs", 1, "repeat the whole benchmark this many times")
	f.DurationVar(&cfg.PollWait, "poll-wait", 5*time.Second, "server pollWait")
	f.DurationVar(&cfg.Tick, "tick", 100*time.Millisecond, "server scheduler tick")
	f.DurationVar(&cfg.Step, "step", 0, "each node's step takes this long (artifact \"sleep\"; 0: /bin/true)")
	f.DurationVar(&cfg.Probe, "probe", 0, "each node's probe must pass this long (minHealthy soak); with --step, report the ratio to ceil(N/K) x (step + probe)")
	f.StringVar(&cfg.WorkDir, "work-dir", "", "keep the server database, agent journals and logs here (default a temporary directory, removed)")
	f.StringVar(&cfg.CPUProfile, "server-cpuprofile", "", "write the server's CPU profile here")
	f.BoolVar(&cfg.HostFacts, "host-facts", false, "let agents collect this host's real facts (by default their PATH holds only true and test)")
	f.BoolVar(&asJSON, "json", false, "print the results as JSON")
	return cmd
}

func newBenchAgentsCmd(e *env) *cobra.Command {
	cfg := bench.AgentsConfig{}
	var asJSON bool
	cmd := &cobra.Command{Use: "agents --agents N --heartbeat D --duration D",
		Short: "Long-poll one server with N lightweight simulated agents; report its memory, CPU and API latency",
		Long: `Start a server (SQLite in a temporary directory, pollWait = heartbeat) as a
process of this binary, register N lightweight agents from this process
(real HTTP clients on keep-alive loopback connections spread over several
127.0.0.x source addresses) that long-poll at the heartbeat, and measure
the server's RSS, Go heap and CPU over --duration. Then create a rollout
over the fleet (held for approval, so nothing is dispatched) and measure
REST latency per route under a bounded load from a few goroutines.

With --servers N (N > 1) and --store postgres://... (an empty database) N
servers share the PostgreSQL database; agent i registers with and polls
server i mod N and moves to the next server when a poll fails. With
--kill-window D a last phase runs REST reads spread over the servers for
D (a failed read is retried on the next server) and kills the leading
server (SIGKILL) a third of the way in; it reports read latency before,
during (one heartbeat) and after the kill, the time until a survivor
leads, the agents that moved and the survivors' polls, CPU and RSS.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := self()
			if err != nil {
				return err
			}
			cfg.Drover = c
			if !asJSON {
				cfg.Progress = e.stderr
			}
			res, err := bench.RunAgents(cmd.Context(), cfg)
			if err != nil {
				return exitf(ExitError, "bench agents: %w", err)
			}
			if asJSON {
				return writeJSONOut(e.stdout, res)
			}
			printFields(e.stdout, "agents", res)
			return nil
		}}
	f := cmd.Flags()
	f.IntVar(&cfg.Agents, "agents", 1000, "simulated agents")
	f.DurationVar(&cfg.Heartbeat, "heartbeat", 10*time.Second, "poll period (the server's pollWait is set to it)")
	f.DurationVar(&cfg.Duration, "duration", 60*time.Second, "measurement window of the idle fleet")
	f.DurationVar(&cfg.APIDuration, "api-duration", 20*time.Second, "REST load window (0 skips it)")
	f.IntVar(&cfg.APIWorkers, "api-workers", 4, "goroutines issuing REST requests")
	f.DurationVar(&cfg.APIPause, "api-pause", 50*time.Millisecond, "pause of each worker between two requests")
	f.IntVar(&cfg.SourceAddrs, "source-addrs", 4, "loopback source addresses 127.0.0.2.. to spread connections over")
	f.StringVar(&cfg.WorkDir, "work-dir", "", "keep the server database and log here (default a temporary directory, removed)")
	f.StringVar(&cfg.CPUProfile, "server-cpuprofile", "", "write the (first) server's CPU profile here")
	f.StringVar(&cfg.MemProfile, "server-memprofile", "", "write the (first) server's allocations profile here")
	f.IntVar(&cfg.Servers, "servers", 1, "server processes (more than one needs --store)")
	f.StringVar(&cfg.Store, "store", "", "URL of an empty PostgreSQL database the servers share (default SQLite in the work directory)")
	f.BoolVar(&cfg.HTTP2, "http2", false, "agents speak prior-knowledge HTTP/2 (h2c), many polls sharing a connection (up to 250 each): for more agents than the open-file limit allows connections")
	f.DurationVar(&cfg.KillWindow, "kill-window", 0, "last phase: REST reads over the servers for this long, the leader killed a third of the way in (0 skips it)")
	f.BoolVar(&asJSON, "json", false, "print the results as JSON")
	return cmd
}

// newBenchServerCmd is the server process the benchmarks start: SQLite
// in --data-dir, one admin user, tokens from the environment.
func newBenchServerCmd(e *env) *cobra.Command {
	o := bench.ServerOptions{}
	cmd := &cobra.Command{Use: "server", Short: "The benchmarks' server process", Hidden: true, Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.AgentToken, o.UserToken = e.getenv(bench.EnvAgentToken), e.getenv(bench.EnvUserToken)
			o.Database = e.getenv(bench.EnvDatabase)
			o.Logger = agentcmd.NewLogger(e.getenv("DROVER_LOG"), e.stderr)
			err := bench.Serve(cmd.Context(), o, func(addr string) {
				fmt.Fprintf(e.stdout, "drover bench server listening on http://%s\n", addr)
			})
			if err != nil {
				return exitf(ExitError, "%w", err)
			}
			return nil
		}}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data-dir", "", "directory of the SQLite database")
	f.StringVar(&o.Listen, "listen", "127.0.0.1:0", "host:port")
	f.DurationVar(&o.PollWait, "poll-wait", 5*time.Second, "pollWait")
	f.DurationVar(&o.Tick, "tick", 100*time.Millisecond, "scheduler tick")
	f.DurationVar(&o.Lease, "lease", 30*time.Second, "agent lease")
	f.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile here")
	f.BoolVar(&o.HTTP2, "http2", false, "also serve prior-knowledge HTTP/2 (h2c)")
	f.StringVar(&o.MemProfile, "memprofile", "", "write the allocations profile here at the end")
	f.StringVar(&o.AuditKey, "audit-key", "", "audit key file (servers sharing a database share it; default DATADIR/audit.key)")
	return cmd
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return exitf(ExitError, "bench: %w", err)
	}
	return nil
}

// printFields prints a result struct one field a line, named as in JSON.
func printFields(w io.Writer, title string, v any) {
	fmt.Fprintf(w, "%s:\n", title)
	rv := reflect.ValueOf(v)
	rt := rv.Type()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			name = rt.Field(i).Name
		}
		fv := rv.Field(i)
		switch fv.Kind() {
		case reflect.Float64:
			fmt.Fprintf(w, "  %-28s %.3f\n", name, fv.Float())
		case reflect.Map, reflect.Slice, reflect.Struct:
			b, _ := json.Marshal(fv.Interface())
			fmt.Fprintf(w, "  %-28s %s\n", name, b)
		default:
			fmt.Fprintf(w, "  %-28s %v\n", name, fv.Interface())
		}
	}
}
