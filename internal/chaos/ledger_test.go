package chaos

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/engine"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// cleanLedger is a run with nothing wrong: rollout r1 (maxInFlight 2,
// zone cap 1) changes nodes a1 (zone a) and b1 (zone b), one at a time
// per zone, under a fleet budget of 1 per zone; every source agrees.
func cleanLedger() *Ledger {
	l := &Ledger{
		Zone:            map[string]string{"a1": "a", "a2": "a", "b1": "b"},
		Limits:          map[string]Limits{"r1": {MaxInFlight: 2, ZoneCap: 1}, "r2": {MaxInFlight: 2, ZoneCap: 1}},
		FleetZoneBudget: 1,
		Final:           map[string]Final{"r1": {State: engine.RolloutSucceeded, Targets: []string{"a1", "b1"}}},
		Present:         map[string]bool{"rollout/r1": true, "budget/zones": true},
		StallAfter:      5 * time.Second,
	}
	l.Events = []Event{
		{Source: SrcAPI, Op: OpAck, At: at(0), Object: "budget/zones"},
		{Source: SrcAPI, Op: OpAck, At: at(1), Object: "rollout/r1"},
		{Source: SrcAudit, Op: OpDispatch, Txn: 1, Rollout: "r1", Node: "a1", Step: "s/a1/1", Kind: "apply"},
		{Source: SrcAudit, Op: OpDispatch, Txn: 1, Rollout: "r1", Node: "b1", Step: "s/b1/1", Kind: "apply"},
		{Source: SrcJournal, Op: OpStarted, At: at(10), Node: "a1", Step: "s/a1/1"},
		{Source: SrcJournal, Op: OpStarted, At: at(10), Node: "b1", Step: "s/b1/1"},
		{Source: SrcDriver, Op: OpApply, At: at(11), End: at(100), Node: "a1", Step: "s/a1/1"},
		{Source: SrcDriver, Op: OpApply, At: at(12), End: at(110), Node: "b1", Step: "s/b1/1"},
		{Source: SrcAudit, Op: OpPhase, Txn: 2, Rollout: "r1", Node: "a1", Phase: engine.PhaseSucceeded},
		{Source: SrcAudit, Op: OpPhase, Txn: 3, Rollout: "r1", Node: "b1", Phase: engine.PhaseSucceeded},
		{Source: SrcJournal, Op: OpReported, At: at(120), Node: "a1", Step: "s/a1/1"},
		{Source: SrcAPI, Op: OpObserve, At: at(0), Rollout: "r1", State: engine.RolloutRunning, Progress: "running q=2", InFlight: 2},
		{Source: SrcAPI, Op: OpObserve, At: at(200), Rollout: "r1", State: engine.RolloutSucceeded, Progress: "succeeded s=2"},
		{Source: SrcAPI, Op: OpAuditCheck, At: at(300)},
	}
	return l
}

// TestCheckClean: the rules pass a ledger with nothing wrong (so that a
// rule firing below is the crafted violation, not noise).
func TestCheckClean(t *testing.T) {
	if vs := Check(cleanLedger()); len(vs) != 0 {
		t.Fatalf("clean ledger: %v", vs)
	}
}

// TestCheckRules: each rule fires on a ledger crafted to break it, and
// only that rule fires.
func TestCheckRules(t *testing.T) {
	cases := []struct {
		rule  string
		spoil func(l *Ledger)
		want  string
	}{
		{"applied-twice", func(l *Ledger) {
			// the step dispatched again after a crash, applied again
			l.Events = append(l.Events,
				Event{Source: SrcAudit, Op: OpDispatch, Txn: 4, Rollout: "r1", Node: "a1", Step: "s/a1/2", Kind: "apply"},
				Event{Source: SrcAudit, Op: OpPhase, Txn: 5, Rollout: "r1", Node: "a1", Phase: engine.PhaseSucceeded},
				Event{Source: SrcJournal, Op: OpStarted, At: at(130), Node: "a1", Step: "s/a1/2"},
				Event{Source: SrcDriver, Op: OpApply, At: at(131), End: at(140), Node: "a1", Step: "s/a1/2"})
		}, "node a1, rollout r1: applied by step s/a1/1"},
		{"undispatched-call", func(l *Ledger) {
			l.Events = append(l.Events, Event{Source: SrcDriver, Op: OpRollback, At: at(150), End: at(160), Node: "a1", Step: "s/a1/9"})
		}, `rollback for step "s/a1/9", never dispatched`},
		{"target-unreached", func(l *Ledger) {
			f := l.Final["r1"]
			f.Targets = append(f.Targets, "a2")
			l.Final["r1"] = f
		}, "rollout r1 succeeded, node a2 does not hold its change"},
		{"cap-exceeded", func(l *Ledger) {
			// a second rollout puts a2 (zone a) in flight while a1 is
			l.Events = append(l.Events, Event{Source: SrcAudit, Op: OpDispatch, Txn: 1, Rollout: "r2", Node: "a2", Step: "s/a2/1", Kind: "apply"},
				Event{Source: SrcAudit, Op: OpPhase, Txn: 2, Rollout: "r2", Node: "a2", Phase: engine.PhaseSucceeded})
		}, "2 nodes of zone a in flight across rollouts, fleet budget 1"},
		{"write-lost", func(l *Ledger) {
			delete(l.Present, "budget/zones")
		}, "budget/zones acknowledged"},
		{"audit-unverified", func(l *Ledger) {
			l.Events = append(l.Events, Event{Source: SrcAPI, Op: OpAuditCheck, At: at(400), Err: "chain broken at seq 7"})
		}, "chain broken at seq 7"},
		{"stuck", func(l *Ledger) {
			l.Final["r3"] = Final{State: engine.RolloutRunning}
			for _, ms := range []int{1000, 3000, 7000} {
				l.Events = append(l.Events, Event{Source: SrcAPI, Op: OpObserve, At: at(ms), Rollout: "r3", State: engine.RolloutRunning, Progress: "running p=3"})
			}
		}, "rollout r3: running, unchanged"},
	}
	for _, c := range cases {
		t.Run(c.rule, func(t *testing.T) {
			l := cleanLedger()
			c.spoil(l)
			vs := Check(l)
			if len(vs) == 0 {
				t.Fatalf("rule %s did not fire", c.rule)
			}
			for _, v := range vs {
				if v.Rule != c.rule {
					t.Errorf("rule %s fired too: %s", v.Rule, v.Detail)
				}
			}
			if !strings.Contains(vs[0].Detail, c.want) {
				t.Errorf("%s: %q, want it to say %q", c.rule, vs[0].Detail, c.want)
			}
		})
	}
}

