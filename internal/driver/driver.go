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
	// ErrConflict: the package manager would not resolve the change
	// (unmet dependencies, conflicts, held packages in the way).
	ErrConflict = errors.New("package manager cannot resolve the change")
	// ErrIncompatible: the change is not compatible with this node or
	// its cluster (e.g. a kubelet outside the API server's version skew).
	ErrIncompatible = errors.New("incompatible change")
)

// Change is what Preflight found the action would do.
type Change struct {
	Summary string       `json:"summary"`
	Items   []ChangeItem `json:"items,omitempty"`
	// None is true when the node is already in the target state: Apply
	// would change nothing (idempotency).
	None bool `json:"none"`
	// Planned is what the package manager's own simulation says it would
	// do (apt-get -s): the pinned packages and every dependency it would
	// install, upgrade, downgrade or remove with them; nil when the
	// driver has no simulation or nothing changes.
	Planned []PlannedOp `json:"planned,omitempty"`
	// Held lists the packages the change touches that are held now
	// (Apply unholds them for the change and holds them again).
	Held []string `json:"held,omitempty"`
	// BytesNeeded is the download the change needs, BytesFree the free
	// space where it goes; both 0 when not measured.
	BytesNeeded int64 `json:"bytesNeeded,omitempty"`
	BytesFree   int64 `json:"bytesFree,omitempty"`
	// Reboot says the change would need a reboot to take effect (a new
	// kernel).
	Reboot bool `json:"reboot,omitempty"`
}

// PlannedOp is one package operation a package manager would perform.
type PlannedOp struct {
	Op   string `json:"op"` // install | upgrade | downgrade | remove
	Name string `json:"name"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
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
	// enough disk, lock free, no conflict) and says what would change;
	// it changes nothing on the node. The agent runs it at the start of
	// every apply step and, for a rollout's node pre-flight, on its own.
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

// Simulator is a driver whose tool can rehearse a change without making
// it (apt-get -s): a node's pre-flight calls Simulate after Preflight, to
// learn every package the change would touch and whether the package
// manager would resolve it. Simulate changes nothing on the node.
type Simulator interface {
	Simulate(ctx context.Context, a plan.Action) (Change, error)
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
