package agent

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/evidence"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/hostcheck"
	"github.com/drover-dev/drover/internal/plan"
)

// Clock is the agent's time. Production uses SystemClock; tests run the
// agent inside a testing/synctest bubble with SystemClock, or pass their
// own.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
	NewTimer(d time.Duration) *time.Timer
}

// SystemClock is the real clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time                         { return time.Now() }
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (SystemClock) NewTimer(d time.Duration) *time.Timer   { return time.NewTimer(d) }

// Rebooter reboots the node. A real rebooter asks the OS to reboot and
// returns; the agent process is then killed by the reboot. A simulated one
// (driver.SimState) changes the boot ID and returns.
type Rebooter interface {
	Reboot(ctx context.Context, reason string) error
}

// Config configures an agent. Zero values take the documented defaults.
type Config struct {
	// ServerURL is the base URL of the server's agent listener.
	ServerURL string
	// StateDir holds the step journal; it must survive reboots.
	StateDir string
	// Replaced, when set, reports whether the agent's own program was
	// replaced on disk (a package upgrade, possibly run by one of its own
	// steps). It is asked only while no step runs: after each step and
	// every ReplacedCheck while idle; when it says yes, Run returns
	// ErrReplaced and the caller starts the new program. A step is never
	// cut short for it.
	Replaced func() bool
	// ReplacedCheck is how often an idle agent asks Replaced; default 30s.
	ReplacedCheck time.Duration
	// NodeID is this node's identity; the server checks it against the
	// connection's credentials.
	NodeID string
	// Token is sent as "Authorization: Bearer TOKEN" when not empty
	// (until mTLS enrolment lands; then HTTPClient carries the identity).
	Token string
	// HTTPClient talks to the server; nil means a client with no overall
	// timeout (polls are long) and the default transport.
	HTTPClient *http.Client
	// Labels are sent on registration; the server uses them only when it
	// first sees the node.
	Labels map[string]string
	// Accepts is the allow-list of action kinds this agent performs; nil
	// means DefaultAccepts (every kind but script). A step with any other
	// kind fails without running anything.
	Accepts []plan.ActionKind
	// AllowCommandProbes lets the plan's command probes run their
	// commands on this node; false (the default) refuses every apply
	// step with such a probe before anything runs. Command probes that
	// name a signed artifact need Verifier instead.
	AllowCommandProbes bool
	// AllowProbeOutput lets a probe that asks for it (includeOutput)
	// return the start of its output to the server.
	AllowProbeOutput bool
	// Verifier verifies the signed artifacts of command probes; nil
	// refuses them. The script and live-patch drivers hold their own.
	Verifier driver.Verifier
	// Drivers picks the driver of each action. Required.
	Drivers *driver.Registry
	// Facts collects the node's facts. Required.
	Facts func(ctx context.Context) (fleet.Facts, error)
	// PackageStamp returns a cheap stamp of the node's package database
	// (facts.PackageStamp: size and modification time of dpkg's status
	// file or the rpm database). The agent reads it before every poll
	// and collects its facts again when it changed, so that a package
	// changed by hand is reported within a heartbeat, not at the next
	// DefaultFactsInterval. nil: facts only every DefaultFactsInterval
	// and after each step.
	PackageStamp func() string
	// BootID returns the current boot ID cheaply; nil means Facts().BootID.
	BootID func(ctx context.Context) (string, error)
	// Rebooter reboots the node; nil makes a step that needs a reboot fail
	// with a clear reason.
	Rebooter Rebooter
	// RebootTimeout is how long the agent waits to be killed by a reboot
	// it requested before it fails the step; default 15m.
	RebootTimeout time.Duration
	// Runner runs the commands of command, systemd and windows-service
	// probes; nil makes those probes fail.
	Runner driver.Runner
	// HostCheck reads the node for host-check probes (mounts, mtu,
	// ...); nil means the node itself, commands run by Runner.
	HostCheck *hostcheck.Host
	// ProbeHTTPClient runs http probes; nil means a default client. The
	// demo passes one whose transport is a simulated node's.
	ProbeHTTPClient *http.Client
	// Clock; nil means SystemClock.
	Clock Clock
	// Rand is the jitter source; nil means one seeded from NodeID and the
	// clock.
	Rand *rand.Rand
	// Logger; nil discards.
	Logger *slog.Logger
	// Heartbeat is the least time between two polls when the server
	// answers at once; default 10s. The server's registration answer
	// overrides it when it sets one.
	Heartbeat time.Duration
	// MaxBackoff caps the retry delay after network errors; default 1m.
	MaxBackoff time.Duration
	// Version is the agent's version, sent on registration.
	Version string
	// Evidence captures an evidence bundle (evidence.Capture on the
	// local host in production) when a step fails, before its rollback,
	// and when the server asks; nil captures none (simulated nodes).
	Evidence func(ctx context.Context, s evidence.Spec) *evidence.Bundle

	// afterAppend is a test hook called after each journal record is
	// durable.
	afterAppend func(record)
}

