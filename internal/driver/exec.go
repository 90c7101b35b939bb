package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ExecRunner runs commands with os/exec. Every command runs with LC_ALL=C
// (so the drivers parse the untranslated output of the tools) plus the env
// passed to Run, and is killed, with every process it started, when its
// timeout or the caller's context ends.
type ExecRunner struct {
	// Timeout bounds each command; 0 means only the caller's context does.
	Timeout time.Duration
	// WaitDelay is how long Run waits for the command's output pipes after
	// killing it (a grandchild may hold them open); default 5s.
	WaitDelay time.Duration
}

var _ Runner = (*ExecRunner)(nil)

// NewExecRunner returns the Runner the agent uses on a real node: each
// command is killed after timeout (0: no limit but the context's).
func NewExecRunner(timeout time.Duration) Runner {
	return &ExecRunner{Timeout: timeout, WaitDelay: 5 * time.Second}
}

// Run runs name with args. It returns *ExitError (with stderr) when the
// command exited non-zero; an error wrapping context.DeadlineExceeded and
// saying "timed out after D" when the runner's timeout killed it; the
// context's error when the caller cancelled; and an error wrapping
// exec.ErrNotFound (or fs.ErrNotExist) when the command does not exist.
func (r *ExecRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, []byte, error) {
	runCtx := ctx
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(runCtx, name, args...)
	ownGroup(cmd)
	cmd.Env = append(append(os.Environ(), "LC_ALL=C"), env...)
	cmd.WaitDelay = r.WaitDelay
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = 5 * time.Second
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), stderr.Bytes(), nil
	}
	line := commandLine(name, args...)
	switch {
	case ctx.Err() != nil:
		return stdout.Bytes(), stderr.Bytes(), fmt.Errorf("%s: %w", line, ctx.Err())
	case runCtx.Err() != nil:
		return stdout.Bytes(), stderr.Bytes(), fmt.Errorf("%s: timed out after %s: %w", line, shortDuration(r.Timeout), context.DeadlineExceeded)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.Bytes(), stderr.Bytes(), &ExitError{Code: ee.ExitCode(), Stderr: strings.TrimSpace(stderr.String())}
	}
	return stdout.Bytes(), stderr.Bytes(), fmt.Errorf("%s: %w", line, err)
}

// shortDuration prints 5m rather than 5m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// commandLine renders a command for errors and recorded transcripts:
// arguments holding spaces, quotes or shell metacharacters are single-quoted
// (as a shell would need them), and an argument
// spanning several lines (an inline script) is shown by its first line
// followed by "...".
func commandLine(name string, args ...string) string {
	var b strings.Builder
	b.WriteString(name)
	for _, a := range args {
		b.WriteByte(' ')
		if i := strings.IndexByte(a, '\n'); i >= 0 {
			a = strings.TrimSpace(a[:i]) + " ..."
		}
		if a == "" || strings.ContainsAny(a, " \t'\"$%{}*?;&|<>()\\") {
			b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
			continue
		}
		b.WriteString(a)
	}
	return b.String()
}

// isNotFound reports whether err says the command is not installed.
func isNotFound(err error) bool {
	return errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)
}

// exitCode returns the exit code of a command that ran, or -1.
func exitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return -1
}

// cmdError wraps a Runner error with the command line, keeping *ExitError
// reachable through errors.As; kind (may be nil) is a sentinel to wrap too.
func cmdError(kind error, line string, err error, detail string) error {
	if detail != "" {
		detail = ": " + detail
	}
	if kind != nil {
		return fmt.Errorf("%s%s: %w (%w)", line, detail, kind, err)
	}
	return fmt.Errorf("%s%s: %w", line, detail, err)
}

// FileSystem is what drivers read from the node's files (reboot-required
// markers, /sys, /proc). Tests pass a fake.
type FileSystem interface {
	ReadFile(name string) ([]byte, error)
}

// OSFileSystem reads the real files.
type OSFileSystem struct{}

// ReadFile reads the named file with os.ReadFile.
func (OSFileSystem) ReadFile(name string) ([]byte, error) { return os.ReadFile(name) }
