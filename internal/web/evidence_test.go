package web_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/evidence"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/store"
)

// TestEvidencePage: a node's evidence page lists its bundles and shows
// the newest section by section: text as is (escaped: a log line is the
// node's, not the dashboard's, HTML), typed data as JSON, errors, and
// truncated sections marked.
func TestEvidencePage(t *testing.T) {
	ts, st := newServerWith(t, nil)
	ctx := context.Background()
	now := time.Now()
	if _, err := st.UpsertNode(ctx, store.NodeRecord{ID: "deb-1", Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}},
		RegisteredAt: now, LastSeen: now, LeaseUntil: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	text, _ := json.Marshal("Dec 07 nginx[1]: <script>alert(1)</script> error while loading shared libraries")
	b := evidence.Bundle{Node: "deb-1", Rollout: "r1", Step: "r1/deb-1/apply/1", Reason: evidence.ReasonFailure, CapturedAt: now, Took: time.Second,
		Sections: []evidence.Section{
			{Name: "kernel", Data: json.RawMessage(`{"release":"6.1.0-28-amd64","bootId":"ca118519-25d9-4680-ab99-23d078fac0ee"}`)},
			{Name: "kernel-errors", Data: text, Truncated: true},
			{Name: "firewall", Error: "tool not available on this node: iptables"},
		}}
	raw, _ := json.Marshal(b)
	rec, err := st.AddEvidence(ctx, store.EvidenceRecord{ID: "ev-1", Node: "deb-1", Rollout: "r1", Step: b.Step, Reason: b.Reason, CapturedAt: now, StoredAt: now, Body: raw},
		store.EvidenceRetention{PerNode: 5})
	if err != nil {
		t.Fatal(err)
	}
	c := browserClient(t)
	if r, err := c.PostForm(ts.URL+"/ui/login", url.Values{"token": {"viewer-token-0123456789"}}); err != nil {
		t.Fatal(err)
	} else {
		body(t, r)
	}
	r, err := c.Get(ts.URL + "/ui/nodes/deb-1/evidence?rollout=r1")
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, r)
	for _, want := range []string{`<a href="?id=ev-1" class="mono">ev-1</a>`, rec.SHA256, `data-section="kernel"`, `ca118519-25d9-4680-ab99-23d078fac0ee`,
		`data-section="kernel-errors"`, `<span class="pill" data-truncated>TRUNCATED</span>`, `&lt;script&gt;alert(1)&lt;/script&gt;`,
		`error: tool not available on this node: iptables`} {
		if !strings.Contains(page, want) {
			t.Errorf("the evidence page lacks %s:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<script>alert(1)") {
		t.Error("a node's log line reached the page unescaped")
	}
	r, err = c.Get(ts.URL + "/ui/nodes/deb-2/evidence")
	if err != nil {
		t.Fatal(err)
	}
	if r.StatusCode != 404 {
		t.Errorf("unknown node: %d", r.StatusCode)
	}
	body(t, r)
}
