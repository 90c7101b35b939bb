package probe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/plan"
)

// recorder is a Runner that records what it was asked to run and fails
// every command with stderr.
type recorder struct {
	ran    []string
	env    [][]string
	stderr string
}

func (r *recorder) Run(_ context.Context, env []string, name string, args ...string) ([]byte, []byte, error) {
	r.ran = append(r.ran, strings.Join(append([]string{name}, args...), " "))
	r.env = append(r.env, env)
	if r.stderr == "" {
		return []byte("ok"), nil, nil
	}
	return nil, []byte(r.stderr), &driver.ExitError{Code: 1, Stderr: r.stderr}
}

// verifier verifies the artifacts it knows, as a TUF client would: the
// path of verified bytes, or an error.
type verifier map[string]string

func (v verifier) Verify(_ context.Context, name string) (string, error) {
	if p, ok := v[name]; ok {
		return p, nil
	}
	return "", fmt.Errorf("target %s not found in trusted metadata", name)
}

func TestCommandProbeNeedsTheAgentsConsent(t *testing.T) {
	evil := plan.Probe{Kind: plan.ProbeCommand, Command: []string{"/bin/sh", "-c", "id > /tmp/owned"}}
	r := &recorder{}
	got := (&Prober{Runner: r, Clock: &stepClock{}}).Run(context.Background(), evil)
	if got.Verdict != engine.Fail || len(r.ran) != 0 {
		t.Fatalf("without AllowCommands: %s %q, ran %q; want fail, nothing run", got.Verdict, got.Reason, r.ran)
	}
	if !strings.Contains(got.Reason, "--allow-command-probes") || !strings.Contains(got.Reason, "nothing was run") {
		t.Errorf("reason %q does not say how to allow it and that nothing ran", got.Reason)
	}
	got = (&Prober{Runner: r, Clock: &stepClock{}, AllowCommands: true}).Run(context.Background(), evil)
	if got.Verdict != engine.Pass || len(r.ran) != 1 || r.ran[0] != "/bin/sh -c id > /tmp/owned" {
		t.Fatalf("with AllowCommands: %s %q, ran %q", got.Verdict, got.Reason, r.ran)
	}
}

func TestArtifactProbeRunsOnlyVerifiedBytes(t *testing.T) {
	p := plan.Probe{Kind: plan.ProbeCommand, Artifact: "check-db", Args: []string{"--quick"}}
	tests := []struct {
		name   string
		v      driver.Verifier
		want   engine.Verdict
		ran    string
		reason string
	}{
		{name: "verified", v: verifier{"check-db": "/var/lib/drover/artifacts/check-db.sha256"}, want: engine.Pass,
			ran: "/var/lib/drover/artifacts/check-db.sha256 --quick"},
		{name: "unknown to the repository", v: verifier{}, want: engine.Fail,
			reason: "command artifact check-db: artifact check-db refused: target check-db not found in trusted metadata; nothing was run (after 1 try)"},
		{name: "no verifier", want: engine.Fail,
			reason: "command artifact check-db: artifact check-db refused: no artifact verifier configured (signed artifacts required); nothing was run (after 1 try)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{}
			// AllowCommands is false: a signed artifact needs no consent
			// for commands, only its signature.
			got := (&Prober{Runner: r, Clock: &stepClock{}, Verifier: tt.v}).Run(context.Background(), p)
			if got.Verdict != tt.want || (tt.reason != "" && got.Reason != tt.reason) {
				t.Fatalf("got %s %q, want %s %q", got.Verdict, got.Reason, tt.want, tt.reason)
			}
			if tt.ran == "" && len(r.ran) != 0 {
				t.Fatalf("ran %q, want nothing", r.ran)
			}
			if tt.ran != "" {
				if len(r.ran) != 1 || r.ran[0] != tt.ran {
					t.Fatalf("ran %q, want %q", r.ran, tt.ran)
				}
				if len(r.env[0]) != 1 || r.env[0][0] != "DROVER_ARTIFACT=check-db" {
					t.Errorf("env %q, want DROVER_ARTIFACT=check-db", r.env[0])
				}
			}
		})
	}
}

