// Package agentcmd is the command line of the agent alone: the slim
// drover-agent binary (cmd/drover-agent) runs it. It takes the flags and
// environment of `drover agent`, plus those of the Kubernetes node driver,
// and builds the agent's configuration for this host (or a simulated node)
// from them.
//
// It exists so that a managed node runs a binary that links the agent and
// its drivers only: no server, store (SQLite, PostgreSQL), web dashboard,
// metrics registry or CLI framework. What may be linked is kept in check
// by cmd/drover-agent's deps test.
package agentcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/drover-dev/drover/internal/agent"
	"github.com/drover-dev/drover/internal/agent/facts"
	"github.com/drover-dev/drover/internal/artifact"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/evidence"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// Exit codes of Main, those of drover's CLI.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
	// ExitReplaced says the agent's program was replaced on disk (a
	// package upgrade) while no step ran: start it again to run the new
	// one. cmd/drover-agent re-executes itself (Reexec); under `drover
	// agent` the service manager restarts it (the units say
	// Restart=always).
	ExitReplaced = 3
)

// usageError is a bad command line (ExitUsage).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

const help = `Usage: %s --server URL --state-dir DIR [flags]

Run the agent of this node. It registers its facts with the server,
long-polls for steps, executes them through the drivers of this OS with a
write-ahead journal in --state-dir (a step interrupted by a crash or a
reboot is verified, never blindly run again), runs the plan's probes and
reports what really happened.

This is ` + "`drover agent`" + ` in a binary of its own: the same flags and
environment, and the Kubernetes node driver's (--kubeconfig,
--kube-in-cluster, --kube-node). Without either Kubernetes flag,
kubernetes-node actions fail with a clear reason.

Nothing runs on the node unless it is a built-in action the agent
accepts (--accept), a signed artifact, or allowed here: a plan's command
probe runs its command only with --allow-command-probes (an artifact
probe needs only the signature), and a probe's output goes back to the
server only with --allow-probe-output. The agent reports this policy in
its facts, so the server refuses, at creation, a plan these nodes would
refuse.

Scripts and kpatch live patches run only once verified: --artifact-root
pins the root.json of the operator's signed artifact repository (drover
artifact init), whose metadata and targets are fetched from the server
(or --artifact-url) and checked before anything runs.

--sim runs a simulated node instead (simulated packages and reboots, kept
in --state-dir), for demos, tests and benchmarks.

--config FILE reads the flags from a YAML file (the packages install
/etc/drover/agent.yaml): each key is a flag's name without the dashes
(server, state-dir, enroll-token, ca-hash, label: [...]). Precedence:
the file < the environment < the command line.

'%[1]s service install|uninstall' registers the agent with this OS's
service manager (launchd on macOS, the service control manager on
Windows; Linux uses the packages' systemd unit).

Environment: DROVER_SERVER, DROVER_AGENT_TOKEN, DROVER_ENROLL_TOKEN,
DROVER_CA_HASH (defaults of the flags of the same meaning);
DROVER_LOG=debug|info|warn|error logs to stderr.

Flags:
`

// options are the command line.
type options struct {
	server, stateDir, nodeID, token, trusted, accept string
	enrollToken, caHash                              string
	artifactRoot, artifactURL                        string
	labels                                           []string
	heartbeat                                        time.Duration
	sim                                              bool
	simFamily, simClass, simVersion                  string
	simStep                                          time.Duration
	kubeconfig, kubeNode                             string
	kubeInCluster                                    bool
	allowCommandProbes, allowProbeOutput             bool
	version                                          bool
	noEvidence                                       bool
	captureEvidence                                  bool
	evidenceUnits                                    []string
	config                                           string
}

