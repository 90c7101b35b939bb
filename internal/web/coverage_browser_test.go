package web_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/drover-dev/drover/internal/api"
)

// TestFleetCoverageInBrowser: an inventory naming all but two of the demo
// fleet's nodes and two hosts without an agent is imported through the
// API; the fleet page shows the coverage counts, the hosts without an
// agent and the agents no inventory names.
func TestFleetCoverageInBrowser(t *testing.T) {
	f := newFixture(t)
	admin := f.client("admin")
	nodes, err := admin.AllNodes(f.ctx, "")
	if err != nil || len(nodes) != demoNodes {
		t.Fatalf("demo nodes: %d %v", len(nodes), err)
	}
	var inv strings.Builder
	inv.WriteString("[fleet]\n")
	for _, n := range nodes[2:] {
		fmt.Fprintf(&inv, "%s\n", n.ID)
	}
	inv.WriteString("\n[new]\nlab-01\nlab-02\n")
	d, err := admin.ImportInventory(f.ctx, api.InventoryImportRequest{Name: "lab", Source: "lab.ini", Content: inv.String()})
	if err != nil || !d.Applied {
		t.Fatalf("import: %+v %v", d, err)
	}

	f.signIn("admin")
	f.do("open fleet", chromedp.Navigate(f.base+"/ui/fleet"), chromedp.WaitVisible(chromedp.CSS("#coverage")))
	for sel, want := range map[string]string{"#count-expected": fmt.Sprint(demoNodes), "#count-covered": fmt.Sprint(demoNodes - 2),
		"#count-missing": "2", "#count-unexpected": "2"} {
		if got := strings.TrimSpace(f.text(sel)); got != want {
			t.Errorf("%s shows %q, want %s", sel, got, want)
		}
	}
	if got := eval[string](f, `Array.from(document.querySelectorAll("tr[data-missing]")).map(r => r.dataset.missing).join(" ")`); got != "lab-01 lab-02" {
		t.Errorf("hosts without an agent shown: %q", got)
	}
	want := nodes[0].ID + " " + nodes[1].ID
	if got := eval[string](f, `Array.from(document.querySelectorAll("[data-unexpected]")).map(e => e.dataset.unexpected).join(" ")`); got != want {
		t.Errorf("agents not in the inventory shown: %q, want %q", got, want)
	}
	f.screenshot("fleet-coverage", 1280, 900)
}
