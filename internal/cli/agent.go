package cli

import (
	"context"
	"fmt"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/agent/facts"
	"github.com/drover-dev/drover/internal/artifact"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// newAgentCmd runs the agent of one node.
func newAgentCmd(e *env) *cobra.Command {
	var (
		server, stateDir, nodeID, token, trusted, accept string
		enrollToken, caHash                              string
		artifactRoot, artifactURL                        string
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

Scripts and kpatch live patches run only once verified: --artifact-root
pins the root.json of the operator's signed artifact repository (drover
artifact init), whose metadata and targets are fetched from the server
(or --artifact-url) and checked before anything runs.

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
			if enrollToken == "" {
				enrollToken = e.getenv("DROVER_ENROLL_TOKEN")
			}
			if caHash == "" {
				caHash = e.getenv("DROVER_CA_HASH")
			}
			secure := strings.HasPrefix(server, "https://")
			switch {
			case server == "":
				return usagef("agent: --server is required")
			case stateDir == "":
				return usagef("agent: --state-dir is required")
			case !secure && token == "":
				return usagef("agent: an https:// server (client certificates: --enroll-token and --ca-hash) or, insecure, an agent token (--token) is required")
			case secure && token != "":
				return usagef("agent: --token is the insecure shared agent token of plain-HTTP test servers; an https:// server takes --enroll-token and --ca-hash")
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
			if secure {
				id, err := agentIdentity(cmd.Context(), e, &cfg, enrollToken, caHash)
				if err != nil {
					return err
				}
				go func() { _ = id.RenewLoop(cmd.Context()) }()
			}
			if sim {
				if err := simAgent(&cfg, nodeID, simFamily, simVersion, simClass, simStep); err != nil {
					return exitf(ExitError, "%w", err)
				}
			} else {
				verifier, err := agentVerifier(e, &cfg, trusted, artifactRoot, artifactURL)
				if err != nil {
					return err
				}
				hostAgent(&cfg, verifier)
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
	f.StringVar(&token, "token", "", "INSECURE shared agent token of a plain-HTTP test server (default $DROVER_AGENT_TOKEN)")
	f.StringVar(&enrollToken, "enroll-token", "", "single-use enrolment token (drover token create), needed until enrolled (default $DROVER_ENROLL_TOKEN)")
	f.StringVar(&caHash, "ca-hash", "", "pin of the server's CA, sha256:... (printed by drover server and drover token create; default $DROVER_CA_HASH)")
	f.StringArrayVar(&labels, "label", nil, "initial label KEY=VALUE (repeatable; the server keeps its own after registration)")
	f.StringVar(&accept, "accept", "", "comma-separated action kinds this agent performs (default every kind but script)")
	f.StringVar(&trusted, "trusted-dir", "", "run script artifacts found in this root-owned directory (closed fleets; production uses signed artifacts)")
	f.StringVar(&artifactRoot, "artifact-root", "", "pinned root.json of the signed artifact repository: run only artifacts it verifies")
	f.StringVar(&artifactURL, "artifact-url", "", "base URL of the signed artifact repository (default SERVER/v1/artifacts)")
	f.DurationVar(&heartbeat, "heartbeat", 10*time.Second, "least time between two polls")
	f.BoolVar(&sim, "sim", false, "run a simulated node (demos, tests, benchmarks)")
	f.StringVar(&simFamily, "sim-family", "debian", "simulated os family")
	f.StringVar(&simVersion, "sim-version", "12", "simulated os version")
	f.StringVar(&simClass, "sim-class", "gen1", "simulated hardware class")
	f.DurationVar(&simStep, "sim-step", time.Second, "how long a simulated step takes")
	return cmd
}

// agentVerifier builds the artifact verifier of a host agent: the signed
// repository's (--artifact-root), the trusted directory's (--trusted-dir),
// or none (every script and kpatch load is refused).
func agentVerifier(e *env, cfg *agent.Config, trusted, root, url string) (driver.Verifier, error) {
	switch {
	case root != "" && trusted != "":
		return nil, usagef("agent: --artifact-root and --trusted-dir exclude each other")
	case root == "" && url != "":
		return nil, usagef("agent: --artifact-url needs --artifact-root")
	case trusted != "":
		return driver.DirVerifier{Dir: trusted}, nil
	case root == "":
		return nil, nil
	}
	pinned, err := os.ReadFile(root)
	if err != nil {
		return nil, exitf(ExitError, "agent: --artifact-root: %w", err)
	}
	if url == "" {
		url = strings.TrimRight(cfg.ServerURL, "/") + "/v1/artifacts"
	}
	// The agent's credentials go to its own server only, never to a mirror.
	header := http.Header{}
	if sameOrigin(url, cfg.ServerURL) {
		header.Set("Authorization", "Bearer "+cfg.Token)
		header.Set("Drover-Node", cfg.NodeID)
	}
	client := &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{Proxy: http.ProxyFromEnvironment}}
	if cfg.Token == "" && sameOrigin(url, cfg.ServerURL) {
		// An enrolled agent fetches from its server with its certificate.
		header = http.Header{}
		client.Transport = cfg.HTTPClient.Transport
	}
	v, err := artifact.NewVerifier(artifact.VerifierConfig{TrustedRoot: pinned, BaseURL: url,
		Dir: filepath.Join(cfg.StateDir, "artifacts"), Header: header, Logger: e.log.With("component", "artifacts"),
		Client: client})
	if err != nil {
		return nil, exitf(ExitError, "agent: %w", err)
	}
	return v, nil
}

// sameOrigin reports whether URLs a and b have the same scheme and host.
func sameOrigin(a, b string) bool {
	ua, err1 := neturl.Parse(a)
	ub, err2 := neturl.Parse(b)
	return err1 == nil && err2 == nil && ua.Scheme == ub.Scheme && ua.Host == ub.Host
}

// hostAgent configures the drivers, facts and probes of this machine;
// verifier nil refuses every artifact.
func hostAgent(cfg *agent.Config, verifier driver.Verifier) {
	runner := driver.NewExecRunner(30 * time.Minute)
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
