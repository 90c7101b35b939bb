package driver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/txtar"
)

// replayRunner answers commands from recorded transcripts in testdata.
// A transcript is a txtar archive: its comment says where and how it was
// recorded; a file named "$ COMMAND LINE" holds the command's stdout, and
// may be followed by "stderr" (its stderr) and "exit" (its exit code, or
// "notfound" for a command that is not installed, "timeout" for one the
// runner killed after its timeout). The command line is
// rendered by commandLine. A command recorded several times answers with
// its recordings in order, repeating the last one; a command never
// recorded fails the test.
type replayRunner struct {
	t  testing.TB
	mu sync.Mutex
	// by command line: the recordings left, and the last one served.
	recs  map[string][]replayRec
	last  map[string]replayRec
	calls []replayCall
}

type replayRec struct {
	stdout, stderr string
	exit           int
	notFound       bool
	timeout        bool
}

type replayCall struct {
	Line string
	Env  []string
}

func loadReplay(t testing.TB, files ...string) *replayRunner {
	t.Helper()
	r := &replayRunner{t: t, recs: map[string][]replayRec{}, last: map[string]replayRec{}}
	for _, f := range files {
		a, err := txtar.ParseFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatalf("load %s: %v", f, err)
		}
		r.add(t, f, a)
	}
	return r
}

// replayFromText parses a transcript given inline (fuzz and small cases).
func replayFromText(t testing.TB, text string) *replayRunner {
	t.Helper()
	r := &replayRunner{t: t, recs: map[string][]replayRec{}, last: map[string]replayRec{}}
	r.add(t, "inline", txtar.Parse([]byte(text)))
	return r
}

func (r *replayRunner) add(t testing.TB, name string, a *txtar.Archive) {
	t.Helper()
	var cur string
	for _, f := range a.Files {
		data := string(f.Data)
		switch {
		case strings.HasPrefix(f.Name, "$ "):
			cur = strings.TrimPrefix(f.Name, "$ ")
			r.recs[cur] = append(r.recs[cur], replayRec{stdout: data})
		case cur == "":
			t.Fatalf("%s: section %q before any command", name, f.Name)
		case f.Name == "stderr":
			recs := r.recs[cur]
			recs[len(recs)-1].stderr = data
		case f.Name == "exit":
			recs := r.recs[cur]
			code := strings.TrimSpace(data)
			if code == "notfound" {
				recs[len(recs)-1].notFound = true
				continue
			}
			if code == "timeout" {
				recs[len(recs)-1].timeout = true
				continue
			}
			n, err := strconv.Atoi(code)
			if err != nil {
				t.Fatalf("%s: exit code %q of %s", name, code, cur)
			}
			recs[len(recs)-1].exit = n
		default:
			t.Fatalf("%s: unknown section %q", name, f.Name)
		}
	}
}

func (r *replayRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, []byte, error) {
	line := commandLine(name, args...)
	r.mu.Lock()
	r.calls = append(r.calls, replayCall{Line: line, Env: env})
	rec, ok := r.last[line]
	if recs := r.recs[line]; len(recs) > 0 {
		rec, ok = recs[0], true
		r.recs[line] = recs[1:]
		r.last[line] = rec
	}
	r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if !ok {
		r.t.Errorf("replay: unrecorded command: %s", line)
		return nil, nil, fmt.Errorf("replay: unrecorded command %s", line)
	}
	if rec.notFound {
		return nil, nil, fmt.Errorf("exec: %q: %w", name, exec.ErrNotFound)
	}
	if rec.timeout {
		return []byte(rec.stdout), []byte(rec.stderr), fmt.Errorf("%s: timed out after 5m: %w", line, context.DeadlineExceeded)
	}
	if rec.exit != 0 {
		return []byte(rec.stdout), []byte(rec.stderr), &ExitError{Code: rec.exit, Stderr: strings.TrimSpace(rec.stderr)}
	}
	return []byte(rec.stdout), []byte(rec.stderr), nil
}

// ran returns the command lines run that start with prefix.
func (r *replayRunner) ran(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		if strings.HasPrefix(c.Line, prefix) {
			out = append(out, c.Line)
		}
	}
	return out
}

func (r *replayRunner) envOf(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.calls {
		if strings.HasPrefix(c.Line, prefix) {
			return c.Env
		}
	}
	return nil
}

// fakeFS is a FileSystem over a map; missing files are fs.ErrNotExist.
type fakeFS map[string]string

func (f fakeFS) ReadFile(name string) ([]byte, error) {
	if s, ok := f[name]; ok {
		return []byte(s), nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func TestExecRunner(t *testing.T) {
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Fatal("no sleep command: coreutils is part of every supported agent host")
	}
	ctx := context.Background()
	t.Run("stdout and LC_ALL", func(t *testing.T) {
		out, _, err := NewExecRunner(10*time.Second).Run(ctx, []string{"X_DROVER=1"}, "sh", "-c", "echo $LC_ALL $X_DROVER")
		if err != nil || strings.TrimSpace(string(out)) != "C 1" {
			t.Fatalf("got %q, %v", out, err)
		}
	})
	t.Run("exit error with stderr", func(t *testing.T) {
		_, _, err := NewExecRunner(10*time.Second).Run(ctx, nil, "sh", "-c", "echo boom >&2; exit 3")
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != 3 || ee.Stderr != "boom" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("hanging command times out", func(t *testing.T) {
		// The real clock: this runs the real sleep, killed after 200ms.
		start := time.Now()
		_, _, err := (&ExecRunner{Timeout: 200 * time.Millisecond, WaitDelay: time.Second}).Run(ctx, nil, "sleep", "30")
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "sleep 30: timed out after 200ms") {
			t.Fatalf("got %v", err)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("took %s", time.Since(start))
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, _, err := NewExecRunner(0).Run(cctx, nil, "sleep", "30")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("not installed", func(t *testing.T) {
		_, _, err := NewExecRunner(0).Run(ctx, nil, "drover-no-such-command")
		if !isNotFound(err) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{5 * time.Minute: "5m", time.Hour: "1h", 90 * time.Second: "1m30s", 2 * time.Hour: "2h"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestCommandLine(t *testing.T) {
	got := commandLine("dpkg-query", "-W", "-f=${db:Status-Status} ${Version}\\n", "x", "", "a'b", "line1\nline2")
	want := `dpkg-query -W '-f=${db:Status-Status} ${Version}\n' x '' 'a'\''b' 'line1 ...'`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
