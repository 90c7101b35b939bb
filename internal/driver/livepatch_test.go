package driver

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/plan"
)

// kpatch and canonical-livepatch outputs are written from the tools'
// documented formats, not recorded: Debian packages neither, and the
// kernel drover is tested on has no livepatch support.
const kpatchListOut = `Loaded patch modules:
kpatch_cve_2024_1086 [enabled]

Installed patch modules:
kpatch_cve_2024_1086 (5.14.0-362.8.1.el9_3.x86_64)
`

func TestKpatch(t *testing.T) {
	ctx := context.Background()
	a := plan.Action{LivePatch: &plan.LivePatchAction{ID: "kpatch-cve-2024-1086", Artifact: "kpatch-cve-2024-1086.ko"}}
	r := replayFromText(t, "-- $ kpatch load /var/lib/drover/artifacts/kpatch-cve-2024-1086.ko --\nloading patch module: /var/lib/drover/artifacts/kpatch-cve-2024-1086.ko\n-- $ kpatch list --\n"+kpatchListOut+"-- $ kpatch unload kpatch_cve_2024_1086 --\ndisabling patch module: kpatch_cve_2024_1086\nunloading patch module: kpatch_cve_2024_1086\n")
	fsys := fakeFS{}
	v := fakeVerifier{"kpatch-cve-2024-1086.ko": "/var/lib/drover/artifacts/kpatch-cve-2024-1086.ko"}
	if _, err := NewLivePatch(r, nil, fsys).Apply(ctx, a); !errors.Is(err, ErrNoVerifier) {
		t.Fatalf("unsigned load: %v", err)
	}
	d := NewLivePatch(&enablingRunner{r, fsys}, v, fsys)
	snap, err := d.Snapshot(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.Apply(ctx, a)
	if err != nil || len(out.Changed) != 1 {
		t.Fatalf("%+v %v", out, err)
	}
	if out, err := d.Apply(ctx, a); err != nil || len(out.Changed) != 0 {
		t.Fatalf("second apply %+v %v", out, err)
	}
	out, err = d.Rollback(ctx, a, snap)
	if err != nil || out.Summary != "unloaded live patch kpatch-cve-2024-1086" {
		t.Fatalf("%+v %v", out, err)
	}
}

// enablingRunner makes a kpatch load show up in the fake /sys.
type enablingRunner struct {
	*replayRunner
	fs fakeFS
}

func (e *enablingRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, []byte, error) {
	if name == "kpatch" && len(args) == 2 && args[0] == "load" {
		e.fs["/sys/kernel/livepatch/kpatch_cve_2024_1086/enabled"] = "1\n"
	}
	return e.replayRunner.Run(ctx, env, name, args...)
}

const canonicalStatusJSON = `{"client-version":"10.8.3","machine-id":"a1b2c3","architecture":"x86_64","cpu-model":"Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz","last-check":"2024-09-10T09:00:00Z","boot-time":"2024-09-01T10:00:00Z","uptime":"775200s","status":[{"kernel":"5.15.0-119.129-generic","full-kernel-version":"5.15.0-119.129-generic","running":true,"livepatch":{"checkState":"checked","state":"applied","version":"107.1","fixes":[{"name":"cve-2024-1086","description":"use-after-free in netfilter nf_tables","bug":"","patched":true},{"name":"cve-2024-26800","description":"tls use-after-free","bug":"","patched":false}]},"supported":"supported","upgradeRequiredDate":"2025-01-30"}],"tier":"updates"}`

func TestCanonicalLivepatch(t *testing.T) {
	ctx := context.Background()
	r := replayFromText(t, "-- $ canonical-livepatch status --format json --\n"+canonicalStatusJSON+"\n")
	d := NewLivePatch(r, nil, nil)
	a := plan.Action{LivePatch: &plan.LivePatchAction{ID: "cve-2024-1086", Provider: "canonical-livepatch"}}
	if err := d.Verify(ctx, a); err != nil {
		t.Fatal(err)
	}
	a2 := plan.Action{LivePatch: &plan.LivePatchAction{ID: "cve-2024-26800", Provider: "canonical-livepatch"}}
	if err := d.Verify(ctx, a2); err == nil || !strings.Contains(err.Error(), "known but not patched") {
		t.Fatalf("got %v", err)
	}
	none := plan.Action{Name: "lp", LivePatch: &plan.LivePatchAction{ID: "cve-2024-1086", Provider: "canonical-livepatch", Rollback: "none"}}
	if _, err := d.Rollback(ctx, none, Snapshot{}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("rollback: none: got %v", err)
	}
	if err := checkCanonicalStatus(`{"status":[{"kernel":"k","running":true,"livepatch":{"state":"applied","fixes":"* cve-2024-1086 netfilter\n* cve-2023-0001"}}]}`, "cve-2023-0001"); err != nil {
		t.Fatalf("old text fixes: %v", err)
	}
}

// canonicalNotEnabledStderr is what canonical-livepatch status prints
// once Livepatch is disabled.
const canonicalNotEnabledStderr = "Machine is not enabled. Please run 'sudo canonical-livepatch enable' with the token obtained from https://ubuntu.com/livepatch."

// TestCanonicalLivepatchRollback: Canonical Livepatch cannot unload one
// fix, so rollback disables it (every live patch of the running kernel
// goes) and confirms the fix is gone. No canonical-livepatch client runs
// here (it needs a Canonical account and an Ubuntu kernel): the commands
// are replayed, their outputs written from the client's documentation.
func TestCanonicalLivepatchRollback(t *testing.T) {
	ctx := context.Background()
	a := plan.Action{LivePatch: &plan.LivePatchAction{ID: "cve-2024-1086", Provider: "canonical-livepatch"}}
	applied, _ := json.Marshal(map[string]bool{"applied": true})
	for _, tc := range []struct {
		name, replay string
		snap         Snapshot
		want         string // outcome summary prefix, or error text
		fails        bool
	}{
		{"disabled", "-- $ canonical-livepatch disable --\nSuccessfully disabled device. Removed machine-token: 0123\n" +
			"-- $ canonical-livepatch status --format json --\n-- exit --\n1\n-- stderr --\n" + canonicalNotEnabledStderr + "\n",
			Snapshot{}, "disabled Canonical Livepatch: every live patch of the running kernel removed, cve-2024-1086 among them", false},
		{"fix gone from status", "-- $ canonical-livepatch disable --\n-- $ canonical-livepatch status --format json --\n" +
			strings.Replace(canonicalStatusJSON, `"state":"applied"`, `"state":"nothing-to-apply"`, 1) + "\n",
			Snapshot{}, "disabled Canonical Livepatch", false},
		{"still applied", "-- $ canonical-livepatch disable --\n-- $ canonical-livepatch status --format json --\n" + canonicalStatusJSON + "\n",
			Snapshot{}, "fix cve-2024-1086 still applied after canonical-livepatch disable", true},
		{"disable fails", "-- $ canonical-livepatch disable --\n-- exit --\n1\n-- stderr --\ncannot connect to daemon\n",
			Snapshot{}, "canonical-livepatch disable: exit status 1: cannot connect to daemon", true},
		{"applied before", "", Snapshot{Driver: "livepatch", Data: applied}, "live patch cve-2024-1086 was applied before; left loaded", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := replayFromText(t, tc.replay)
			out, err := NewLivePatch(r, nil, nil).Rollback(ctx, a, tc.snap)
			if tc.fails {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %+v, %v; want an error saying %q", out, err, tc.want)
				}
				return
			}
			if err != nil || !strings.HasPrefix(out.Summary, tc.want) {
				t.Fatalf("got %+v, %v; want %q", out, err, tc.want)
			}
		})
	}
}

func FuzzParseLivepatch(f *testing.F) {
	f.Add(kpatchListOut)
	f.Add(canonicalStatusJSON)
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseKpatchList(s)
		_ = checkCanonicalStatus(s, "cve-2024-1086")
	})
}
