package probe

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/plan"
)

// stepClock advances by the waited duration instead of sleeping, so retry
// tests are instant and deterministic.
type stepClock struct{ now atomic.Int64 }

func (c *stepClock) Now() time.Time { return time.Unix(0, c.now.Load()) }
func (c *stepClock) NewTimer(d time.Duration) *time.Timer {
	c.now.Add(int64(d))
	return time.NewTimer(0)
}

// script is a Runner replaying fixed answers keyed by the command line.
type script map[string]struct {
	out string
	err error
}

// Run answers the command line, environment first ("K=V name args").
func (s script) Run(_ context.Context, env []string, name string, args ...string) ([]byte, []byte, error) {
	k := strings.Join(append(append(env[:len(env):len(env)], name), args...), " ")
	r, ok := s[k]
	if !ok {
		return nil, nil, fmt.Errorf("%s: not found", name)
	}
	return []byte(r.out), nil, r.err
}

func TestHTTP(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch r.URL.Path {
		case "/ok":
			fmt.Fprint(w, `{"status":"green","version":"7.2.0"}`)
		case "/flaky": // fails twice, then passes
			if n <= 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()

	tests := []struct {
		name    string
		p       plan.Probe
		want    engine.Verdict
		reason  string
		tries   int
		resetTo int32
	}{
		{name: "pass", p: plan.Probe{Kind: plan.ProbeHTTP, URL: srv.URL + "/ok"}, want: engine.Pass, tries: 1},
		{name: "body match", p: plan.Probe{Kind: plan.ProbeHTTP, URL: srv.URL + "/ok", Body: `"version":"7\.2\.`}, want: engine.Pass, tries: 1},
		{name: "body mismatch", p: plan.Probe{Kind: plan.ProbeHTTP, URL: srv.URL + "/ok", Body: `"status":"red"`}, want: engine.Fail,
			reason: `http ` + srv.URL + `/ok: status 200 but body does not match /"status":"red"/ (after 1 try)`, tries: 1},
		{name: "503 after retries", p: plan.Probe{Kind: plan.ProbeHTTP, URL: srv.URL + "/health", Retries: 2, Interval: plan.Duration(time.Second)}, want: engine.Fail,
			reason: "http " + srv.URL + "/health: status 503, want 200 (after 3 tries)", tries: 3},
		{name: "flaky passes on third try", p: plan.Probe{Kind: plan.ProbeHTTP, URL: srv.URL + "/flaky", Retries: 3}, want: engine.Pass, tries: 3, resetTo: 0},
		{name: "expected status", p: plan.Probe{Name: "api", Kind: plan.ProbeHTTP, URL: srv.URL + "/health", Status: 204}, want: engine.Fail,
			reason: "api: http " + srv.URL + "/health: status 503, want 204 (after 1 try)", tries: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls.Store(tt.resetTo)
			clock := &stepClock{}
			pr := &Prober{Clock: clock}
			got := pr.Run(context.Background(), tt.p)
			if got.Verdict != tt.want || got.Tries != tt.tries {
				t.Fatalf("got %s after %d tries (%s), want %s after %d", got.Verdict, got.Tries, got.Reason, tt.want, tt.tries)
			}
			if tt.reason != "" && got.Reason != tt.reason {
				t.Errorf("reason\n got %s\nwant %s", got.Reason, tt.reason)
			}
			if tt.p.Retries == 2 && got.Took != 2*time.Second {
				t.Errorf("took %s, want 2s of intervals", got.Took)
			}
		})
	}
}

func TestHTTPTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	got := Run(context.Background(), plan.Probe{Kind: plan.ProbeHTTP, URL: srv.URL, Timeout: plan.Duration(50 * time.Millisecond)}, nil)
	want := "http " + srv.URL + ": no answer within 50ms (after 1 try)"
	if got.Verdict != engine.Fail || got.Reason != want {
		t.Fatalf("got %s %q, want fail %q", got.Verdict, got.Reason, want)
	}
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if got := Run(context.Background(), plan.Probe{Kind: plan.ProbeTCP, Address: ln.Addr().String()}, nil); got.Verdict != engine.Pass {
		t.Fatalf("open port: %s %s", got.Verdict, got.Reason)
	}
	addr := ln.Addr().String()
	ln.Close()
	got := (&Prober{Clock: &stepClock{}}).Run(context.Background(), plan.Probe{Kind: plan.ProbeTCP, Address: addr, Retries: 1})
	if got.Verdict != engine.Fail || !strings.HasPrefix(got.Reason, "tcp "+addr+": connect: ") || !strings.HasSuffix(got.Reason, "(after 2 tries)") {
		t.Fatalf("closed port: %s %q", got.Verdict, got.Reason)
	}
}

