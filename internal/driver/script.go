package driver

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/plan"
)

// Verifier checks a signed artifact and returns the local path of its
// verified content. Implementations (TUF-backed) must only return a path
// whose bytes were verified against trusted metadata.
type Verifier interface {
	Verify(ctx context.Context, artifact string) (path string, err error)
}

// ErrNoVerifier is wrapped when an artifact must run but no Verifier is
// configured: drover runs signed artifacts only.
var ErrNoVerifier = errors.New("no artifact verifier configured (signed artifacts required)")

// Script runs signed script artifacts. It runs nothing it did not get
// through its Verifier: with none configured every script is refused.
// Scripts must be idempotent, since the agent re-runs Apply for a step
// interrupted before its result was journalled. A script's target state is
// its successful exit: Verify has no state of its own to check and returns
// nil. Rollback runs the action's declared rollback artifact, verified the
// same way; an action without one returns ErrUnsupported.
type Script struct {
	r Runner
	v Verifier
}

var _ Driver = (*Script)(nil)

// NewScript returns the script driver; v nil refuses every script.
func NewScript(r Runner, v Verifier) *Script { return &Script{r: r, v: v} }

// Name is "script".
func (s *Script) Name() string { return "script" }

func (s *Script) action(a plan.Action) (*plan.ScriptAction, error) {
	if a.Script == nil {
		return nil, fmt.Errorf("script: action %q is not a script action: %w", a.Name, ErrUnsupported)
	}
	return a.Script, nil
}

func (s *Script) verify(ctx context.Context, artifact string) (string, error) {
	if s.v == nil {
		return "", fmt.Errorf("script %s refused: %w", artifact, ErrNoVerifier)
	}
	path, err := s.v.Verify(ctx, artifact)
	if err != nil {
		return "", fmt.Errorf("script %s refused: verify artifact: %w", artifact, err)
	}
	return path, nil
}

// Preflight verifies the artifact (and the rollback artifact) without
// running anything.
func (s *Script) Preflight(ctx context.Context, a plan.Action) (Change, error) {
	sa, err := s.action(a)
	if err != nil {
		return Change{}, err
	}
	if _, err := s.verify(ctx, sa.Artifact); err != nil {
		return Change{}, err
	}
	if rb := sa.RollbackArtifact(); rb != "" {
		if _, err := s.verify(ctx, rb); err != nil {
			return Change{}, err
		}
	}
	return Change{Summary: "would run " + sa.Artifact, Items: []ChangeItem{{Name: sa.Artifact, To: "run"}}}, nil
}

// Snapshot records the rollback artifact's name.
func (s *Script) Snapshot(_ context.Context, a plan.Action) (Snapshot, error) {
	sa, err := s.action(a)
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Driver: s.Name(), Summary: "rollback artifact: " + orNone(sa.RollbackArtifact()), Data: []byte("{}")}, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Apply verifies and runs the script with its args, within the action's
// timeout (none: the caller's context).
func (s *Script) Apply(ctx context.Context, a plan.Action) (Outcome, error) {
	sa, err := s.action(a)
	if err != nil {
		return Outcome{}, err
	}
	return s.run(ctx, sa.Artifact, sa.Args, sa.Timeout.D())
}

func (s *Script) run(ctx context.Context, artifact string, args []string, timeout time.Duration) (Outcome, error) {
	path, err := s.verify(ctx, artifact)
	if err != nil {
		return Outcome{}, err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	c, err := scriptCommand(path, artifact, args)
	if err != nil {
		return Outcome{}, fmt.Errorf("script %s: %w", artifact, err)
	}
	stdout, _, err := c.Run(ctx, s.r)
	if err != nil {
		if ctx.Err() != nil && timeout > 0 {
			return Outcome{}, fmt.Errorf("script %s: timed out after %s: %w", artifact, shortDuration(timeout), err)
		}
		return Outcome{}, fmt.Errorf("script %s: %w", artifact, err)
	}
	sum := "ran " + artifact
	if l := lastLine(string(stdout)); l != "" {
		sum += ": " + l
	}
	return Outcome{Summary: sum, Changed: []ChangeItem{{Name: artifact, To: "ran"}}}, nil
}

// scriptCommand runs the verified script at path with args, each a
// plan.ScriptArg and one argv element, and DROVER_ARTIFACT naming the
// artifact. A Windows batch file (.bat, .cmd) is the exception to "one
// argv element": cmd.exe parses its command line again, where '"' ends
// the quoting Go applies, '%' and '!' expand variables and "& | < > ^"
// outside quotes are syntax; its arguments must hold none of them.
func scriptCommand(path, artifact string, args []string) (Command, error) {
	batch := strings.EqualFold(filepath.Ext(path), ".bat") || strings.EqualFold(filepath.Ext(path), ".cmd")
	for i, a := range args {
		if err := plan.ScriptArg.Check(a); err != nil {
			return Command{}, fmt.Errorf("argument %d: %w", i+1, err)
		}
		if j := strings.IndexAny(a, `"%!&|<>^`); batch && j >= 0 {
			return Command{}, fmt.Errorf("argument %d: %w", i+1, &plan.IdentError{Kinds: []plan.Ident{plan.ScriptArg}, Value: a, Offset: j,
				Msg: fmt.Sprintf("character %q not allowed in an argument of a batch file (cmd.exe would read it as syntax)", a[j])})
		}
	}
	return Command{Name: path, Args: args, Env: []string{"DROVER_ARTIFACT=" + artifact}}, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Verify returns nil: a script's target state is its successful exit.
func (s *Script) Verify(_ context.Context, a plan.Action) error {
	_, err := s.action(a)
	return err
}

// Rollback verifies and runs the declared rollback artifact.
func (s *Script) Rollback(ctx context.Context, a plan.Action, _ Snapshot) (Outcome, error) {
	sa, err := s.action(a)
	if err != nil {
		return Outcome{}, err
	}
	if sa.RollbackArtifact() == "" {
		return Outcome{}, fmt.Errorf("script %s declares no rollback artifact: %w", sa.Artifact, ErrUnsupported)
	}
	return s.run(ctx, sa.RollbackArtifact(), nil, sa.Timeout.D())
}