// TestCheckRulesBoundaries: what each rule must not call a violation.
func TestCheckRulesBoundaries(t *testing.T) {
	t.Run("apply, rollback, apply is no double apply", func(t *testing.T) {
		l := cleanLedger()
		l.Events = append(l.Events,
			Event{Source: SrcAudit, Op: OpDispatch, Txn: 4, Rollout: "r1", Node: "a1", Step: "s/a1/rb", Kind: "rollback"},
			Event{Source: SrcAudit, Op: OpPhase, Txn: 5, Rollout: "r1", Node: "a1", Phase: engine.PhaseRolledBack},
			Event{Source: SrcAudit, Op: OpDispatch, Txn: 6, Rollout: "r1", Node: "a1", Step: "s/a1/2", Kind: "apply"},
			Event{Source: SrcAudit, Op: OpPhase, Txn: 7, Rollout: "r1", Node: "a1", Phase: engine.PhaseSucceeded},
			Event{Source: SrcJournal, Op: OpStarted, At: at(140), Node: "a1", Step: "s/a1/rb"},
			Event{Source: SrcJournal, Op: OpStarted, At: at(160), Node: "a1", Step: "s/a1/2"},
			Event{Source: SrcDriver, Op: OpRollback, At: at(141), End: at(150), Node: "a1", Step: "s/a1/rb"},
			Event{Source: SrcDriver, Op: OpApply, At: at(161), End: at(170), Node: "a1", Step: "s/a1/2"})
		if vs := Check(l); len(vs) != 0 {
			t.Fatal(vs)
		}
	})
	t.Run("a failed apply then a successful one is no double apply", func(t *testing.T) {
		l := cleanLedger()
		for i := range l.Events {
			if l.Events[i].Op == OpApply && l.Events[i].Node == "a1" {
				l.Events[i].Err = "dpkg lock"
			}
		}
		l.Events = append(l.Events, Event{Source: SrcDriver, Op: OpApply, At: at(101), End: at(105), Node: "a1", Step: "s/a1/1"})
		if vs := Check(l); len(vs) != 0 {
			t.Fatal(vs)
		}
	})
	t.Run("the machine's state decides whether a target holds the change", func(t *testing.T) {
		l := cleanLedger()
		f := l.Final["r1"]
		f.Targets = append(f.Targets, "a2") // no driver call on a2
		f.Holding = map[string]bool{"a1": true, "b1": true, "a2": true}
		l.Final["r1"] = f
		if vs := Check(l); len(vs) != 0 {
			t.Fatalf("a2 holds the change on the machine: %v", vs)
		}
		f.Holding["b1"] = false // applied by the ledger, yet not on the machine
		if vs := TargetUnreached(l); len(vs) != 1 || !strings.Contains(vs[0].Detail, "node b1") {
			t.Fatalf("got %v, want b1 unreached", vs)
		}
	})
	t.Run("a rollout that ended holds no node", func(t *testing.T) {
		l := cleanLedger()
		// r2 fails with a1's rollback failed (phase failed: in flight
		// while r2 runs); once r2 has ended, r1 may take a1.
		ev := func(txn int, op Op, ro, node string, ph engine.Phase, st engine.RolloutState) Event {
			return Event{Source: SrcAudit, Op: op, Txn: txn, Rollout: ro, Node: node, Phase: ph, State: st, Kind: "apply", Step: ro + "/" + node}
		}
		for i := range l.Events {
			if l.Events[i].Source == SrcAudit {
				l.Events[i].Txn += 10
			}
		}
		l.Events = append(l.Events, ev(1, OpDispatch, "r2", "a1", "", ""), ev(2, OpPhase, "r2", "a1", engine.PhaseFailed, ""))
		crafted := append([]Event(nil), l.Events...)
		l.Events = append(l.Events, ev(3, OpState, "r2", "", "", engine.RolloutFailed))
		if vs := CapExceeded(l); len(vs) != 0 {
			t.Fatalf("r2 had ended: %v", vs)
		}
		l.Events = append(crafted, ev(3, OpState, "r2", "", "", engine.RolloutRollingBack))
		if vs := CapExceeded(l); len(vs) == 0 {
			t.Fatal("r2 still rolling back holds a1, yet r1 took it: no violation")
		}
	})
	t.Run("a rollout waiting while another is in flight is not stuck", func(t *testing.T) {
		l := cleanLedger()
		l.Events = append(l.Events,
			Event{Source: SrcAPI, Op: OpObserve, At: at(1000), Rollout: "r2", State: engine.RolloutRunning, Progress: "running p=1"},
			Event{Source: SrcAPI, Op: OpObserve, At: at(1000), Rollout: "r9", State: engine.RolloutRunning, Progress: "running r=1", InFlight: 1},
			Event{Source: SrcAPI, Op: OpObserve, At: at(9000), Rollout: "r2", State: engine.RolloutRunning, Progress: "running p=1"})
		if vs := Check(l); len(vs) != 0 {
			t.Fatal(vs)
		}
	})
	t.Run("a paused rollout is not stuck", func(t *testing.T) {
		l := cleanLedger()
		for _, ms := range []int{1000, 9000} {
			l.Events = append(l.Events, Event{Source: SrcAPI, Op: OpObserve, At: at(ms), Rollout: "r2", State: engine.RolloutPaused, Progress: "paused"})
		}
		if vs := Check(l); len(vs) != 0 {
			t.Fatal(vs)
		}
	})
	t.Run("no audit check at all is a violation", func(t *testing.T) {
		l := cleanLedger()
		l.Events = l.Events[:len(l.Events)-1]
		if vs := AuditUnverified(l); len(vs) != 1 {
			t.Fatalf("got %v, want one violation", vs)
		}
	})
	t.Run("driver calls over the fleet budget", func(t *testing.T) {
		l := cleanLedger()
		l.Events = append(l.Events,
			Event{Source: SrcAudit, Op: OpDispatch, Txn: 8, Rollout: "r2", Node: "a2", Step: "s/a2/1", Kind: "apply"},
			Event{Source: SrcAudit, Op: OpPhase, Txn: 8, Rollout: "r2", Node: "a2", Phase: engine.PhaseSucceeded},
			Event{Source: SrcJournal, Op: OpStarted, At: at(50), Node: "a2", Step: "s/a2/1"},
			Event{Source: SrcDriver, Op: OpApply, At: at(50), End: at(60), Node: "a2", Step: "s/a2/1"})
		vs := CapExceeded(l)
		if len(vs) != 1 || !strings.Contains(vs[0].Detail, "driver: 2 calls at once in zone a") {
			t.Fatalf("got %v, want the driver's zone excess", vs)
		}
	})
}