func TestRunnerProbes(t *testing.T) {
	r := script{
		"check-db --quick":                  {out: "ok"},
		"check-db --slow":                   {err: &driver.ExitError{Code: 2, Stderr: "replication lag 42s > 10s\n"}},
		"systemctl is-active nginx.service": {out: "active\n"},
		"systemctl is-active myapp.service": {out: "failed\n", err: &driver.ExitError{Code: 3}},
		serviceStatus(t, "W3SVC"):           {out: "Running\r\n"},
		serviceStatus(t, "Spooler"):         {out: "Stopped\r\n"},
	}
	tests := []struct {
		p      plan.Probe
		goos   string
		want   engine.Verdict
		reason string
	}{
		{p: plan.Probe{Kind: plan.ProbeCommand, Command: []string{"check-db", "--quick"}}, want: engine.Pass},
		{p: plan.Probe{Kind: plan.ProbeCommand, Command: []string{"check-db", "--slow"}}, want: engine.Fail,
			reason: "command check-db --slow: exit status 2, want 0 (after 1 try)"},
		{p: plan.Probe{Kind: plan.ProbeSystemd, Unit: "nginx.service"}, want: engine.Pass},
		{p: plan.Probe{Kind: plan.ProbeSystemd, Unit: "myapp.service", Retries: 1}, want: engine.Fail,
			reason: "systemd myapp.service: failed, want active (after 2 tries)"},
		{p: plan.Probe{Kind: plan.ProbeWindowsService, Unit: "W3SVC"}, goos: "windows", want: engine.Pass},
		{p: plan.Probe{Kind: plan.ProbeWindowsService, Unit: "Spooler"}, goos: "windows", want: engine.Fail,
			reason: "windows-service Spooler: status Stopped, want Running (after 1 try)"},
		// Issue #14: names are checked against allowlists before anything
		// runs (the script answers nothing else).
		{p: plan.Probe{Kind: plan.ProbeWindowsService, Unit: "spooler’ ; Start-Process calc"}, goos: "windows", want: engine.Fail,
			reason: `windows-service spooler’ ; Start-Process calc: "spooler’ ; Start-Process calc": character U+2019 not allowed in a Windows service name (after 1 try)`},
		{p: plan.Probe{Kind: plan.ProbeSystemd, Unit: "nginx*"}, want: engine.Fail,
			reason: `systemd nginx*: "nginx*": character '*' (U+002A) not allowed in a systemd unit name (after 1 try)`},
		{p: plan.Probe{Kind: plan.ProbeWindowsService, Unit: "W3SVC"}, goos: "linux", want: engine.Fail,
			reason: "windows-service W3SVC: windows-service probes run only on Windows, this node runs linux (after 1 try)"},
	}
	for _, tt := range tests {
		t.Run(Describe(tt.p), func(t *testing.T) {
			pr := &Prober{Runner: r, Clock: &stepClock{}, GOOS: tt.goos, AllowCommands: true}
			got := pr.Run(context.Background(), tt.p)
			if got.Verdict != tt.want || got.Reason != tt.reason {
				t.Fatalf("got %s %q\nwant %s %q", got.Verdict, got.Reason, tt.want, tt.reason)
			}
		})
	}
}

// serviceStatus is the script's key for the status query of a Windows
// service: the name in DROVER_SERVICE, the PowerShell script fixed.
func serviceStatus(t *testing.T, name string) string {
	c, err := driver.WindowsServiceCommand(driver.ServiceStatus, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Env) != 1 || c.Env[0] != "DROVER_SERVICE="+name || strings.Contains(strings.Join(c.Args, " "), name) {
		t.Fatalf("%s: the name is not passed in DROVER_SERVICE alone: %q %q", name, c.Env, c.Args)
	}
	return strings.Join(append(append(c.Env, c.Name), c.Args...), " ")
}

func TestSimHealthThroughProbes(t *testing.T) {
	hurt := true
	st := driver.NewSimState("n1", "debian", "6.1.0-26", map[string]string{"telemetry-agent": "7.1.0"})
	st.Hurts = func(plan.Action) bool { return hurt }
	d := driver.NewSim(st)
	a := plan.Action{Package: &plan.PackageAction{Packages: []plan.PackagePin{{Name: "telemetry-agent", Version: "7.2.0"}}}}
	pr := &Prober{Runner: st.Runner(nil), HTTPClient: &http.Client{Transport: st.Transport()}, Clock: &stepClock{}, AllowCommands: true}
	probes := []plan.Probe{
		{Kind: plan.ProbeCommand, Command: []string{driver.SimHealthCommand}},
		{Kind: plan.ProbeSystemd, Unit: "telemetry-agent.service"},
		{Kind: plan.ProbeHTTP, URL: "http://localhost:9100/healthz"},
	}
	check := func(want engine.Verdict) {
		t.Helper()
		for _, p := range probes {
			if got := pr.Run(context.Background(), p); got.Verdict != want {
				t.Errorf("%s: got %s (%s), want %s", Describe(p), got.Verdict, got.Reason, want)
			}
		}
	}
	check(engine.Pass)
	snap, err := d.Snapshot(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Apply(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	check(engine.Fail)
	got := pr.Run(context.Background(), probes[2])
	if want := "http http://localhost:9100/healthz: status 503, want 200 (after 1 try)"; got.Reason != want {
		t.Errorf("reason %q, want %q", got.Reason, want)
	}
	if _, err := d.Rollback(context.Background(), a, snap); err != nil {
		t.Fatal(err)
	}
	check(engine.Pass)
}
