package artifact

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/plan"
)

var _ driver.Verifier = (*Verifier)(nil)

func scriptAction(artifact, marker string) plan.Action {
	return plan.Action{Name: "run " + artifact, Script: &plan.ScriptAction{Artifact: artifact, Args: []string{marker},
		Timeout: plan.Duration(time.Minute)}}
}

// TestSignedScriptRuns is the happy path: an operator signs a script,
// the server serves it, and the script driver runs it through the
// verifier with a real exec runner; a modified script is refused without
// running.
func TestSignedScriptRuns(t *testing.T) {
	f := newFixture(t)
	marker := filepath.Join(t.TempDir(), "ran")
	ctx := context.Background()
	s := driver.NewScript(driver.NewExecRunner(time.Minute), f.v)

	out, err := s.Apply(ctx, scriptAction("hello.sh", marker))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if want := "ran hello.sh: hello from hello.sh"; out.Summary != want {
		t.Errorf("summary %q, want %q", out.Summary, want)
	}
	if b, _ := os.ReadFile(marker); string(b) != "hello.sh ran\n" {
		t.Errorf("marker %q: the script did not run once", b)
	}
	path := filepath.Join(f.agent, "targets", "hello.sh")
	for p, want := range map[string]os.FileMode{path: 0o700, filepath.Dir(path): 0o700 | os.ModeDir, filepath.Join(f.agent, "metadata"): 0o700 | os.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode(), err, want)
		}
	}

	t.Run("modified on the server", func(t *testing.T) {
		// A second node, with no verified copy yet, fetches a script
		// the server tampered with.
		f.agent = filepath.Join(t.TempDir(), "node2")
		f.v = f.newVerifier(f.agent)
		tf := f.targetInfo("hello.sh")
		p := f.repo.TargetPath(tf)
		f.write(p, []byte(strings.Replace(helloScript, "hello from", "pwned by", 1)))
		before := f.trustedState()
		_, err := driver.NewScript(driver.NewExecRunner(time.Minute), f.v).Apply(ctx, scriptAction("hello.sh", marker))
		if !errors.Is(err, &metadata.ErrLengthOrHashMismatch{}) {
			t.Fatalf("Apply: %v, want a length/hash mismatch", err)
		}
		want := "script hello.sh refused: verify artifact: artifact hello.sh: target from URL: length/hash verification error: hash verification failed - mismatch for algorithm sha256"
		if got := strings.ReplaceAll(err.Error(), f.srv.URL, "URL"); got != want {
			t.Errorf("error\n  got  %s\n  want %s", got, want)
		}
		if b, _ := os.ReadFile(marker); string(b) != "hello.sh ran\n" {
			t.Errorf("marker %q: the modified script ran", b)
		}
		if after := f.trustedState(); len(after) != len(before) {
			t.Errorf("trusted state changed: %v -> %v", before, after)
		}
		f.write(p, []byte(helloScript)) // repaired
	})

	t.Run("modified in the agent's state dir", func(t *testing.T) {
		// The verified copy is checked again before each use: a changed
		// copy is replaced by the signed bytes.
		f.write(path, []byte("#!/bin/sh\necho pwned\n"))
		out, err := s.Apply(ctx, scriptAction("hello.sh", marker))
		if err != nil {
			t.Fatalf("Apply: %v", err)
		}
		if want := "ran hello.sh: hello from hello.sh"; out.Summary != want {
			t.Errorf("summary %q, want %q", out.Summary, want)
		}
	})

	t.Run("unknown and removed artifacts", func(t *testing.T) {
		for _, name := range []string{"nope.sh", "../hello.sh"} {
			if _, err := s.Apply(ctx, scriptAction(name, marker)); err == nil {
				t.Errorf("Apply(%s) succeeded", name)
			}
		}
		if err := f.repo.Remove("hello.sh", nil); err != nil {
			t.Fatal(err)
		}
		_, err := s.Apply(ctx, scriptAction("hello.sh", marker))
		if !errors.Is(err, ErrUnknownArtifact) {
			t.Fatalf("Apply after remove: %v, want ErrUnknownArtifact", err)
		}
		if want := "script hello.sh refused: verify artifact: artifact hello.sh: unknown artifact: not in the signed targets"; err.Error() != want {
			t.Errorf("error\n  got  %s\n  want %s", err, want)
		}
	})
}

// targetInfo is the repository's current description of target name.
func (f *fixture) targetInfo(name string) *metadata.TargetFiles {
	f.t.Helper()
	st, err := f.repo.load()
	if err != nil {
		f.t.Fatal(err)
	}
	tf, ok := st.targets.Signed.Targets[name]
	if !ok {
		f.t.Fatalf("no target %s", name)
	}
	return tf
}
