package server

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
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
)

// FailpointNames lists every failpoint the server knows.
func FailpointNames() []string {
	return []string{fpAfterCreate, fpAfterDecide, fpWaveTransition, fpBeforeCommit, fpAfterCommit, fpDuringRollback,
		fpLeaseExpiry, fpGateEvaluation, fpDuringPoll, fpDuringReport, fpDuringReportBefore, fpWebhookDelivered}
}

// failpoints counts the hits of the armed points.
type failpoints struct {
	mu   sync.Mutex
	at   map[string]int // point -> the hit that kills
	hits map[string]int
	kill func(point string, hit int) // killSelf; tests replace it
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
