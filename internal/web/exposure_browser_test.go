package web_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/drover-dev/drover/internal/api"
)

// everyDebOpenSSL is an advisory no openssl of the demo fleet is fixed
// for (fixed in 9.9.9), on Debian and Ubuntu: every such node stays
// affected whatever the demo's rollouts did.
const everyDebOpenSSL = `{"schema_version": "1.6.0", "id": "DSA-9999-1", "summary": "openssl - test advisory",
 "published": "2026-11-01T00:00:00Z", "modified": "2026-11-01T00:00:00Z",
 "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
 "affected": [
  {"package": {"ecosystem": "Debian:11", "name": "openssl"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9.9.9-1"}]}]},
  {"package": {"ecosystem": "Debian:12", "name": "openssl"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9.9.9-1"}]}]},
  {"package": {"ecosystem": "Ubuntu:22.04:LTS", "name": "openssl"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9.9.9-1"}]}]},
  {"package": {"ecosystem": "Ubuntu:24.04:LTS", "name": "openssl"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9.9.9-1"}]}]}]}`

// TestExposureInBrowser: once the demo's rollouts ended (its advisories
// judged before and after them), the exposure page shows the history's
// figures as the API gives them (remediations, their mean time), the
// advisories with their open exposures, and, picked in the advisory
// list, who is exposed to an advisory: the API's affected nodes, each
// with its OS, installed and fixed versions.
func TestExposureInBrowser(t *testing.T) {
	f := newFixture(t)
	alice := f.client("alice")
	waitDemoDone(t, f.ctx, alice)
	if _, err := alice.ImportAdvisories(f.ctx, []api.AdvisoryDocument{{Name: "dsa-9999-1.json", Content: []byte(everyDebOpenSSL)}}); err != nil {
		t.Fatal(err)
	}
	rep, err := alice.Exposure(f.ctx, "DSA-9999-1", "")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range rep.Nodes {
		if n.Status == "affected" {
			want = append(want, n.Node)
		}
	}
	if len(want) == 0 {
		t.Fatalf("no Debian or Ubuntu node in the demo fleet: %+v", rep.Counts)
	}
	sum, err := alice.ExposureSummary(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Remediated == 0 {
		t.Fatalf("the demo's rollout remediated nothing: %+v", sum)
	}

	f.signIn("alice")
	f.do("open exposure", chromedp.Navigate(f.base+"/ui/exposure"), chromedp.WaitVisible(chromedp.CSS("#exposure-advisories")))
	if got := eval[string](f, `document.querySelector('nav a[aria-current=page]').textContent`); got != "Exposure" {
		t.Errorf("current nav entry %q", got)
	}
	if got := strings.TrimSpace(f.text("#fig-mttr")); got == "—" || got == "" {
		t.Errorf("mean time to remediate shown as %q with %d remediated", got, sum.Remediated)
	}
	if got := strings.TrimSpace(f.text("#fig-exposed")); got != strconv.Itoa(sum.ExposedNodes) {
		t.Errorf("exposed nodes %q, want %d", got, sum.ExposedNodes)
	}
	for _, id := range []string{"DSA-9901-1", "USN-9902-1", "RHSA-2099:9903", "msrc_CVE-2099-0002", "DSA-9999-1"} {
		if !eval[bool](f, `!!document.querySelector('#exposure-advisories tr[data-advisory="`+id+`"]')`) {
			t.Errorf("advisory %s not listed", id)
		}
	}
	if got := eval[string](f, `document.querySelector('tr[data-advisory="DSA-9999-1"] [data-count=affected]').textContent`); got != strconv.Itoa(len(want)) {
		t.Errorf("DSA-9999-1 affected count %q, want %d", got, len(want))
	}
	// Who is exposed to DSA-9999-1: picked in the list.
	eval[bool](f, `(document.querySelector('#advisory-pick').value = 'DSA-9999-1', true)`)
	f.do("pick DSA-9999-1", chromedp.Click(chromedp.CSS(`form[action="/ui/exposure"] button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("#exposure-nodes")))
	got := strings.Fields(eval[string](f, `Array.from(document.querySelectorAll('#exposure-nodes tr[data-status=affected]')).map(r => r.dataset.node).join(' ')`))
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("affected nodes shown %v, want %v", got, want)
	}
	row := eval[string](f, `document.querySelector('#exposure-nodes tbody tr').textContent`)
	if !strings.Contains(row, "openssl") || !strings.Contains(row, "9.9.9-1") || !(strings.Contains(row, "debian") || strings.Contains(row, "ubuntu")) {
		t.Errorf("a node's row lacks its OS, installed or fixed version: %q", row)
	}
	f.screenshot("exposure", 1280, 1000)
}

// waitDemoDone waits until the demo fleet's two rollouts ended.
func waitDemoDone(t *testing.T, ctx context.Context, c *api.Client) {
	t.Helper()
	for {
		l, err := c.ListRollouts(ctx)
		ended := 0
		if err == nil {
			for _, r := range l.Rollouts {
				if r.State.Terminal() {
					ended++
				}
			}
		}
		if ended >= 2 {
			time.Sleep(4 * time.Second) // the demo judges exposure again after its last rollout
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the demo's rollouts did not end: %v", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
