package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/drover-dev/drover/internal/plan"
)

// Service restarts a systemd unit (Linux) or a Windows service. A restart
// has no state to snapshot or roll back: Rollback restarts it again, which
// is what undoing a restart means after the change it followed is undone.
type Service struct {
	r       Runner
	windows bool
}

var _ Driver = (*Service)(nil)

// NewService returns the service driver; windows selects PowerShell's
// Restart-Service over systemctl. Service names are checked against
// plan.SystemdUnit or plan.WindowsService and reach the tool as one argv
// element (systemctl) or in an environment variable (PowerShell).
func NewService(r Runner, windows bool) *Service { return &Service{r: r, windows: windows} }

// Name is "service".
func (s *Service) Name() string { return "service" }

// unit returns the service's name, a plan.SystemdUnit on Linux, a
// plan.WindowsService on Windows.
func (s *Service) unit(a plan.Action) (string, error) {
	if a.ServiceRestart == nil {
		return "", fmt.Errorf("service: action %q is not a service restart: %w", a.Name, ErrUnsupported)
	}
	u := a.ServiceRestart.Service
	kind := plan.SystemdUnit
	if s.windows {
		kind = plan.WindowsService
	}
	if err := kind.Check(u); err != nil {
		return "", fmt.Errorf("service: %w", err)
	}
	return u, nil
}

// command builds the command doing op with the service: systemctl with
// the unit as its last argument, or PowerShell with the name in its
// environment (WindowsServiceCommand).
func (s *Service) command(op ServiceOp, u string) (Command, error) {
	if s.windows {
		return WindowsServiceCommand(op, u)
	}
	switch op {
	case ServiceExists:
		return SystemctlCommand(u, "show", "--property=LoadState", "--value")
	case ServiceStatus:
		return SystemctlCommand(u, "is-active")
	}
	return SystemctlCommand(u, "restart")
}

// run runs the command doing op with the service.
func (s *Service) run(ctx context.Context, op ServiceOp, u string) (string, error) {
	c, err := s.command(op, u)
	if err != nil {
		return "", fmt.Errorf("service: %w", err)
	}
	out, _, err := c.Run(ctx, s.r)
	return strings.TrimSpace(string(out)), err
}

// Preflight checks the service exists.
func (s *Service) Preflight(ctx context.Context, a plan.Action) (Change, error) {
	u, err := s.unit(a)
	if err != nil {
		return Change{}, err
	}
	out, err := s.run(ctx, ServiceExists, u)
	switch {
	case s.windows && err != nil:
		return Change{}, fmt.Errorf("service %s: not found: %w", u, err)
	case !s.windows && (err != nil || out == "not-found"):
		return Change{}, fmt.Errorf("service %s: unit not found: %w", u, orNotFound(err))
	}
	return Change{Summary: "restart " + u, Items: []ChangeItem{{Name: u, From: "running", To: "restarted"}}}, nil
}

func orNotFound(err error) error {
	if err != nil {
		return err
	}
	return ErrUnavailable
}

// Snapshot records nothing to restore.
func (s *Service) Snapshot(_ context.Context, a plan.Action) (Snapshot, error) {
	u, err := s.unit(a)
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Driver: s.Name(), Summary: "restart of " + u + " has no state to restore", Data: json.RawMessage(`{}`)}, nil
}

// Apply restarts the service.
func (s *Service) Apply(ctx context.Context, a plan.Action) (Outcome, error) {
	u, err := s.unit(a)
	if err != nil {
		return Outcome{}, err
	}
	if _, err := s.run(ctx, ServiceRestart, u); err != nil {
		return Outcome{}, fmt.Errorf("restart %s: %w", u, err)
	}
	return Outcome{Summary: "restarted " + u}, nil
}

// Verify checks the service runs.
func (s *Service) Verify(ctx context.Context, a plan.Action) error {
	u, err := s.unit(a)
	if err != nil {
		return err
	}
	state, err := s.run(ctx, ServiceStatus, u)
	switch {
	case s.windows && (err != nil || state != "Running"):
		return fmt.Errorf("service %s is not running (%s): %v", u, state, err)
	case !s.windows && state != "active":
		return fmt.Errorf("service %s is %s, not active: %v", u, state, err)
	}
	return nil
}

// Rollback restarts the service again.
func (s *Service) Rollback(ctx context.Context, a plan.Action, _ Snapshot) (Outcome, error) {
	return s.Apply(ctx, a)
}
