// Package probe owns node probes: the health checks an agent runs on its
// own node after a step (http, tcp, command, systemd unit, Windows
// service, and the host checks of internal/hostcheck), with the retries
// a plan's probe asks for. Every failure reason
// names the probe and the numbers that failed it.
package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/hostcheck"
	"github.com/drover-dev/drover/internal/plan"
)

// Result is one probe's verdict. Verdict is Pass or Fail, never empty.
type Result struct {
	Verdict engine.Verdict
	Reason  string // why it failed; "" on Pass
	Took    time.Duration
	Tries   int
}

// Clock is the time the prober waits on between tries.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) *time.Timer
}

type realClock struct{}

func (realClock) Now() time.Time                       { return time.Now() }
func (realClock) NewTimer(d time.Duration) *time.Timer { return time.NewTimer(d) }

// Prober runs probes. The zero Prober uses the real clock, a fresh HTTP
// client per probe, the system dialer, and cannot run commands.
//
// What a command probe runs is the node's decision, not the plan's: a
// probe's command runs only with AllowCommands, a probe's artifact only
// once Verifier has verified it. A reason never carries a command's
// output or an http body unless the probe asks (IncludeOutput) and
// AllowOutput is set; it is at most MaxReason bytes without output,
// MaxReason+MaxOutput with, with control characters replaced.
type Prober struct {
	// Runner runs command, systemd and windows-service probes; nil makes
	// them fail.
	Runner driver.Runner
	// AllowCommands lets command probes run the command the plan gives;
	// false fails them without running anything.
	AllowCommands bool
	// Verifier verifies the signed artifacts of command probes; nil fails
	// them without running anything.
	Verifier driver.Verifier
	// AllowOutput lets a probe with IncludeOutput return the start of a
	// command's output or an http body in its reason.
	AllowOutput bool
	// HTTPClient is used for http probes; nil means a default client. Its
	// own Timeout, if any, applies in addition to the probe's.
	HTTPClient *http.Client
	// Dial connects tcp probes; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Clock measures and waits between tries; nil means the real clock.
	Clock Clock
	// GOOS is the node's operating system; "" means runtime.GOOS. Windows
	// service probes fail elsewhere.
	GOOS string
	// Host runs host checks (clock, dns, tls, mounts, ...); nil means
	// the node itself, its commands run by Runner (os/exec without one).
	Host *hostcheck.Host
}

// host returns the host checks' reader.
func (pr *Prober) host() *hostcheck.Host {
	if pr.Host != nil {
		return pr.Host
	}
	h := &hostcheck.Host{GOOS: pr.GOOS}
	if pr.Runner != nil {
		r := pr.Runner
		h.Run = func(ctx context.Context, name string, args ...string) ([]byte, error) {
			out, _, err := r.Run(ctx, nil, name, args...)
			return out, err
		}
	}
	if pr.Clock != nil {
		h.Now = pr.Clock.Now
	}
	return h
}

// Run runs p once plus p.Retries retries with the real clock and r for
// commands; see Prober.Run.
func Run(ctx context.Context, p plan.Probe, r driver.Runner) Result {
	return (&Prober{Runner: r}).Run(ctx, p)
}

// Run runs p until it passes, at most 1+p.Retries times, waiting
// p.Interval between tries (default plan.DefaultProbeInterval). Each try
// is bounded by p.Timeout (default plan.DefaultProbeTimeout). The result
// of the last try decides; a cancelled ctx fails the probe.
func (pr *Prober) Run(ctx context.Context, p plan.Probe) Result {
	return pr.RunAgainst(ctx, p, nil)
}