func flags(o *options, prog string, stderr io.Writer) *pflag.FlagSet {
	f := pflag.NewFlagSet(prog, pflag.ContinueOnError)
	f.SetOutput(stderr)
	f.StringVar(&o.config, "config", "", "YAML file of flag values (keys are flag names); the environment and flags override it")
	f.StringVar(&o.server, "server", "", "server URL (default $DROVER_SERVER)")
	f.StringVar(&o.stateDir, "state-dir", "", "directory of the step journal; must survive reboots")
	f.StringVar(&o.nodeID, "node-id", "", "this node's name (default the host name)")
	f.StringVar(&o.token, "token", "", "INSECURE shared agent token of a plain-HTTP test server (default $DROVER_AGENT_TOKEN)")
	f.StringVar(&o.enrollToken, "enroll-token", "", "single-use enrolment token (drover token create), needed until enrolled (default $DROVER_ENROLL_TOKEN)")
	f.StringVar(&o.caHash, "ca-hash", "", "pin of the server's CA, sha256:... (printed by drover server and drover token create; default $DROVER_CA_HASH)")
	f.StringArrayVar(&o.labels, "label", nil, "initial label KEY=VALUE (repeatable; the server keeps its own after registration)")
	f.StringVar(&o.accept, "accept", "", "comma-separated action kinds this agent performs (default every kind but script)")
	f.BoolVar(&o.allowCommandProbes, "allow-command-probes", false, "run the commands of plans' command probes on this node, as the agent's user (default: refuse them; signed artifact probes need only --artifact-root)")
	f.BoolVar(&o.allowProbeOutput, "allow-probe-output", false, "return the start of a failing probe's output to the server when the plan's probe asks (includeOutput)")
	f.StringVar(&o.trusted, "trusted-dir", "", "run script artifacts found in this root-owned directory (closed fleets; production uses signed artifacts)")
	f.StringVar(&o.artifactRoot, "artifact-root", "", "pinned root.json of the signed artifact repository: run only artifacts it verifies")
	f.StringVar(&o.artifactURL, "artifact-url", "", "base URL of the signed artifact repository (default SERVER/v1/artifacts)")
	f.DurationVar(&o.heartbeat, "heartbeat", agent.DefaultHeartbeat, "least time between two polls")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of this node's Kubernetes cluster: enables kubernetes-node actions (cordon, drain, uncordon)")
	f.BoolVar(&o.kubeInCluster, "kube-in-cluster", false, "enable kubernetes-node actions with the service account of the pod the agent runs in")
	f.StringVar(&o.kubeNode, "kube-node", "", "this node's name in Kubernetes (default the host name, lower case, without domain)")
	f.BoolVar(&o.noEvidence, "no-evidence", false, "capture no evidence bundle when a step fails or the server asks")
	f.BoolVar(&o.captureEvidence, "capture-evidence", false, "capture an evidence bundle of this node now, print it as JSON and exit (no server needed)")
	f.StringArrayVar(&o.evidenceUnits, "evidence-unit", nil, "with --capture-evidence: a unit whose state, logs and linkage to capture (repeatable)")
	f.BoolVar(&o.sim, "sim", false, "run a simulated node (demos, tests, benchmarks)")
	f.StringVar(&o.simFamily, "sim-family", "debian", "simulated os family")
	f.StringVar(&o.simVersion, "sim-version", "12", "simulated os version")
	f.StringVar(&o.simClass, "sim-class", "gen1", "simulated hardware class")
	f.DurationVar(&o.simStep, "sim-step", time.Second, "how long a simulated step takes")
	f.BoolVar(&o.version, "version", false, "print the version and exit")
	f.SortFlags = false
	f.Usage = func() {
		fmt.Fprintf(stderr, help, prog)
		fmt.Fprint(stderr, f.FlagUsages())
	}
	return f
}

// Main runs the agent with args (without the program name) until ctx
// ends, and returns the process exit code. prog names the command in
// messages ("drover-agent", "drover agent"); getenv reads the environment
// (os.Getenv in main).
func Main(ctx context.Context, prog string, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if len(args) > 0 && args[0] == "service" {
		return serviceMain(prog, args[1:], stdout, stderr)
	}
	var o options
	f := flags(&o, prog, stderr)
	if err := f.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return ExitOK
		}
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", prog, err, prog)
		return ExitUsage
	}
	if f.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\nRun '%s --help' for usage.\n", prog, f.Args(), prog)
		return ExitUsage
	}
	if o.config != "" {
		if err := applyConfigFile(f, o.config, getenv); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", prog, err)
			return ExitUsage
		}
	}
	if o.version {
		fmt.Fprintf(stdout, "%s %s %s %s/%s\n", prog, version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return ExitOK
	}
	if o.captureEvidence {
		b := evidence.Capture(ctx, evidence.LocalHost(), evidence.Spec{Node: o.nodeID, Reason: evidence.ReasonOnDemand, Units: o.evidenceUnits})
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(b); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", prog, err)
			return ExitError
		}
		return ExitOK
	}
	err := run(ctx, o, getenv, stderr)
	var ue usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, agent.ErrReplaced):
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return ExitReplaced
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", prog, err, prog)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "%s: %v\n", prog, err)
	return ExitError
}

