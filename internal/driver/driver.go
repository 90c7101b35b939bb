// Package driver owns how one kind of change is made on one node: package
// managers (apt, dnf, zypper), Windows Update, macOS softwareupdate, kernel
// live patches, boot loaders (GRUB, systemd-boot: the kernel fallback),
// container runtimes, Kubernetes node drain, reboots, signed
// scripts, and the simulated driver of the demo. Drivers know nothing of
// the control plane; the agent picks a driver per action and node.
package driver

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/drover-dev/drover/internal/plan"
)

// Errors drivers wrap so the agent can tell kinds of failure apart.
var (
	// ErrUnsupported: this driver cannot perform this action here.
	ErrUnsupported = errors.New("unsupported action")
	// ErrLocked: another process holds the package manager's lock.
	ErrLocked = errors.New("package manager is locked by another process")
	// ErrUnavailable: the target (package version, KB, patch) is not
	// available from the configured sources.
	ErrUnavailable = errors.New("target not available")
	// ErrNoSpace: not enough disk space for the change.
	ErrNoSpace = errors.New("not enough disk space")
)

// Change is what Preflight found the action would do.
type Change struct {
	Summary string       `json:"summary"`
	Items   []ChangeItem `json:"items,omitempty"`
	// None is true when the node is already in the target state: Apply
	// would change nothing (idempotency).
	None bool `json:"none"`
}

// ChangeItem is one thing that changes, e.g. a package version.
type ChangeItem struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

// Snapshot records what to restore, taken before Apply and kept as
// evidence. Data is driver-specific (e.g. previous package versions).
type Snapshot struct {
	Driver  string          `json:"driver"`
	Summary string          `json:"summary"`
	Data    json.RawMessage `json:"data"`
}

// Outcome is what Apply or Rollback did.
type Outcome struct {
	Summary        string       `json:"summary"`
	Changed        []ChangeItem `json:"changed,omitempty"`
	RebootRequired bool         `json:"rebootRequired,omitempty"`
	// Deferred lists the service restarts an ApplyDeferred held back
	// ("nginx.service restart"), for RunDeferred.
	Deferred []string `json:"deferred,omitempty"`
}

// RestartDeferrer is implemented by drivers that can apply an action
// with the service restarts it would cause held back, so that a check
// runs between the change and the restarts (a plan's preRestartCheck).
type RestartDeferrer interface {
	// ApplyDeferred is Apply with the restarts held back and listed in
	// Outcome.Deferred; it fails wrapping ErrUnsupported, before anything
	// changes, where the driver cannot hold them back.
	ApplyDeferred(ctx context.Context, a plan.Action) (Outcome, error)
	// RunDeferred runs restarts an ApplyDeferred held back.
	RunDeferred(ctx context.Context, a plan.Action, deferred []string) error
}

// Driver performs one kind of action. Every method is idempotent: applying
// an action already in place reports success without changing anything.
type Driver interface {
	// Name is the driver's name as shown in evidence ("apt", "dnf", ...).
	Name() string
	// Preflight checks the action can be applied (target available,
	// enough disk, lock free) and says what would change.
	Preflight(ctx context.Context, a plan.Action) (Change, error)
	// Snapshot records the state Rollback restores.
	Snapshot(ctx context.Context, a plan.Action) (Snapshot, error)
	Apply(ctx context.Context, a plan.Action) (Outcome, error)
	// Verify returns nil when the action's target state holds (used after
	// Apply and when resuming an interrupted step).
	Verify(ctx context.Context, a plan.Action) error
	// Rollback restores the snapshot.
	Rollback(ctx context.Context, a plan.Action, s Snapshot) (Outcome, error)
}

// Runner runs a command. Drivers take one so tests can replay recorded
// outputs of real tools; the agent passes an os/exec runner with timeouts.
type Runner interface {
	Run(ctx context.Context, env []string, name string, args ...string) (stdout, stderr []byte, err error)
}

// ExitError is returned by a Runner when the command ran and exited
// non-zero.
type ExitError struct {
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	return "exit status " + strconv.Itoa(e.Code) + ": " + e.Stderr
}