// RunAgainst runs p as Run does; host checks that compare with the host
// before the step (mounts, failed-units, firewall-backend, mtu,
// kernel-errors) compare with base, and fail without it.
func (pr *Prober) RunAgainst(ctx context.Context, p plan.Probe, base *hostcheck.Snapshot) Result {
	clock := pr.Clock
	if clock == nil {
		clock = realClock{}
	}
	timeout := p.Timeout.D()
	if timeout <= 0 {
		timeout = plan.DefaultProbeTimeout.D()
	}
	interval := p.Interval.D()
	if interval <= 0 {
		interval = plan.DefaultProbeInterval.D()
	}
	tries := 1 + max(p.Retries, 0)
	start := clock.Now()
	var err error
	n := 0
	for n < tries {
		n++
		tctx, cancel := context.WithTimeout(ctx, timeout)
		err = pr.try(tctx, p, timeout, base)
		cancel()
		if err == nil || n == tries || ctx.Err() != nil {
			break
		}
		t := clock.NewTimer(interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	res := Result{Verdict: engine.Pass, Took: clock.Now().Sub(start), Tries: n}
	if err != nil {
		res.Verdict = engine.Fail
		res.Reason = reason(p, err, n)
	}
	return res
}

// Bounds of a probe's reason, in bytes: MaxReason for the probe, what
// failed and the number of tries; MaxOutput more for the output a probe
// returns when it asks and the agent allows.
const (
	MaxReason = 256
	MaxOutput = 1024
)

// reason is "DESCRIPTION: WHY (after N tries)", with the description cut
// to a third of MaxReason, and WHY to what is left of MaxReason (plus
// MaxOutput for an *outputError's output).
func reason(p plan.Probe, err error, tries int) string {
	plural := "tries"
	if tries == 1 {
		plural = "try"
	}
	desc := Clip(Describe(p), MaxReason/3)
	tail := fmt.Sprintf(" (after %d %s)", tries, plural)
	why := Clip(err.Error(), MaxReason-len(desc)-len(tail)-2)
	var oe *outputError
	if errors.As(err, &oe) {
		why = Clip(oe.why, MaxReason-len(desc)-len(tail)-2) + oe.sep + Clip(oe.output, MaxOutput-len(oe.sep))
	}
	return desc + ": " + why + tail
}

// outputError is a failure with output the probe may return: why alone
// unless the probe asks for output and the prober allows it.
type outputError struct {
	why, sep, output string
}

func (e *outputError) Error() string { return e.why + e.sep + e.output }

// withOutput returns why, with output after sep when p asks for output,
// pr allows it and there is some.
func (pr *Prober) withOutput(p plan.Probe, why, sep, output string) error {
	output = strings.TrimSpace(output)
	if !p.IncludeOutput || !pr.AllowOutput || output == "" {
		return errors.New(why)
	}
	return &outputError{why: why, sep: sep, output: output}
}

// Clip returns s with control characters replaced by spaces, cut to at
// most n bytes on a rune boundary ("..." marks a cut).
func Clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	if n <= 3 {
		return s[:0]
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// Describe names a probe in reasons: "http http://127.0.0.1:8080/health",
// prefixed with its name when it has one ("api: http ...").
func Describe(p plan.Probe) string {
	var s string
	switch p.Kind {
	case plan.ProbeHTTP:
		s = "http " + p.URL
	case plan.ProbeTCP:
		s = "tcp " + p.Address
	case plan.ProbeCommand:
		if p.Artifact != "" {
			s = "command artifact " + p.Artifact
		} else {
			s = "command " + strings.Join(p.Command, " ")
		}
	case plan.ProbeSystemd:
		s = "systemd " + p.Unit
	case plan.ProbeWindowsService:
		s = "windows-service " + p.Unit
	case plan.ProbeDNS:
		s = "dns " + p.Lookup
	case plan.ProbeTLS:
		s = "tls " + p.Address
		if p.ServerName != "" {
			s += " (" + p.ServerName + ")"
		}
	case plan.ProbeMounts:
		s = "mounts"
		if len(p.Paths) > 0 {
			s += " " + strings.Join(p.Paths, " ")
		}
	case plan.ProbeMTU:
		s = "mtu"
		if len(p.Interfaces) > 0 {
			s += " " + strings.Join(p.Interfaces, " ")
		}
	case plan.ProbeLinkage:
		s = "linkage"
		if p.Unit != "" {
			s += " " + p.Unit
		}
		if len(p.Binaries) > 0 {
			s += " " + strings.Join(p.Binaries, " ")
		}
	case plan.ProbeClock, plan.ProbeFailedUnits, plan.ProbeFirewallBackend, plan.ProbeKernelErrors:
		s = string(p.Kind)
	default:
		s = "probe of kind " + string(p.Kind)
	}
	if p.Name != "" {
		s = p.Name + ": " + s
	}
	return s
}

// try runs p once.
func (pr *Prober) try(ctx context.Context, p plan.Probe, timeout time.Duration, base *hostcheck.Snapshot) error {
	if p.Kind.HostCheck() {
		return pr.host().Check(ctx, p, base)
	}
	switch p.Kind {
	case plan.ProbeHTTP:
		return pr.http(ctx, p, timeout)
	case plan.ProbeTCP:
		return pr.tcp(ctx, p, timeout)
	case plan.ProbeCommand:
		if p.Artifact != "" {
			return pr.artifact(ctx, p)
		}
		if len(p.Command) == 0 {
			return errors.New("no command")
		}
		if !pr.AllowCommands {
			return ErrCommandRefused
		}
		return pr.command(ctx, p, nil, p.Command[0], p.Command[1:]...)
	case plan.ProbeSystemd:
		return pr.systemd(ctx, p.Unit)
	case plan.ProbeWindowsService:
		return pr.windowsService(ctx, p.Unit)
	}
	return fmt.Errorf("unknown probe kind %q", p.Kind)
}

// maxBody bounds how much of a response body is read and matched.
const maxBody = 64 << 10

func (pr *Prober) http(ctx context.Context, p plan.Probe, timeout time.Duration) error {
	want := p.Status
	if want == 0 {
		want = plan.DefaultProbeStatus
	}
	var re *regexp.Regexp
	if p.Body != "" {
		var err error
		if re, err = regexp.Compile(p.Body); err != nil {
			return fmt.Errorf("bad bodyMatch: %w", err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "drover-probe")
	client := pr.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: timeout}
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) && ue.Timeout() {
			return fmt.Errorf("no answer within %s", timeout)
		}
		return unwrapURL(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("status %d, reading body: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, want)
	}
	if re != nil && !re.Match(body) {
		return pr.withOutput(p, fmt.Sprintf("status %d but body does not match /%s/", resp.StatusCode, p.Body), "; body starts ", string(body))
	}
	return nil
}

// unwrapURL drops the *url.Error wrapper, whose text repeats the URL the
// reason already names.
func unwrapURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

func (pr *Prober) tcp(ctx context.Context, p plan.Probe, timeout time.Duration) error {
	dial := pr.Dial
	if dial == nil {
		d := &net.Dialer{Timeout: timeout}
		dial = d.DialContext
	}
	c, err := dial(ctx, "tcp", p.Address)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("no connection within %s", timeout)
		}
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			return fmt.Errorf("connect: %w", oe.Err)
		}
		return fmt.Errorf("connect: %w", err)
	}
	return c.Close()
}

// ErrCommandRefused fails a command probe whose command the node's
// agent does not allow (drover agent --allow-command-probes).
var ErrCommandRefused = errors.New("command probes not allowed by this agent's configuration (--allow-command-probes); nothing was run")

func (pr *Prober) run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	return pr.runCommand(ctx, driver.Command{Env: env, Name: name, Args: args})
}

