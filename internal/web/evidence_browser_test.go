package web_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/drover-dev/drover/internal/evidence"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/store"
)

// TestEvidencePageInBrowser opens a node's evidence page in Debian's
// chromium (chromedp; it fails, never skips, without chromium) as a
// viewer signed in through the sign-in page, on a real server with a
// stored bundle: every section renders as an article with its name, the
// truncated one carries its TRUNCATED pill, the failed one its error,
// the typed data its JSON; and a node's log line holding markup stays
// text: its script never runs.
func TestEvidencePageInBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	ts, st := newServerWith(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	now := time.Now()
	if _, err := st.UpsertNode(ctx, store.NodeRecord{ID: "deb-1", Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}},
		RegisteredAt: now, LastSeen: now, LeaseUntil: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	logLine, _ := json.Marshal(`Dec 07 nginx[1]: <img src=x onerror="window.pwned=1"> error while loading shared libraries`)
	b := evidence.Bundle{Node: "deb-1", Rollout: "r1", Step: "r1/deb-1/apply/1", Reason: evidence.ReasonFailure, CapturedAt: now, Took: time.Second,
		Sections: []evidence.Section{
			{Name: "kernel", Data: json.RawMessage(`{"release":"6.1.0-28-amd64","bootId":"ca118519-25d9-4680-ab99-23d078fac0ee"}`)},
			{Name: "mounts", Data: json.RawMessage(`[{"point":"/srv/data","fsType":"tmpfs","readOnly":true}]`)},
			{Name: "unit-logs", Data: logLine, Truncated: true},
			{Name: "firewall", Error: "tool not available on this node: iptables"},
		}}
	raw, _ := json.Marshal(b)
	if _, err := st.AddEvidence(ctx, store.EvidenceRecord{ID: "ev-1", Node: "deb-1", Rollout: "r1", Step: b.Step, Reason: b.Reason, CapturedAt: now, StoredAt: now, Body: raw},
		store.EvidenceRetention{PerNode: 5}); err != nil {
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-background-networking", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	tab, cancelTab := chromedp.NewContext(allocCtx)
	defer cancelTab()
	if err := chromedp.Do(tab,
		chromedp.Navigate(ts.URL+"/ui/login"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), "viewer-token-0123456789"),
		chromedp.Click(chromedp.CSS(`form[action="/ui/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=me]`)),
		chromedp.Navigate(ts.URL+"/ui/nodes/deb-1/evidence?rollout=r1"),
		chromedp.WaitVisible(chromedp.CSS(`article[data-section="firewall"]`)),
	); err != nil {
		t.Fatalf("sign in and open the evidence page: %v", err)
	}
	js := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(tab, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return v
	}
	if got := js(`[...document.querySelectorAll("article[data-section]")].map(a => a.dataset.section).join(" ")`); got != "kernel mounts unit-logs firewall" {
		t.Errorf("sections %q, want kernel mounts unit-logs firewall in the bundle's order", got)
	}
	if got := js(`[...document.querySelectorAll("[data-truncated]")].map(p => p.closest("article").dataset.section + ":" + p.innerText).join(" ")`); got != "unit-logs:TRUNCATED" {
		t.Errorf("truncated pills %q, want unit-logs:TRUNCATED", got)
	}
	for section, want := range map[string]string{
		"kernel":    "ca118519-25d9-4680-ab99-23d078fac0ee",
		"mounts":    "/srv/data",
		"unit-logs": `<img src=x onerror="window.pwned=1">`,
		"firewall":  "tool not available on this node: iptables",
	} {
		if got := js(`document.querySelector('article[data-section="` + section + `"]').innerText`); !strings.Contains(got, want) {
			t.Errorf("section %s shows %q, want it to contain %q", section, got, want)
		}
	}
	if got := js(`String(window.pwned) + " " + document.querySelectorAll("article img").length`); got != "undefined 0" {
		t.Errorf("the node's log line became markup: window.pwned, images = %s", got)
	}
}
