package cli

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/agent/facts"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// newAgentCmd runs the agent of one node.
func newAgentCmd(e *env) *cobra.Command {
	var (
		server, stateDir, nodeID, token, trusted, accept string
		labels                                           []string
		heartbeat                                        time.Duration
		sim                                              bool
		simFamily, simClass, simVersion                  string
		simStep                                          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "agent --server URL --state-dir DIR",
		Short: "Run the agent of this node: report facts, execute steps, report results",
		Long: `Run the agent of this node. It registers its facts with the server,
long-polls for steps, executes them through the drivers of this OS with a
write-ahead journal in --state-dir (a step interrupted by a crash or a
reboot is verified, never blindly run again), runs the plan's probes and
reports what really happened.

--sim runs a simulated node instead (simulated packages and reboots, kept
in --state-dir), for demos, tests and benchmarks.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if server == "" {
				server = e.getenv("DROVER_SERVER")
			}
			if token == "" {
				token = e.getenv("DROVER_AGENT_TOKEN")
			}
			switch {
			case server == "":
				return usagef("agent: --server is required")
			case stateDir == "":
				return usagef("agent: --state-dir is required")
			case token == "":
				return usagef("agent: an agent token is required (--token or DROVER_AGENT_TOKEN)")
			}
			if nodeID == "" {
				h, err := os.Hostname()
				if err != nil {
					return exitf(ExitError, "node id: %w", err)
				}
				nodeID = h
			}
			if err := fleet.ValidID(nodeID); err != nil {
				return usagef("agent: node id %q: %v", nodeID, err)
			}
			lbl := map[string]string{}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return usagef("agent: --label %q: want KEY=VALUE", l)
				}
				lbl[k] = v
			}
			var accepts []plan.ActionKind
			if accept != "" {
				for _, k := range strings.Split(accept, ",") {
					accepts = append(accepts, plan.ActionKind(strings.TrimSpace(k)))
				}
			}
			if err := os.MkdirAll(stateDir, 0o700); err != nil {
				return exitf(ExitError, "state dir: %w", err)
			}
			cfg := agent.Config{ServerURL: server, StateDir: stateDir, NodeID: nodeID, Token: token, Labels: lbl,
				Accepts: accepts, Heartbeat: heartbeat, Logger: e.log, Version: buildVersion().Version,
				HTTPClient: &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 2,
					IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: 0}}}
			if sim {
				if err := simAgent(&cfg, nodeID, simFamily, simVersion, simClass, simStep); err != nil {
					return exitf(ExitError, "%w", err)
				}
			} else {
				hostAgent(&cfg, trusted)
			}
			fmt.Fprintf(e.stderr, "drover agent %s: node %s, server %s, journal in %s\n", buildVersion().Version, nodeID, server, stateDir)
			if err := agent.Run(cmd.Context(), cfg); err != nil && cmd.Context().Err() == nil {
				return exitf(ExitError, "%w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "server URL (default $DROVER_SERVER)")
	f.StringVar(&stateDir, "state-dir", "", "directory of the step journal; must survive reboots")
	f.StringVar(&nodeID, "node-id", "", "this node's name (default the host name)")
	f.StringVar(&token, "token", "", "agent token (default $DROVER_AGENT_TOKEN)")
	f.StringArrayVar(&labels, "label", nil, "initial label KEY=VALUE (repeatable; the server keeps its own after registration)")
	f.StringVar(&accept, "accept", "", "comma-separated action kinds this agent performs (default every kind but script)")
	f.StringVar(&trusted, "trusted-dir", "", "run script artifacts found in this root-owned directory (closed fleets; production uses signed artifacts)")
	f.DurationVar(&heartbeat, "heartbeat", 10*time.Second, "least time between two polls")
	f.BoolVar(&sim, "sim", false, "run a simulated node (demos, tests, benchmarks)")
	f.StringVar(&simFamily, "sim-family", "debian", "simulated os family")
	f.StringVar(&simVersion, "sim-version", "12", "simulated os version")
	f.StringVar(&simClass, "sim-class", "gen1", "simulated hardware class")
	f.DurationVar(&simStep, "sim-step", time.Second, "how long a simulated step takes")
	return cmd
}

// hostAgent configures the drivers, facts and probes of this machine.
func hostAgent(cfg *agent.Config, trusted string) {
	runner := driver.NewExecRunner(30 * time.Minute)
	var verifier driver.Verifier
	if trusted != "" {
		verifier = driver.DirVerifier{Dir: trusted}
	}
	cfg.Runner = runner
	cfg.Facts = func(ctx context.Context) (fleet.Facts, error) { return facts.Collect(ctx, runner) }
	cfg.Drivers = hostRegistry(cfg.Facts, runner, verifier)
	rb := driver.NewRebooter(runner, runtime.GOOS, driver.OSFileSystem{})
	cfg.Rebooter = rebooter{rb}
	cfg.BootID = rb.BootID
}

// hostRegistry builds the host's drivers from its os family.
func hostRegistry(collect func(context.Context) (fleet.Facts, error), r driver.Runner, v driver.Verifier) *driver.Registry {
	f, err := collect(context.Background())
	if err != nil {
		f = fleet.Facts{} // no package driver: package steps fail with a clear error
	}
	return driver.ForHost(f, driver.HostOptions{Runner: r, Verifier: v})
}

// rebooter adapts the driver's rebooter to the agent's interface.
type rebooter struct{ r *driver.Rebooter }

func (r rebooter) Reboot(ctx context.Context, _ string) error { return r.r.Reboot(ctx) }

// simAgent configures a simulated node kept in the state directory.
func simAgent(cfg *agent.Config, id, family, ver, class string, step time.Duration) error {
	st := driver.NewSimState(id, family, "6.1.0-26-amd64", map[string]string{"openssl": "3.0.14", "telemetry-agent": "7.1.4"})
	st.ApplyDelay = step
	if err := st.Persist(filepath.Join(cfg.StateDir, "sim.json")); err != nil {
		return fmt.Errorf("sim state: %w", err)
	}
	reg := &driver.Registry{}
	sim := driver.NewSim(st)
	for _, k := range []plan.ActionKind{plan.ActionPackage, plan.ActionKernel, plan.ActionLivePatch, plan.ActionServiceRestart,
		plan.ActionContainerRuntime, plan.ActionKubernetesNode, plan.ActionScript} {
		reg.Register(k, sim)
	}
	base := fleet.Facts{OS: fleet.OS{Family: family, Version: ver}, Arch: runtime.GOARCH, Hardware: fleet.Hardware{Class: class}}
	cfg.Drivers = reg
	cfg.Facts = func(context.Context) (fleet.Facts, error) { return st.Facts(base), nil }
	cfg.Rebooter = st
	cfg.Runner = st.Runner(driver.NewExecRunner(time.Minute))
	cfg.ProbeHTTPClient = &http.Client{Transport: st.Transport(), Timeout: 10 * time.Second}
	return nil
}