func run(ctx context.Context, o options, getenv func(string) string, stderr io.Writer) error {
	log := NewLogger(getenv("DROVER_LOG"), stderr)
	if o.server == "" {
		o.server = getenv("DROVER_SERVER")
	}
	if o.token == "" {
		o.token = getenv("DROVER_AGENT_TOKEN")
	}
	if o.enrollToken == "" {
		o.enrollToken = getenv("DROVER_ENROLL_TOKEN")
	}
	if o.caHash == "" {
		o.caHash = getenv("DROVER_CA_HASH")
	}
	secure := strings.HasPrefix(o.server, "https://")
	switch {
	case o.server == "":
		return usagef("--server is required")
	case o.stateDir == "":
		return usagef("--state-dir is required")
	case !secure && o.token == "":
		return usagef("an https:// server (client certificates: --enroll-token and --ca-hash) or, insecure, an agent token (--token) is required")
	case secure && o.token != "":
		return usagef("--token is the insecure shared agent token of plain-HTTP test servers; an https:// server takes --enroll-token and --ca-hash")
	case o.kubeconfig != "" && o.kubeInCluster:
		return usagef("--kubeconfig and --kube-in-cluster exclude each other")
	case o.sim && (o.kubeconfig != "" || o.kubeInCluster):
		return usagef("--sim simulates kubernetes-node actions; --kubeconfig and --kube-in-cluster are for real nodes")
	}
	if o.nodeID == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node id: %w", err)
		}
		o.nodeID = h
	}
	if err := fleet.ValidID(o.nodeID); err != nil {
		return usagef("node id %q: %v", o.nodeID, err)
	}
	lbl := map[string]string{}
	for _, l := range o.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return usagef("--label %q: want KEY=VALUE", l)
		}
		lbl[k] = v
	}
	var accepts []plan.ActionKind
	if o.accept != "" {
		for _, k := range strings.Split(o.accept, ",") {
			accepts = append(accepts, plan.ActionKind(strings.TrimSpace(k)))
		}
	}
	if err := os.MkdirAll(o.stateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	cfg := agent.Config{ServerURL: o.server, StateDir: o.stateDir, NodeID: o.nodeID, Token: o.token, Labels: lbl,
		Accepts: accepts, AllowCommandProbes: o.allowCommandProbes, AllowProbeOutput: o.allowProbeOutput,
		Heartbeat: o.heartbeat, Logger: log, Version: version(),
		HTTPClient: &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 2,
			IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: 0}}}
	if secure {
		id, err := agent.LoadOrEnroll(ctx, agent.IdentityOptions{ServerURL: cfg.ServerURL, StateDir: cfg.StateDir, NodeID: cfg.NodeID,
			EnrollToken: o.enrollToken, CAHash: o.caHash, Logger: log.With("component", "identity")})
		if err != nil {
			return err
		}
		cfg.HTTPClient, cfg.Token = id.HTTPClient(), ""
		go func() { _ = id.RenewLoop(ctx) }()
	}
	if o.sim {
		if err := simAgent(&cfg, o); err != nil {
			return err
		}
	} else {
		verifier, err := artifactVerifier(&cfg, log, o.trusted, o.artifactRoot, o.artifactURL)
		if err != nil {
			return err
		}
		if err := hostAgent(&cfg, verifier, o); err != nil {
			return err
		}
		if !o.noEvidence {
			host := evidence.LocalHost()
			cfg.Evidence = func(ctx context.Context, s evidence.Spec) *evidence.Bundle { return evidence.Capture(ctx, host, s) }
		}
		cfg.Replaced = replacedOnDisk()
	}
	fmt.Fprintf(stderr, "drover agent %s: node %s, server %s, journal in %s\n", version(), o.nodeID, o.server, o.stateDir)
	if err := agent.Run(ctx, cfg); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// artifactVerifier builds the artifact verifier of a host agent: the
