package agent

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
)

// TestCancel: a cancel of a step the agent has queued but not begun is
// acknowledged (cancelled) and the step never runs, even when handed out
// again later; a cancel of the step the agent is running changes nothing:
// it runs to its real outcome; a cancel of a step never received is
// acknowledged too, and the step never runs if it arrives afterwards.
func TestCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newTestNode(t)
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		first, second, third := applyStep(1, pkg("openssl", "3.0.15-1~deb12u1")), applyStep(2, pkg("nginx", "1.22.1-9+deb12u1")), applyStep(3, pkg("telemetry-agent", "7.2.0"))
		srv.dispatch(first, second)
		if r := srv.next(t); r.StepID != first.ID || r.Phase != engine.PhaseRunning {
			t.Fatalf("first report: %+v", r)
		}
		// first runs (30 s apply); second waits in the agent's queue.
		srv.cancel(first.ID, second.ID, third.ID)
		var got []string
		for len(got) < 2 {
			r := srv.next(t)
			if r.Phase == engine.PhaseCancelled {
				got = append(got, r.StepID)
			}
		}
		if got[0] != second.ID || got[1] != third.ID {
			t.Fatalf("cancelled acknowledgements %v, want [%s %s]", got, second.ID, third.ID)
		}
		final, _ := srv.final(t)
		if final.StepID != first.ID || final.Phase != engine.PhaseVerifying || final.Gate != engine.Pass {
			t.Fatalf("the step under way ends as %+v, want its real outcome (verifying pass)", final)
		}
		srv.dispatch(third) // handed out after its cancel: never begun
		if r := srv.next(t); r.StepID != third.ID || r.Phase != engine.PhaseCancelled {
			t.Fatalf("a cancelled step handed out again: %+v, want its cancelled acknowledgement again", r)
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if v := n.state.Facts(fleet.Facts{}).Packages; v["nginx"] != "1.22.1-9" || v["telemetry-agent"] != "7.1.0" {
			t.Fatalf("a cancelled step ran: packages %v", v)
		}
		j := readJournal(t, n.dir)
		for _, id := range []string{second.ID, third.ID} {
			if st, ok := j.step(id); !ok || !st.finished() || st.Result.Phase != engine.PhaseCancelled || len(st.Actions) != 0 {
				t.Fatalf("journal of cancelled step %s: %+v", id, st)
			}
		}
	})
}
