package disruption

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/window"
)

func nodes() []*fleet.Node {
	var out []*fleet.Node
	for i, z := range []string{"a", "a", "a", "a", "b", "b", "c"} {
		tier := "web"
		if i%2 == 1 {
			tier = "db"
		}
		out = append(out, &fleet.Node{ID: fmt.Sprintf("n%d", i), Labels: map[string]string{"zone": z, "tier": tier}})
	}
	return out
}

func TestIndexLimitsAndCheck(t *testing.T) {
	x, err := NewIndex([]Budget{
		{Name: "web", Selector: `node.labels.tier == "web"`, MaxUnavailable: plan.Quantity{Percent: true, Value: 50}, Per: "zone"},
		{Name: "all", MaxUnavailable: plan.Quantity{Count: 2}},
	}, nodes())
	if err != nil {
		t.Fatal(err)
	}
	// web covers n0, n2 (zone a), n4 (zone b), n6 (zone c): 50% of 2 is 1, of 1 is 1 (rounded up).
	if got := fmt.Sprint(x.Domains(0), x.Limit(0, "a"), x.Size(0, "a"), x.Limit(0, "b")); got != "[a b c] 1 2 1" {
		t.Fatalf("web domains, limits = %s", got)
	}
	if _, ok := x.Domain(0, "n1"); ok {
		t.Fatal("a db node is covered by the web budget")
	}
	holds := []Hold{{Node: "n0", Kind: HolderRollout, Holder: "r1"}}
	if err := x.Check(holds, []string{"n0"}); err != nil {
		t.Fatalf("one web node of zone a: %v", err)
	}
	holds = append(holds, Hold{Node: "n2", Kind: HolderRollout, Holder: "r2"})
	var ex *ExceededError
	if err := x.Check(holds, []string{"n2"}); !errors.As(err, &ex) || ex.Error() != "node n2 would put fleet budget web zone=a at 2/1" {
		t.Fatalf("two web nodes of zone a: %v", err)
	}
	holds = []Hold{{Node: "n1", Kind: HolderRollout, Holder: "r1"}, {Node: "n3", Kind: "lock", Holder: "reboot-coordinator"}}
	if err := x.Check(holds, []string{"n3"}); err != nil {
		t.Fatalf("two db nodes: %v", err)
	}
	holds = append(holds, Hold{Node: "n5", Kind: HolderRollout, Holder: "r3"})
	if err := x.Check(holds, []string{"n5"}); err == nil || !strings.Contains(err.Error(), "fleet budget all at 3/2") {
		t.Fatalf("a third node in all, a lock holder counting: %v", err)
	}
	// A domain already over its limit refuses only new holds in it.
	if err := x.Check(holds, nil); err != nil {
		t.Fatalf("no new hold: %v", err)
	}
}

func TestForRollout(t *testing.T) {
	ns := nodes()
	x, err := NewIndex([]Budget{{Name: "zones", MaxUnavailable: plan.Quantity{Count: 1}, Per: "zone"},
		{Name: "elsewhere", Selector: `node.labels.zone == "z"`, MaxUnavailable: plan.Quantity{Count: 1}}}, ns)
	if err != nil {
		t.Fatal(err)
	}
	target := []engine.Node{{Node: ns[0]}, {Node: ns[4]}}
	holds := []Hold{{Node: "n1", Kind: HolderRollout, Holder: "r-9"}, {Node: "n0", Kind: HolderRollout, Holder: "me"},
		{Node: "n6", Kind: HolderRollout, Holder: "r-7"}}
	fbs := x.ForRollout("me", target, holds)
	if len(fbs) != 1 {
		t.Fatalf("budgets = %+v; want only the one covering the target", fbs)
	}
	fb := fbs[0]
	if got := fmt.Sprintf("%v %+v", fb.Of, fb.Domains); got != "[0 1] [{Value:a Limit:1 Held:1 Holders:[n1 (r-9)]} {Value:b Limit:1 Held:0 Holders:[]}]" {
		t.Fatalf("zones for the rollout = %s (its own hold of n0 is the engine's to count; zone c is no concern of it)", got)
	}
}

func TestFreezesForRollout(t *testing.T) {
	ns := nodes()
	c, err := CompileFreezes([]Freeze{
		{Name: "eoq", Reason: "quarter close", Calendar: window.CalendarSpec{TimeZone: "Europe/Paris", Start: "2026-03-25", End: "2026-04-01"}},
		{Name: "zone-b", Selector: `node.labels.zone == "b"`, Calendar: window.CalendarSpec{TimeZone: "UTC", Start: "2026-03-30", End: "2026-03-31"}},
		{Name: "nobody", Selector: `node.labels.zone == "z"`, Calendar: window.CalendarSpec{TimeZone: "UTC", Start: "2026-03-30", End: "2026-03-31"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	target := []engine.Node{{Node: ns[0]}, {Node: ns[4]}}
	at := time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC)
	got := c.ForRollout("r1", target, at)
	if len(got) != 2 || got[0].Name != "eoq" || got[0].Covers != nil || got[0].Until.Format("2006-01-02T15:04 MST") != "2026-04-01T00:00 CEST" ||
		got[1].Name != "zone-b" || fmt.Sprint(got[1].Covers) != "[false true]" {
		t.Fatalf("freezes in force = %+v", got)
	}
	if got := c.ForRollout("r1", target, at.AddDate(0, 0, 3)); len(got) != 0 {
		t.Fatalf("after the end: %+v", got)
	}
	st := c.At(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	if st[0].Active || !st[0].Next.Equal(time.Date(2026, 3, 24, 23, 0, 0, 0, time.UTC)) {
		t.Fatalf("state before = %+v", st[0])
	}
	if err := (Freeze{Name: "x", Calendar: window.CalendarSpec{TimeZone: "Mars/Olympus", Start: "2026-01-01", End: "2026-01-02"}}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "freeze x: load time zone") {
		t.Fatalf("bad zone: %v", err)
	}
}