// policy is what this agent runs, as its facts report it.
func (cfg Config) policy() *fleet.AgentPolicy {
	pol := &fleet.AgentPolicy{Accepts: make([]string, len(cfg.Accepts)), CommandProbes: cfg.AllowCommandProbes,
		ProbeOutput: cfg.AllowProbeOutput, Artifacts: cfg.Verifier != nil}
	for i, k := range cfg.Accepts {
		pol.Accepts[i] = string(k)
	}
	return pol
}

// DefaultAccepts is every action kind but script: running arbitrary
// scripts must be enabled on the node itself.
func DefaultAccepts() []plan.ActionKind {
	return []plan.ActionKind{
		plan.ActionPackage, plan.ActionKernel, plan.ActionLivePatch, plan.ActionServiceRestart,
		plan.ActionContainerRuntime, plan.ActionKubernetesNode,
	}
}

// Defaults for Config.
const (
	DefaultHeartbeat     = 10 * time.Second
	DefaultMaxBackoff    = time.Minute
	DefaultRebootTimeout = 15 * time.Minute
)

// ErrProtocolUnsupported is returned by Run when the server does not speak
// this agent's protocol version.
var ErrProtocolUnsupported = errors.New("agent protocol version not supported by the server")

// validate checks cfg and returns it with defaults filled in.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	if cfg.ServerURL == "" {
		errs = append(errs, errors.New("server URL is required"))
	}
	if cfg.StateDir == "" {
		errs = append(errs, errors.New("state directory is required"))
	}
	if cfg.NodeID == "" {
		errs = append(errs, errors.New("node ID is required"))
	}
	if cfg.Drivers == nil {
		errs = append(errs, errors.New("driver registry is required"))
	}
	if cfg.Facts == nil {
		errs = append(errs, errors.New("facts collector is required"))
	}
	if len(errs) > 0 {
		return cfg, fmt.Errorf("agent config: %w", errors.Join(errs...))
	}
	cfg.ServerURL = strings.TrimRight(cfg.ServerURL, "/")
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Accepts == nil {
		cfg.Accepts = DefaultAccepts()
	}
	cfg.Accepts = slices.Clone(cfg.Accepts)
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.ReplacedCheck <= 0 {
		cfg.ReplacedCheck = 30 * time.Second
	}
	if cfg.RebootTimeout <= 0 {
		cfg.RebootTimeout = DefaultRebootTimeout
	}
	if cfg.Rand == nil {
		h := fnv.New64a()
		h.Write([]byte(cfg.NodeID))
		cfg.Rand = rand.New(rand.NewPCG(h.Sum64(), uint64(cfg.Clock.Now().UnixNano())))
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	return cfg, nil
}

// Step kinds of api.StepPayload.Kind.
const (
	kindApply    = "apply"
	kindRollback = "rollback"
	// kindMalformed marks a step whose payload did not decode (see
	// agent.decodeSteps); it always fails check.
	kindMalformed = "(malformed)"
)

// parseStepID splits "ROLLOUT/NODE/KIND/ATTEMPT". NODE may itself hold
// slashes.
func parseStepID(id string) (rollout, node, kind string, attempt int, ok bool) {
	first := strings.Index(id, "/")
	last := strings.LastIndex(id, "/")
	if first < 0 || last <= first {
		return "", "", "", 0, false
	}
	rollout, rest, att := id[:first], id[first+1:last], id[last+1:]
	k := strings.LastIndex(rest, "/")
	if k < 0 {
		return "", "", "", 0, false
	}
	node, kind = rest[:k], rest[k+1:]
	n, err := strconv.Atoi(att)
	if err != nil || rollout == "" || node == "" {
		return "", "", "", 0, false
	}
	return rollout, node, kind, n, true
}
