package server

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Failpoints name the places where the server can be made to crash, for
// the crash-recovery tests (internal/chaos). The server reads them once,
// from Config.Failpoints (DROVER_FAILPOINTS="after-decide=3,after-commit=1"):
// at the Nth hit of a named point the process kills itself with SIGKILL,
// exactly as a crash or an OOM kill would, with no deferred function run.
// A nil *failpoints, the normal case, costs one nil check per point.
const (
	fpAfterCreate        = "after-create"               // rollout stored, before answering the client
	fpAfterDecide        = "after-decide"               // a decision that changes state, before it is persisted
	fpWaveTransition     = "wave-transition"            // a decision with a wave transition, before it is persisted
	fpBeforeCommit       = "before-commit"              // the commit built, just before ApplyCommit
	fpAfterCommit        = "after-commit"               // commit persisted, before waking agents
	fpDuringRollback     = "during-rollback"            // commit with rollback steps persisted, before waking agents
	fpLeaseExpiry        = "lease-expiry"               // expired leases persisted, before waking anyone
	fpGateEvaluation     = "gate-evaluation"            // wave-gate results stored, before the next pass
	fpDuringPoll         = "during-poll"                // steps marked delivered, before answering the agent
	fpDuringReport       = "during-report"              // report stored, before answering the agent
	fpDuringReportBefore = "during-report-before-store" // report received, before it is stored
	fpWebhookDelivered   = "webhook-delivered"          // a webhook event answered 2xx, before the acknowledgement is stored
	fpInsideCommit       = "inside-commit"              // every write of a scheduler commit done, its transaction not yet committed
	fpLeaderElected      = "leader-elected"             // leadership won (a new term), before the agents' leases are restarted
	fpAfterBudgetWrite   = "after-budget-write"         // a fleet budget created or changed, before answering the client
)

// FailpointNames lists every failpoint the server knows.
func FailpointNames() []string {
	return []string{fpAfterCreate, fpAfterDecide, fpWaveTransition, fpBeforeCommit, fpAfterCommit, fpDuringRollback,
		fpLeaseExpiry, fpGateEvaluation, fpDuringPoll, fpDuringReport, fpDuringReportBefore, fpWebhookDelivered,
		fpInsideCommit, fpLeaderElected, fpAfterBudgetWrite}
}

// failpoints counts the hits of the armed points.
type failpoints struct {
	mu   sync.Mutex
	at   map[string]int // point -> the hit that kills
	hits map[string]int
	kill func(point string, hit int) // killSelf; tests replace it
	// clockFile, from "clock=PATH", holds an offset (a Go duration such
	// as "90s" or "-2m") added to the server's clock: the chaos tests
	// jump the clock of a real server process by rewriting it.
	clockFile string
}

// clockFailpoint is the pseudo-failpoint "clock=PATH" (see clockFile).
const clockFailpoint = "clock"

// offsetClock returns now shifted by the offset in the clock file, read
// again at most every 20ms; a missing or unreadable file is offset 0.
func (fp *failpoints) offsetClock(now func() time.Time) func() time.Time {
	if fp == nil || fp.clockFile == "" {
		return now
	}
	var mu sync.Mutex
	var offset time.Duration
	var read time.Time
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		if t := time.Now(); t.Sub(read) > 20*time.Millisecond {
			read = t
			offset = 0
			if b, err := os.ReadFile(fp.clockFile); err == nil {
				if d, err := time.ParseDuration(strings.TrimSpace(string(b))); err == nil {
					offset = d
				}
			}
		}
		return now().Add(offset)
	}
}

// parseFailpoints parses "name=N,name=N" ("name" alone means 1). An empty
// spec returns nil: no failpoints.
func parseFailpoints(spec string) (*failpoints, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	if !failpointsSupported {
		return nil, fmt.Errorf("failpoints %q: not supported on this operating system", spec)
	}
	fp := &failpoints{at: map[string]int{}, hits: map[string]int{}, kill: killSelf}
	for _, part := range strings.Split(spec, ",") {
		name, n, hasN := strings.Cut(strings.TrimSpace(part), "=")
		if name == clockFailpoint {
			if n == "" {
				return nil, fmt.Errorf("failpoint %q: want clock=PATH", part)
			}
			fp.clockFile = n
			continue
		}
		if !slices.Contains(FailpointNames(), name) {
			return nil, fmt.Errorf("failpoint %q: unknown; known are %s", name, strings.Join(FailpointNames(), ", "))
		}
		hit := 1
		if hasN {
			v, err := strconv.Atoi(n)
			if err != nil || v < 1 {
				return nil, fmt.Errorf("failpoint %q: want name=N with N >= 1", part)
			}
			hit = v
		}
		fp.at[name] = hit
	}
	return fp, nil
}

// hit counts a pass through point and kills the process at the armed hit.
func (fp *failpoints) hit(point string) {
	if fp == nil {
		return
	}
	fp.mu.Lock()
	at, armed := fp.at[point]
	if !armed {
		fp.mu.Unlock()
		return
	}
	fp.hits[point]++
	n := fp.hits[point]
	fp.mu.Unlock()
	if n == at {
		fp.kill(point, n)
	}
}