// TestReadmeCampaignFigure: the README's campaign row names every kind
// of fault the campaign injects with its count, the counts add up to
// the total it states (at least the 200 of the CI campaign), and it
// says 0 violations.
func TestReadmeCampaignFigure(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "| fault campaign") {
			rows = append(rows, line)
		}
	}
	if len(rows) < 2 {
		t.Fatalf("README: %d rows | fault campaign ... in the benchmark table, want the short and the long campaign", len(rows))
	}
	for _, row := range rows {
		checkCampaignRow(t, row)
	}
}

func checkCampaignRow(t *testing.T, row string) {
	t.Helper()
	m := regexp.MustCompile(`(\d+) faults of (\d+) kinds`).FindStringSubmatch(row)
	if m == nil {
		t.Fatalf("README campaign row says no \"N faults of K kinds\": %s", row)
	}
	total, _ := strconv.Atoi(m[1])
	kinds, _ := strconv.Atoi(m[2])
	sum := 0
	for _, k := range campaignKinds {
		km := regexp.MustCompile(`\b` + regexp.QuoteMeta(k) + ` (\d+)\b`).FindStringSubmatch(row)
		if km == nil {
			t.Errorf("README campaign row does not give the count of %s", k)
			continue
		}
		n, _ := strconv.Atoi(km[1])
		sum += n
	}
	if sum != total || kinds != len(campaignKinds) || total < 200 {
		t.Errorf("README campaign row: kinds add up to %d of %d stated, %d kinds stated of %d; want equal, at least 200 faults", sum, total, kinds, len(campaignKinds))
	}
	if !strings.Contains(row, "**0 violations**") {
		t.Errorf("README campaign row does not say **0 violations**: %s", row)
	}
}
