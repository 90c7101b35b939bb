package agent

import (
	"bufio"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIdleProcessFootprint measures what an idle agent process keeps
// resident, for both binaries that can run it: `drover agent` (the whole
// drover binary) and the slim drover-agent (cmd/drover-agent). Both are
// built as releases are (CGO_ENABLED=0, -trimpath), started side by side
// on this host (real facts and drivers, no step) against the fake server
// over real HTTP, and sampled from /proc once each has polled 20 times.
//
// Most of an idle agent's RSS is its binary's pages (RssFile): code and
// read-only data touched at start-up (package initialisation) and by the
// poll loop, each fault also mapping the neighbouring pages already in the
// page cache. So RSS follows what is linked and initialised more than what
// the agent allocates (RssAnon). It logs the figures (run with -v); it
// asserts only that the slim binary keeps less resident than the whole
// one, as absolute figures depend on the kernel and the page cache. The
// goal for drover-agent is 20 MiB.
func TestIdleProcessFootprint(t *testing.T) {
	dir := t.TempDir()
	bins := map[string]string{"drover": "./cmd/drover", "drover-agent": "./cmd/drover-agent"}
	for name, pkg := range bins {
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = moduleRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
	}
	srv := newFakeServer(t)
	srv.token = "agent-token-0123456789"
	hs := httptest.NewServer(srv)
	defer hs.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	procs := map[string]*exec.Cmd{}
	for _, name := range []string{"drover", "drover-agent"} {
		args := []string{"--server", hs.URL, "--token", srv.token, "--state-dir", filepath.Join(dir, "state-"+name),
			"--node-id", name, "--heartbeat", "200ms"}
		if name == "drover" {
			args = append([]string{"agent"}, args...)
		}
		cmd := exec.CommandContext(ctx, filepath.Join(dir, name), args...)
		cmd.Stderr = &prefixWriter{t: t, prefix: name}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[name] = cmd
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
	}
	for pollsBy(srv, "drover") < 20 || pollsBy(srv, "drover-agent") < 20 {
		if ctx.Err() != nil {
			t.Fatalf("agents did not poll 20 times within 2 minutes (%d, %d polls)", pollsBy(srv, "drover"), pollsBy(srv, "drover-agent"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	mem := map[string]procMem{}
	for name, cmd := range procs {
		m, err := readProcMem(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		mem[name] = m
		st, _ := os.Stat(filepath.Join(dir, name))
		t.Logf("%-12s binary %5.1f MiB; idle RSS %5.1f MiB = anonymous %4.1f + file-backed %5.1f (%s/%s)",
			name, mib(st.Size()), mib(m.rss), mib(m.anon), mib(m.file), runtime.GOOS, runtime.GOARCH)
	}
	full, slim := mem["drover"], mem["drover-agent"]
	t.Logf("drover-agent / drover agent: RSS %.2f, anonymous %.2f, file-backed %.2f", float64(slim.rss)/float64(full.rss),
		float64(slim.anon)/float64(full.anon), float64(slim.file)/float64(full.file))
	if slim.rss >= full.rss {
		t.Errorf("drover-agent keeps %.1f MiB resident, not less than drover agent's %.1f MiB", mib(slim.rss), mib(full.rss))
	}
}

// procMem is a process's resident memory, in bytes.
type procMem struct{ rss, anon, file int64 }

func readProcMem(pid int) (procMem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMem{}, err
	}
	defer f.Close()
	var m procMem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			m.rss = kb << 10
		case "RssAnon":
			m.anon = kb << 10
		case "RssFile":
			m.file = kb << 10
		}
	}
	return m, sc.Err()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func pollsBy(s *fakeServer, node string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.polls {
		if p.NodeID == node {
			n++
		}
	}
	return n
}

// moduleRoot is the directory of go.mod, two levels up from this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	return root
}

// prefixWriter logs a child's stderr lines to the test log.
type prefixWriter struct {
	t      *testing.T
	prefix string
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Logf("%s: %s", w.prefix, l)
	}
	return len(p), nil
}
