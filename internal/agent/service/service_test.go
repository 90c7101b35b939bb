package service

import (
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var rewrite = flag.Bool("rewrite", false, "rewrite deploy/launchd's plist")

// The plist in deploy/launchd is the one `drover-agent service install`
// writes on macOS for /usr/local/bin/drover-agent (launchd itself cannot
// run here: the file is checked, not loaded).
func TestLaunchdPlist(t *testing.T) {
	got, err := LaunchdPlist(DefaultSpec("darwin", "/usr/local/bin/drover-agent"))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("..", "..", "..", "deploy", "launchd", Label+".plist")
	if *rewrite {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s is stale (go test ./internal/agent/service -run TestLaunchdPlist -rewrite):\n%s", golden, got)
	}
	// It is well-formed XML whose program arguments are, in order, the
	// program and --config with macOS's config file.
	var doc struct {
		Dict struct {
			Keys   []string `xml:"key"`
			Arrays []struct {
				Strings []string `xml:"string"`
			} `xml:"array"`
		} `xml:"dict"`
	}
	if err := xml.Unmarshal(got, &doc); err != nil {
		t.Fatalf("plist does not parse: %v", err)
	}
	for _, k := range []string{"Label", "ProgramArguments", "RunAtLoad", "KeepAlive", "StandardErrorPath"} {
		if !slices.Contains(doc.Dict.Keys, k) {
			t.Errorf("plist has no %s key", k)
		}
	}
	if len(doc.Dict.Arrays) != 1 || !slices.Equal(doc.Dict.Arrays[0].Strings, []string{"/usr/local/bin/drover-agent", "--config", "/etc/drover/agent.yaml"}) {
		t.Errorf("ProgramArguments = %+v", doc.Dict.Arrays)
	}
}

func TestLaunchdPlistEscapes(t *testing.T) {
	s := DefaultSpec("darwin", "/opt/a&b/<drover-agent>")
	got, err := LaunchdPlist(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "/opt/a&amp;b/&lt;drover-agent&gt;") {
		t.Errorf("program not escaped:\n%s", got)
	}
	if _, err := LaunchdPlist(DefaultSpec("darwin", "drover-agent")); err == nil || !strings.Contains(err.Error(), "not an absolute path") {
		t.Errorf("relative program: err = %v", err)
	}
}

func TestDefaultSpec(t *testing.T) {
	w := DefaultSpec("windows", `C:\Program Files\drover\drover-agent.exe`)
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.Args, []string{"--config", `C:\ProgramData\drover\agent.yaml`}) || w.Name != "drover-agent" || w.LogFile != "" {
		t.Errorf("windows spec = %+v", w)
	}
}

// handleRun runs Handle with a fake SCM: requests are sent on a channel,
// statuses recorded. Windows' service control manager cannot run here;
// run_windows.go only maps svc.ChangeRequest and svc.Status onto these.
type fakeSCM struct {
	reqs     chan Request
	statuses chan State
	stopped  chan struct{}
	done     chan int
	code     chan int
}

func startHandle(t *testing.T) *fakeSCM {
	f := &fakeSCM{reqs: make(chan Request), statuses: make(chan State, 16), stopped: make(chan struct{}),
		done: make(chan int, 1), code: make(chan int, 1)}
	go func() {
		f.code <- Handle(f.reqs, func(s State) { f.statuses <- s }, func() { close(f.stopped) }, f.done)
	}()
	f.expect(t, StartPending, Running)
	return f
}

func (f *fakeSCM) expect(t *testing.T, want ...State) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-f.statuses:
			if got != w {
				t.Fatalf("status %s, want %s", got, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no status, want %s", w)
		}
	}
}

func TestHandleStop(t *testing.T) {
	for _, r := range []Request{Stop, Shutdown} {
		f := startHandle(t)
		f.reqs <- Interrogate
		f.expect(t, Running)
		f.reqs <- Other // ignored
		f.reqs <- r
		f.expect(t, StopPending)
		<-f.stopped // the agent's context is cancelled
		f.reqs <- Interrogate
		f.expect(t, StopPending)
		f.reqs <- Stop // a second stop does not call stop again (it would panic on the closed channel)
		f.done <- 0
		if code := <-f.code; code != 0 {
			t.Errorf("exit code %d", code)
		}
	}
}

// An agent that ends on its own (ExitReplaced after an upgrade, or an
// error) reports StopPending and returns its code, so the SCM's recovery
// action restarts it.
func TestHandleAgentEnds(t *testing.T) {
	f := startHandle(t)
	f.done <- 3
	f.expect(t, StopPending)
	if code := <-f.code; code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	select {
	case <-f.stopped:
		t.Error("stop called although nobody asked")
	default:
	}
}