func TestOutputOnlyWhenAskedAndAllowed(t *testing.T) {
	secret := "password=hunter2 in /etc/app.conf"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, secret)
	}))
	defer srv.Close()
	for _, kind := range []plan.ProbeKind{plan.ProbeCommand, plan.ProbeHTTP} {
		for _, ask := range []bool{false, true} {
			for _, allow := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s ask=%v allow=%v", kind, ask, allow), func(t *testing.T) {
					p := plan.Probe{Kind: kind, IncludeOutput: ask}
					if kind == plan.ProbeHTTP {
						p.URL, p.Body = srv.URL, "^healthy$"
					} else {
						p.Command = []string{"check"}
					}
					pr := &Prober{Runner: &recorder{stderr: secret}, Clock: &stepClock{}, AllowCommands: true, AllowOutput: allow}
					got := pr.Run(context.Background(), p)
					if got.Verdict != engine.Fail {
						t.Fatalf("got %s, want fail", got.Verdict)
					}
					if shown := strings.Contains(got.Reason, "hunter2"); shown != (ask && allow) {
						t.Errorf("output shown=%v, want %v: %q", shown, ask && allow, got.Reason)
					}
				})
			}
		}
	}
}

func TestReasonIsBounded(t *testing.T) {
	long := strings.Repeat("x", 10_000)
	ctrl := "line one\nline two\x1b[31mred\x00nul\r\n" + long
	tests := []struct {
		name  string
		p     plan.Probe
		pr    Prober
		bound int
	}{
		{name: "long command", p: plan.Probe{Kind: plan.ProbeCommand, Command: []string{"/opt/" + long}}, bound: MaxReason},
		{name: "output not asked", p: plan.Probe{Kind: plan.ProbeCommand, Command: []string{"check"}},
			pr: Prober{Runner: &recorder{stderr: ctrl}, AllowCommands: true, AllowOutput: true}, bound: MaxReason},
		{name: "output asked and allowed", p: plan.Probe{Kind: plan.ProbeCommand, Command: []string{"check"}, IncludeOutput: true},
			pr: Prober{Runner: &recorder{stderr: ctrl}, AllowCommands: true, AllowOutput: true}, bound: MaxReason + MaxOutput},
		{name: "long body asked and allowed", p: plan.Probe{Kind: plan.ProbeHTTP, URL: "BODY", Body: "^" + long + "$", IncludeOutput: true},
			pr: Prober{AllowOutput: true}, bound: MaxReason + MaxOutput},
		{name: "long name and url", p: plan.Probe{Name: long, Kind: plan.ProbeHTTP, URL: "http://127.0.0.1:1/" + long}, bound: MaxReason},
		{name: "long unit", p: plan.Probe{Kind: plan.ProbeSystemd, Unit: long},
			pr: Prober{Runner: &recorder{stderr: ctrl}}, bound: MaxReason},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr := tt.pr
			pr.Clock = &stepClock{}
			if tt.p.URL == "BODY" {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, ctrl) }))
				defer srv.Close()
				tt.p.URL = srv.URL
			}
			got := pr.Run(context.Background(), tt.p)
			if got.Verdict != engine.Fail {
				t.Fatalf("got %s, want fail", got.Verdict)
			}
			if len(got.Reason) > tt.bound {
				t.Errorf("reason is %d bytes, want at most %d", len(got.Reason), tt.bound)
			}
			if !utf8.ValidString(got.Reason) || strings.IndexFunc(got.Reason, unicode.IsControl) >= 0 {
				t.Errorf("reason has control characters or invalid UTF-8: %q", got.Reason)
			}
			if !strings.HasSuffix(got.Reason, "(after 1 try)") {
				t.Errorf("reason lost its tries: %q", got.Reason)
			}
		})
	}
}

func TestClip(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"a\nb\tc\x00d", 10, "a b c d"},
		{"abcdefghij", 8, "abcde..."},
		{"héllo wörld", 6, "hé..."}, // never cuts a rune in two
		{"abc", 2, ""},
		{"bad \xff byte", 20, "bad   byte"},
	}
	for _, tt := range tests {
		if got := Clip(tt.in, tt.n); got != tt.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
	if !errors.Is(fmt.Errorf("x: %w", ErrCommandRefused), ErrCommandRefused) {
		t.Fatal("ErrCommandRefused does not unwrap")
	}
}
