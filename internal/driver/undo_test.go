package driver

import (
	"context"
	"errors"
	"testing"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

// noCommands fails every command, with an error that is not
// ErrUnsupported: the honesty test only asks whether a driver declines.
type noCommands struct{}

func (noCommands) Run(context.Context, []string, string, ...string) ([]byte, []byte, error) {
	return nil, nil, errors.New("no command runs in this test")
}

// TestUndoOfIsHonest holds the drivers of every os family to what UndoOf
// declares: where it says there is no driver, the registry has none or
// the driver declines the action (ErrUnsupported) before running
// anything; where it says no way back, the driver's Rollback declines;
// where it names a way, Rollback does not decline (it may fail here for
// want of a real tool or snapshot, not for want of a way).
func TestUndoOfIsHonest(t *testing.T) {
	ctx := context.Background()
	pins := []plan.PackagePin{{Name: "openssl", Version: "3.0.16"}}
	actions := map[string]plan.Action{
		"package":              {Package: &plan.PackageAction{Packages: pins, Families: map[string][]plan.PackagePin{"windows": {{Name: "KB5043050", Version: "10.0.20348.2700"}}, "macos": {{Name: "macOS Sonoma 14.7", Version: "14.7"}}}}},
		"package none":         {Package: &plan.PackageAction{Packages: pins, Families: map[string][]plan.PackagePin{"windows": {{Name: "KB5043050", Version: "10.0.20348.2700"}}, "macos": {{Name: "macOS Sonoma 14.7", Version: "14.7"}}}, Rollback: plan.RollbackNone}},
		"kernel":               {Kernel: &plan.KernelAction{Version: "6.1.0-30", Package: "linux-image-6.1.0-30-amd64"}},
		"kernel none":          {Kernel: &plan.KernelAction{Version: "6.1.0-30", Package: "linux-image-6.1.0-30-amd64", Rollback: "none"}},
		"kpatch":               {LivePatch: &plan.LivePatchAction{ID: "kpatch-cve-2024-1086", Artifact: "kpatch-cve-2024-1086.ko", Provider: "kpatch"}},
		"canonical-livepatch":  {LivePatch: &plan.LivePatchAction{ID: "cve-2024-1086", Provider: "canonical-livepatch"}},
		"livepatch none":       {LivePatch: &plan.LivePatchAction{ID: "cve-2024-1086", Provider: "canonical-livepatch", Rollback: "none"}},
		"service-restart":      {ServiceRestart: &plan.ServiceRestartAction{Service: "nginx"}},
		"container-runtime":    {ContainerRuntime: &plan.ContainerRuntimeAction{Runtime: "containerd", Version: "1.7.27-1"}},
		"script":               {Script: &plan.ScriptAction{Artifact: "fix.sh", Rollback: "unfix.sh"}},
		"script no rollback":   {Script: &plan.ScriptAction{Artifact: "fix.sh"}},
		"script rollback none": {Script: &plan.ScriptAction{Artifact: "fix.sh", Rollback: plan.ScriptNoRollback}},
	}
	for _, fam := range []string{"debian", "ubuntu", "rhel", "suse", "windows", "macos", "plan9"} {
		facts := fleet.Facts{}
		facts.OS.Family = fam
		reg := ForHost(facts, HostOptions{Runner: noCommands{}})
		for name, a := range actions {
			u := UndoOf(a, fam)
			if u.Way == "" {
				t.Errorf("%s on %s: UndoOf says neither how nor why", name, fam)
			}
			d, err := reg.For(a, facts)
			if err != nil {
				if !u.NoDriver {
					t.Errorf("%s on %s: no driver (%v), but UndoOf says %+v", name, fam, err, u)
				}
				continue
			}
			if _, err := d.Preflight(ctx, a); errors.Is(err, ErrUnsupported) {
				if !u.NoDriver {
					t.Errorf("%s on %s: driver %s declines it (%v), but UndoOf says %+v", name, fam, d.Name(), err, u)
				}
				continue
			}
			if u.NoDriver {
				t.Errorf("%s on %s: UndoOf says no driver, but %s takes it", name, fam, d.Name())
				continue
			}
			_, err = d.Rollback(ctx, a, Snapshot{Driver: d.Name(), Data: []byte("{}")})
			if declined := errors.Is(err, ErrUnsupported); declined != u.None {
				t.Errorf("%s on %s: %s.Rollback: %v; UndoOf says %+v", name, fam, d.Name(), err, u)
			}
		}
	}
}