// runCommand runs c, environment included (PowerShell reads its values
// there: see driver.WindowsServiceCommand).
func (pr *Prober) runCommand(ctx context.Context, c driver.Command) ([]byte, error) {
	if pr.Runner == nil {
		return nil, errors.New("this agent has no command runner")
	}
	out, _, err := c.Run(ctx, pr.Runner)
	return out, err
}

// artifact verifies p's signed artifact, then runs it with p.Args.
func (pr *Prober) artifact(ctx context.Context, p plan.Probe) error {
	if pr.Verifier == nil {
		return fmt.Errorf("artifact %s refused: %w; nothing was run", p.Artifact, driver.ErrNoVerifier)
	}
	path, err := pr.Verifier.Verify(ctx, p.Artifact)
	if err != nil {
		return fmt.Errorf("artifact %s refused: %w; nothing was run", p.Artifact, err)
	}
	return pr.command(ctx, p, []string{"DROVER_ARTIFACT=" + p.Artifact}, path, p.Args...)
}

// command runs one command; a failure's output (stderr, else stdout) is
// returned only as withOutput allows.
func (pr *Prober) command(ctx context.Context, p plan.Probe, env []string, name string, args ...string) error {
	_, err := pr.run(ctx, env, name, args...)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("no exit within the timeout: %w", ctx.Err())
	}
	var ee *driver.ExitError
	if errors.As(err, &ee) {
		return pr.withOutput(p, fmt.Sprintf("exit status %d, want 0", ee.Code), ": ", ee.Stderr)
	}
	return err
}

func (pr *Prober) systemd(ctx context.Context, unit string) error {
	c, err := driver.SystemctlCommand(unit, "is-active")
	if err != nil {
		return err
	}
	out, err := pr.runCommand(ctx, c)
	state := strings.TrimSpace(string(out))
	if err == nil && state == "active" {
		return nil
	}
	if state != "" {
		return fmt.Errorf("%s, want active", state)
	}
	if err != nil {
		return fmt.Errorf("systemctl is-active: %w", err)
	}
	return errors.New("no state, want active")
}

func (pr *Prober) windowsService(ctx context.Context, name string) error {
	goos := pr.GOOS
	if goos == "" {
		goos = runtime.GOOS
	}
	if goos != "windows" {
		return fmt.Errorf("windows-service probes run only on Windows, this node runs %s", goos)
	}
	c, err := driver.WindowsServiceCommand(driver.ServiceStatus, name)
	if err != nil {
		return err
	}
	out, err := pr.runCommand(ctx, c)
	if err != nil {
		var ee *driver.ExitError
		if errors.As(err, &ee) && strings.Contains(ee.Stderr, "Cannot find any service") {
			return errors.New("no such service")
		}
		return fmt.Errorf("Get-Service: %w", err)
	}
	status := strings.TrimSpace(string(out))
	if status != "Running" {
		return fmt.Errorf("status %s, want Running", status)
	}
	return nil
}

// HostSnapshot takes the snapshot of the host that the baselined host
// checks among probes compare with after the step (nil when none of
// them needs one).
func (pr *Prober) HostSnapshot(ctx context.Context, probes []plan.Probe) *hostcheck.Snapshot {
	kinds := hostcheck.Needs(probes)
	if len(kinds) == 0 {
		return nil
	}
	return pr.host().Snapshot(ctx, kinds)
}
