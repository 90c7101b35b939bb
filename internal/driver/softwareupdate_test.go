package driver

import (
	"context"
	"errors"
	"testing"

	"github.com/drover-dev/drover/internal/plan"
)

// softwareupdate --list as macOS 14 prints it (tab-indented details),
// written from Apple's documented format and published transcripts, not
// recorded: no macOS host is reachable where drover is tested.
const swList = "Software Update Tool\n\nFinding available software\nSoftware Update found the following new or updated software:\n* Label: macOS Sonoma 14.6.1-23G93\n\tTitle: macOS Sonoma 14.6.1, Version: 14.6.1, Size: 1562012KiB, Recommended: YES, Action: restart, \n* Label: Safari17.6MontereyAuto-17.6\n\tTitle: Safari, Version: 17.6, Size: 143200KiB, Recommended: YES, \n"

func TestSoftwareUpdate(t *testing.T) {
	ctx := context.Background()
	r := replayFromText(t, "-- $ softwareupdate --list --\n"+swList+
		"-- $ sw_vers -productVersion --\n14.5\n"+
		"-- $ softwareupdate --install 'macOS Sonoma 14.6.1-23G93' --\nSoftware Update Tool\n\nFinding available software\n\nDownloading macOS Sonoma 14.6.1\nDownloaded: macOS Sonoma 14.6.1\nRestart required\n")
	d := NewSoftwareUpdate(r)
	a := plan.Action{Package: &plan.PackageAction{Packages: []plan.PackagePin{{Name: "macOS Sonoma 14.6.1", Version: "14.6.1"}}}}
	ch, err := d.Preflight(ctx, a)
	if err != nil || len(ch.Items) != 1 {
		t.Fatalf("%+v %v", ch, err)
	}
	out, err := d.Apply(ctx, a)
	if err != nil || !out.RebootRequired || out.Changed[0].Name != "macOS Sonoma 14.6.1-23G93" {
		t.Fatalf("%+v %v", out, err)
	}
	if _, err := d.Rollback(ctx, a, Snapshot{}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("got %v", err)
	}
	missing := plan.Action{Package: &plan.PackageAction{Packages: []plan.PackagePin{{Name: "macOS Sonoma 14.7", Version: "14.7"}}}}
	if _, err := d.Preflight(ctx, missing); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
	ups, err := parseSoftwareUpdateList(swList)
	if err != nil || len(ups) != 2 || ups[1].Restart || ups[0].SizeKiB != 1562012 {
		t.Fatalf("%+v %v", ups, err)
	}
	if _, err := parseSoftwareUpdateList("* Label: x\n"); err == nil {
		t.Fatal("entry without title accepted")
	}
}

func FuzzParseSoftwareUpdateList(f *testing.F) {
	f.Add(swList)
	f.Fuzz(func(t *testing.T, s string) { _, _ = parseSoftwareUpdateList(s) })
}