// signed repository's (root), the trusted directory's (trusted), or none
// (every script and kpatch load is refused).
func artifactVerifier(cfg *agent.Config, log *slog.Logger, trusted, root, url string) (driver.Verifier, error) {
	switch {
	case root != "" && trusted != "":
		return nil, usagef("--artifact-root and --trusted-dir exclude each other")
	case root == "" && url != "":
		return nil, usagef("--artifact-url needs --artifact-root")
	case trusted != "":
		return driver.DirVerifier{Dir: trusted}, nil
	case root == "":
		return nil, nil
	}
	pinned, err := os.ReadFile(root)
	if err != nil {
		return nil, fmt.Errorf("--artifact-root: %w", err)
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
		Dir: filepath.Join(cfg.StateDir, "artifacts"), Header: header, Logger: log.With("component", "artifacts"),
		Client: client})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// sameOrigin reports whether URLs a and b have the same scheme and host.
func sameOrigin(a, b string) bool {
	ua, err1 := neturl.Parse(a)
	ub, err2 := neturl.Parse(b)
	return err1 == nil && err2 == nil && ua.Scheme == ub.Scheme && ua.Host == ub.Host
}

// hostAgent configures the drivers, facts and probes of this machine, and
// the Kubernetes node driver when o names a cluster; verifier nil refuses
// every artifact.
func hostAgent(cfg *agent.Config, verifier driver.Verifier, o options) error {
	runner := driver.NewExecRunner(30 * time.Minute)
	cfg.Runner, cfg.Verifier = runner, verifier
	cfg.Facts = func(ctx context.Context) (fleet.Facts, error) { return facts.Collect(ctx, runner) }
	cfg.PackageStamp = facts.PackageStamp
	f, err := cfg.Facts(context.Background())
	if err != nil {
		f = fleet.Facts{} // no package driver: package steps fail with a clear error
	}
	reg := driver.ForHost(f, driver.HostOptions{Runner: runner, Verifier: verifier})
	if o.kubeconfig != "" || o.kubeInCluster {
		rc, err := driver.KubernetesConfig(o.kubeconfig)
		if err != nil {
			return err
		}
		api, err := driver.NewKubernetesClient(rc)
		if err != nil {
			return err
		}
		reg.Register(plan.ActionKubernetesNode, driver.NewKubernetesNode(api, driver.KubernetesOptions{NodeName: o.kubeNode}))
	}
	cfg.Drivers = reg
	rb := driver.NewRebooter(runner, runtime.GOOS, driver.OSFileSystem{})
	cfg.Rebooter = rebooter{rb}
	cfg.BootID = rb.BootID
	return nil
}

// rebooter adapts the driver's rebooter to the agent's interface.
type rebooter struct{ r *driver.Rebooter }

func (r rebooter) Reboot(ctx context.Context, _ string) error { return r.r.Reboot(ctx) }

// simAgent configures a simulated node kept in the state directory.
func simAgent(cfg *agent.Config, o options) error {
	st := driver.NewSimState(o.nodeID, o.simFamily, "6.1.0-26-amd64", map[string]string{"openssl": "3.0.14", "telemetry-agent": "7.1.4"})
	st.ApplyDelay = o.simStep
	if err := st.Persist(filepath.Join(cfg.StateDir, "sim.json")); err != nil {
		return fmt.Errorf("sim state: %w", err)
	}
	reg := &driver.Registry{}
	sim := driver.NewSim(st)
	for _, k := range []plan.ActionKind{plan.ActionPackage, plan.ActionKernel, plan.ActionLivePatch, plan.ActionServiceRestart,
		plan.ActionContainerRuntime, plan.ActionKubernetesNode, plan.ActionScript} {
		reg.Register(k, sim)
	}
	base := fleet.Facts{OS: fleet.OS{Family: o.simFamily, Version: o.simVersion}, Arch: runtime.GOARCH, Hardware: fleet.Hardware{Class: o.simClass}}
	cfg.Drivers = reg
	cfg.Facts = func(context.Context) (fleet.Facts, error) { return st.Facts(base), nil }
	cfg.Rebooter = st
	cfg.Runner = st.Runner(driver.NewExecRunner(time.Minute))
	cfg.ProbeHTTPClient = &http.Client{Transport: st.Transport(), Timeout: 10 * time.Second}
	return nil
}

// NewLogger is the logger of drover's commands (this one and the CLI's):
// DROVER_LOG's level (debug, info, warn, error) to w as text; "" discards.
func NewLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "":
		return slog.New(slog.DiscardHandler)
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// version is the module version stamped by the Go toolchain, "dev" for a
// tree build.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
