package driver

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/plan"
)

// Provenance: the outputs below are written from the documented shapes of
// ConvertTo-Json and of the Windows Update Agent API's result codes, not
// recorded on Windows: no Windows host (nor pwsh, which Debian does not
// package) is reachable where drover is built and tested. The dnf and
// zypper transcripts, by contrast, are recorded from the real tools
// (scripts/record-rpm.sh).
//
// The PowerShell scripts show in transcripts by their first line.
const ps = "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -Command "

func TestWindowsUpdate(t *testing.T) {
	ctx := context.Background()
	r := replayFromText(t, `ConvertTo-Json output of the query and install scripts on Windows
Server 2022 (build 20348.2655 before KB5043050).

-- $ `+ps+`'# drover wu-query ...' --
{"available":[{"kb":"KB5043050","title":"2024-09 Cumulative Update for Microsoft server operating system version 21H2 for x64-based Systems (KB5043050)","maxDownloadSize":412345678,"rebootBehavior":1}],"installed":[],"build":"20348.2655","rebootPending":false}
-- $ `+ps+`'# drover wu-install ...' --
{"resultCode":2,"rebootRequired":true,"updates":[{"kb":"KB5043050","title":"2024-09 Cumulative Update for Microsoft server operating system version 21H2 for x64-based Systems (KB5043050)","resultCode":2,"hresult":0}]}
-- $ `+ps+`'# drover wu-query ...' --
{"available":[],"installed":[],"build":"20348.2655","rebootPending":false}
-- $ wusa.exe /uninstall /kb:5043050 /quiet /norestart --
-- exit --
3010
`)
	d := NewWindowsUpdate(r)
	a := plan.Action{Package: &plan.PackageAction{Packages: []plan.PackagePin{{Name: "KB5043050", Version: "20348.2700"}}}}
	ch, err := d.Preflight(ctx, a)
	if err != nil || len(ch.Items) != 1 {
		t.Fatalf("%+v %v", ch, err)
	}
	snap, err := d.Snapshot(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.Apply(ctx, a)
	if err != nil || !out.RebootRequired || len(out.Changed) != 1 {
		t.Fatalf("%+v %v", out, err)
	}
	out, err = d.Rollback(ctx, a, snap)
	if err != nil || !out.RebootRequired || len(out.Changed) != 1 {
		t.Fatalf("%+v %v", out, err)
	}
	other := plan.Action{Package: &plan.PackageAction{Packages: []plan.PackagePin{{Name: "KB5044281"}}}}
	if _, err := d.Preflight(ctx, other); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
	bad := plan.Action{Package: &plan.PackageAction{Packages: []plan.PackagePin{{Name: "KB1'; Remove-Item C:\\"}}}}
	if _, err := d.Apply(ctx, bad); err == nil || !strings.Contains(err.Error(), "invalid KB") {
		t.Fatalf("got %v", err)
	}
}

func TestWindowsUpdateFailed(t *testing.T) {
	r := replayFromText(t, `-- $ `+ps+`'# drover wu-query ...' --
{"available":[{"kb":"KB5043050","title":"t","maxDownloadSize":1}],"installed":[],"build":"20348.2655","rebootPending":false}
-- $ `+ps+`'# drover wu-install ...' --
{"resultCode":4,"rebootRequired":false,"updates":[{"kb":"KB5043050","title":"t","resultCode":4,"hresult":-2145124329}]}
`)
	_, err := NewWindowsUpdate(r).Apply(context.Background(), plan.Action{Package: &plan.PackageAction{Packages: []plan.PackagePin{{Name: "KB5043050"}}}})
	if err == nil || err.Error() != "windows-update: install failed: KB5043050 failed (0x80240017)" {
		t.Fatalf("got %v", err)
	}
}

func FuzzParseWindowsUpdateJSON(f *testing.F) {
	f.Add(`{"resultCode":3,"updates":[{"kb":"KB1","resultCode":3}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		r := replayFromText(t, "-- $ "+ps+"'# drover wu-query ...' --\n"+strings.ReplaceAll(s, "\n-- ", "\n")+"\n")
		_, _ = NewWindowsUpdate(r).Preflight(context.Background(), plan.Action{Package: &plan.PackageAction{Packages: []plan.PackagePin{{Name: "KB5043050"}}}})
	})
}

// TestWindowsUpdateVerifyBuild: a pin may name the build as the OS
// reports it (CurrentBuild.UBR) or as the agent reports os.version and the
// examples pin it (10.0.BUILD.UBR); both verify against the running build,
// and another build does not.
func TestWindowsUpdateVerifyBuild(t *testing.T) {
	query := `{"available":[],"installed":["KB5044281"],"build":"20348.2762","rebootPending":false}`
	for _, c := range []struct {
		pin  string
		want bool
	}{{"20348.2762", true}, {"10.0.20348.2762", true}, {"10.0.20348.2700", false}, {"20348.2700", false}, {"10.0.17763.2762", false}} {
		r := replayFromText(t, "build 20348.2762 with KB5044281 installed\n\n-- $ "+ps+"'# drover wu-query ...' --\n"+query+"\n")
		a := plan.Action{Package: &plan.PackageAction{Packages: []plan.PackagePin{{Name: "KB5044281", Version: c.pin}}}}
		err := NewWindowsUpdate(r).Verify(context.Background(), a)
		if (err == nil) != c.want {
			t.Errorf("pin %s on build 20348.2762: err %v, want ok=%v", c.pin, err, c.want)
		}
	}
}

// A plan lists one cumulative update per Windows release; each node
// installs the one for the build it runs.
func TestWindowsUpdateForBuild(t *testing.T) {
	pins := []plan.PackagePin{{Name: "KB5043050", Version: "10.0.17763.6293"}, {Name: "KB5042881", Version: "10.0.20348.2700"}}
	got, err := forBuild(pins, "20348.2655")
	if err != nil || len(got) != 1 || got[0].Name != "KB5042881" {
		t.Fatalf("Server 2022: %v %v", got, err)
	}
	got, err = forBuild(append(pins, plan.PackagePin{Name: "KB890830"}), "17763.6189")
	if err != nil || len(got) != 2 || got[0].Name != "KB5043050" || got[1].Name != "KB890830" {
		t.Fatalf("Server 2019 with a build-less pin: %v %v", got, err)
	}
	_, err = forBuild(pins, "26100.2314")
	if !errors.Is(err, ErrUnavailable) || err.Error() != "windows-update: no KB of the plan is for this node's build 26100: KB5043050 (17763), KB5042881 (20348): target not available" {
		t.Fatalf("Server 2025: %v", err)
	}

	r := replayFromText(t, `Server 2022 offered its September cumulative update only.

-- $ `+ps+`'# drover wu-query ...' --
{"available":[{"kb":"KB5042881","title":"2024-09 Cumulative Update for Microsoft server operating system version 21H2 for x64-based Systems (KB5042881)","maxDownloadSize":412345678,"rebootBehavior":1}],"installed":[],"build":"20348.2655","rebootPending":false}
`)
	ch, err := NewWindowsUpdate(r).Preflight(context.Background(), plan.Action{Package: &plan.PackageAction{Packages: pins}})
	if err != nil || len(ch.Items) != 1 || ch.Items[0].Name != "KB5042881" {
		t.Fatalf("preflight: %+v %v", ch, err)
	}
}
