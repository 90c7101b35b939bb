package driver

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/plan"
)

type fakeVerifier map[string]string

func (f fakeVerifier) Verify(_ context.Context, artifact string) (string, error) {
	if p, ok := f[artifact]; ok {
		return p, nil
	}
	return "", errors.New("signature does not verify")
}

func TestScript(t *testing.T) {
	ctx := context.Background()
	a := plan.Action{Script: &plan.ScriptAction{Artifact: "fix.sh", Args: []string{"--now"}, Rollback: "unfix.sh", Timeout: plan.Duration(time.Minute)}}
	t.Run("no verifier", func(t *testing.T) {
		d := NewScript(replayFromText(t, ""), nil)
		_, err := d.Apply(ctx, a)
		if !errors.Is(err, ErrNoVerifier) || err.Error() != "script fix.sh refused: no artifact verifier configured (signed artifacts required)" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("bad signature", func(t *testing.T) {
		d := NewScript(replayFromText(t, ""), fakeVerifier{})
		if _, err := d.Preflight(ctx, a); err == nil || !strings.Contains(err.Error(), "script fix.sh refused: verify artifact: signature does not verify") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("apply and rollback", func(t *testing.T) {
		r := replayFromText(t, "-- $ /var/lib/drover/artifacts/fix.sh --now --\npatched 3 files\n-- $ /var/lib/drover/artifacts/unfix.sh --\n")
		d := NewScript(r, fakeVerifier{"fix.sh": "/var/lib/drover/artifacts/fix.sh", "unfix.sh": "/var/lib/drover/artifacts/unfix.sh"})
		out, err := d.Apply(ctx, a)
		if err != nil || out.Summary != "ran fix.sh: patched 3 files" {
			t.Fatalf("%+v %v", out, err)
		}
		if _, err := d.Rollback(ctx, a, Snapshot{}); err != nil {
			t.Fatal(err)
		}
		noRb := plan.Action{Script: &plan.ScriptAction{Artifact: "fix.sh"}}
		if _, err := d.Rollback(ctx, noRb, Snapshot{}); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		d := NewScript(NewExecRunner(0), fakeVerifier{"slow.sh": "sleep"})
		sa := plan.Action{Script: &plan.ScriptAction{Artifact: "slow.sh", Args: []string{"30"}, Timeout: plan.Duration(100 * time.Millisecond)}}
		_, err := d.Apply(ctx, sa)
		if err == nil || !strings.Contains(err.Error(), "script slow.sh: timed out after 100ms") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestRebooter(t *testing.T) {
	ctx := context.Background()
	r := replayFromText(t, "-- $ systemctl reboot --\n-- $ shutdown /r /t 0 --\n-- $ shutdown -r now --\n")
	for _, goos := range []string{"linux", "windows", "darwin"} {
		if err := NewRebooter(r, goos, fakeFS{}).Reboot(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := NewRebooter(r, "plan9", nil).Reboot(ctx); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("got %v", err)
	}
	id, err := NewRebooter(r, "linux", fakeFS{"/proc/sys/kernel/random/boot_id": "5f1c2a9e-3b7d-4c1e-9a2b-0d8e6f4c3b21\n"}).BootID(ctx)
	if err != nil || id != "5f1c2a9e-3b7d-4c1e-9a2b-0d8e6f4c3b21" {
		t.Fatalf("%q %v", id, err)
	}
	if _, err := NewRebooter(r, "linux", fakeFS{"/proc/sys/kernel/random/boot_id": "junk"}).BootID(ctx); err == nil {
		t.Fatal("malformed boot id accepted")
	}
}
