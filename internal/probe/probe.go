// Package probe owns node probes: the health checks an agent runs on its
// own node after a step (http, tcp, command, systemd unit, Windows
// service), with the retries a plan's probe asks for. Every failure reason
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

	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
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
type Prober struct {
	// Runner runs command, systemd and windows-service probes; nil makes
	// them fail.
	Runner driver.Runner
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
		err = pr.try(tctx, p, timeout)
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
		plural := "tries"
		if n == 1 {
			plural = "try"
		}
		res.Verdict = engine.Fail
		res.Reason = fmt.Sprintf("%s: %v (after %d %s)", Describe(p), err, n, plural)
	}
	return res
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
		s = "command " + strings.Join(p.Command, " ")
	case plan.ProbeSystemd:
		s = "systemd " + p.Unit
	case plan.ProbeWindowsService:
		s = "windows-service " + p.Unit
	default:
		s = "probe of kind " + string(p.Kind)
	}
	if p.Name != "" {
		s = p.Name + ": " + s
	}
	return s
}

// try runs p once.
func (pr *Prober) try(ctx context.Context, p plan.Probe, timeout time.Duration) error {
	switch p.Kind {
	case plan.ProbeHTTP:
		return pr.http(ctx, p, timeout)
	case plan.ProbeTCP:
		return pr.tcp(ctx, p, timeout)
	case plan.ProbeCommand:
		if len(p.Command) == 0 {
			return errors.New("no command")
		}
		return pr.command(ctx, p.Command[0], p.Command[1:]...)
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
		return fmt.Errorf("status %d but body does not match /%s/ (body starts %q)", resp.StatusCode, p.Body, head(body, 80))
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

func head(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
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

func (pr *Prober) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return pr.runCommand(ctx, driver.Command{Name: name, Args: args})
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

func (pr *Prober) command(ctx context.Context, name string, args ...string) error {
	_, err := pr.run(ctx, name, args...)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("no exit within the timeout: %w", ctx.Err())
	}
	var ee *driver.ExitError
	if errors.As(err, &ee) {
		msg := fmt.Sprintf("exit status %d, want 0", ee.Code)
		if s := strings.TrimSpace(ee.Stderr); s != "" {
			msg += ": " + head([]byte(s), 200)
		}
		return errors.New(msg)
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
