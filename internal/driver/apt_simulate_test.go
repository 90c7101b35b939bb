package driver

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/plan"
)

// TestAptSimulate replays apt-get -s on Debian bookworm: the upgrade of
// a held package pulls in a new dependency and removes a conflicting
// package, all of which Simulate lists; a version whose dependency no
// source has is a conflict, with apt's explanation.
func TestAptSimulate(t *testing.T) {
	ctx := context.Background()
	r := loadReplay(t, "apt/simulate.txt")
	d := NewApt(r, AptOptions{FS: fakeFS{}})

	ch, err := d.Simulate(ctx, pkgAction(plan.PackageUpgrade, false, pin("hello", "2.0")))
	if err != nil {
		t.Fatal(err)
	}
	want := []PlannedOp{
		{Op: "remove", Name: "oldpkg", From: "1.0"},
		{Op: "install", Name: "libhello", To: "2"},
		{Op: "upgrade", Name: "hello", From: "1.0", To: "2.0"},
	}
	if !slices.Equal(ch.Planned, want) || !slices.Equal(ch.Held, []string{"hello"}) || ch.Reboot || ch.None {
		t.Fatalf("simulate: %+v", ch)
	}

	_, err = d.Simulate(ctx, pkgAction(plan.PackageUpgrade, false, pin("hello", "3.0")))
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "hello : Depends: libmissing but it is not installable; Unable to correct problems, you have held broken packages.") {
		t.Fatalf("conflict: %v", err)
	}
}

// TestAptSimulateDowngrade: apt's DOWNGRADED section makes the planned
// operation a downgrade.
func TestAptSimulateDowngrade(t *testing.T) {
	r := loadReplay(t, "apt/simulate-downgrade.txt")
	ch, err := NewApt(r, AptOptions{FS: fakeFS{}}).Simulate(context.Background(), pkgAction(plan.PackageUpgrade, false, pin("hello", "1.0")))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Planned, []PlannedOp{{Op: "downgrade", Name: "hello", From: "2.0", To: "1.0"}}) || len(ch.Held) != 0 {
		t.Fatalf("simulate: %+v", ch)
	}
}

// TestAptSimulateKernelNeedsReboot: a planned kernel image means a
// reboot.
func TestAptSimulateKernelNeedsReboot(t *testing.T) {
	planned, _ := parseAptSimulation("Inst linux-image-amd64 [6.1.119-1] (6.1.123-1 Debian-Security:12/stable-security [amd64])\n" +
		"Inst linux-image-6.1.0-29-amd64 (6.1.123-1 Debian-Security:12/stable-security [amd64])\n")
	if len(planned) != 2 || planned[1] != (PlannedOp{Op: "install", Name: "linux-image-6.1.0-29-amd64", To: "6.1.123-1"}) || !isKernelPackage(planned[1].Name) {
		t.Fatalf("planned %+v", planned)
	}
}
