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
// Restart-Service over systemctl.
func NewService(r Runner, windows bool) *Service { return &Service{r: r, windows: windows} }

// Name is "service".
func (s *Service) Name() string { return "service" }

func (s *Service) unit(a plan.Action) (string, error) {
	if a.ServiceRestart == nil || a.ServiceRestart.Service == "" {
		return "", fmt.Errorf("service: action %q is not a service restart: %w", a.Name, ErrUnsupported)
	}
	u := a.ServiceRestart.Service
	if strings.HasPrefix(u, "-") || strings.ContainsAny(u, "'\"`;$&|\n") {
		return "", fmt.Errorf("service %q: invalid name", u)
	}
	return u, nil
}

// Preflight checks the service exists.
func (s *Service) Preflight(ctx context.Context, a plan.Action) (Change, error) {
	u, err := s.unit(a)
	if err != nil {
		return Change{}, err
	}
	if s.windows {
		if _, _, err := s.r.Run(ctx, nil, "powershell", "-NoProfile", "-NonInteractive", "-Command", "Get-Service -Name '"+u+"' | Out-Null"); err != nil {
			return Change{}, fmt.Errorf("service %s: not found: %w", u, err)
		}
	} else if out, _, err := s.r.Run(ctx, nil, "systemctl", "show", "--property=LoadState", "--value", u); err != nil || strings.TrimSpace(string(out)) == "not-found" {
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
	if s.windows {
		_, _, err = s.r.Run(ctx, nil, "powershell", "-NoProfile", "-NonInteractive", "-Command", "Restart-Service -Name '"+u+"' -ErrorAction Stop")
	} else {
		_, _, err = s.r.Run(ctx, nil, "systemctl", "restart", u)
	}
	if err != nil {
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
	if s.windows {
		out, _, err := s.r.Run(ctx, nil, "powershell", "-NoProfile", "-NonInteractive", "-Command", "(Get-Service -Name '"+u+"').Status")
		if err != nil || strings.TrimSpace(string(out)) != "Running" {
			return fmt.Errorf("service %s is not running (%s): %v", u, strings.TrimSpace(string(out)), err)
		}
		return nil
	}
	out, _, err := s.r.Run(ctx, nil, "systemctl", "is-active", u)
	if state := strings.TrimSpace(string(out)); state != "active" {
		return fmt.Errorf("service %s is %s, not active: %v", u, state, err)
	}
	return nil
}

// Rollback restarts the service again.
func (s *Service) Rollback(ctx context.Context, a plan.Action, _ Snapshot) (Outcome, error) {
	return s.Apply(ctx, a)
}
