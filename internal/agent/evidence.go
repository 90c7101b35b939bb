package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/evidence"
	"github.com/drover-dev/drover/internal/plan"
)

// EvidenceDir holds, in StateDir, the bundles captured and not yet taken
// by the server.
const EvidenceDir = "evidence"

// captureEvidence takes the evidence bundle of a failing step before
// anything is rolled back (protocol 5): once per step. The bundle is
// written to StateDir/evidence/STEP.json, journaled as captured (so a
// restart neither captures it again, the node having been rolled back
// meanwhile, nor loses it), then sent; a bundle the server did not take
// is sent again from the poll loop (sendPendingEvidence). Capture
// errors never stop the rollback: they are logged. The capture delays the
// rollback by its own time (bounded by evidence.DefaultDeadline), the
// sending does not. A node gate that fails is reported first and captured
// after: nothing is undone until the server sends a rollback step, which
// waits in the queue until the capture ends, while the server's own
// healthy deadline does not wait for the capture.
func (a *agent) captureEvidence(ctx context.Context, id, why string) {
	if a.cfg.Evidence == nil {
		return
	}
	st, ok := a.j.step(id)
	if !ok || st.EvidenceCaptured {
		return
	}
	spec := evidenceSpec(st.Payload)
	spec.Node, spec.Rollout, spec.Step, spec.Reason = a.cfg.NodeID, st.Payload.Rollout, id, evidence.ReasonFailure
	spec.Packages = a.changedPackages(st)
	b := a.cfg.Evidence(ctx, spec)
	if b == nil || ctx.Err() != nil {
		return
	}
	a.log.Info("evidence captured before the rollback", "step", id, "took", b.Took, "sections", len(b.Sections), "why", why)
	if err := a.writeEvidence(id, b); err != nil {
		a.log.Warn("evidence not kept", "step", id, "error", err)
		return
	}
	if err := a.j.append(record{Type: recEvidence, Step: id, At: a.clock.Now(), Stage: evidenceCaptured}); err != nil {
		a.log.Warn("evidence not journaled", "step", id, "error", err)
		return
	}
	// Sent apart from the step: the rollback does not wait for the server.
	a.bg.Go(func() { a.sendEvidence(ctx, id, 1) })
}

// Evidence journal stages.
const (
	evidenceCaptured = "captured" // written to StateDir/evidence, not yet taken
	evidenceSent     = "sent"     // taken (or refused for good) by the server
)

func (a *agent) evidencePath(id string) string {
	return filepath.Join(a.cfg.StateDir, EvidenceDir, strings.ReplaceAll(id, "/", "_")+".json")
}

func (a *agent) writeEvidence(id string, b *evidence.Bundle) error {
	raw, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("encode evidence: %w", err)
	}
	p := a.evidencePath(id)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// sendEvidence posts the bundle kept for step id, at most tries times
// (0: until ctx ends); once taken or refused for good, it is journaled
// sent and its file removed.
func (a *agent) sendEvidence(ctx context.Context, id string, tries int) bool {
	a.evMu.Lock()
	defer a.evMu.Unlock()
	if st, ok := a.j.step(id); !ok || st.EvidenceSent {
		return true
	}
	raw, err := os.ReadFile(a.evidencePath(id))
	if err != nil {
		a.log.Warn("evidence kept for the step is gone", "step", id, "error", err)
		_ = a.j.append(record{Type: recEvidence, Step: id, At: a.clock.Now(), Stage: evidenceSent, Reason: "file gone: " + err.Error()})
		return true
	}
	var b evidence.Bundle
	if err := json.Unmarshal(raw, &b); err != nil {
		_ = a.j.append(record{Type: recEvidence, Step: id, At: a.clock.Now(), Stage: evidenceSent, Reason: "unreadable: " + err.Error()})
		return true
	}
	err = a.c.retry(ctx, "evidence", tries, true, func(ctx context.Context) error {
		return a.c.do(ctx, api.PathEvidence, api.EvidenceReport{NodeID: a.cfg.NodeID, Bundle: &b}, nil)
	})
	var se *ServerError
	if err != nil && !(errors.As(err, &se) && se.permanent()) {
		return false
	}
	reason := ""
	if err != nil {
		a.log.Warn("server refused the evidence bundle", "step", id, "error", err)
		reason = err.Error()
	}
	if err := a.j.append(record{Type: recEvidence, Step: id, At: a.clock.Now(), Stage: evidenceSent, Reason: reason}); err != nil {
		return false
	}
	_ = os.Remove(a.evidencePath(id))
	return true
}

// sendPendingEvidence sends again the bundles captured and not taken.
func (a *agent) sendPendingEvidence(ctx context.Context) {
	for _, id := range a.j.pendingEvidence() {
		if !a.sendEvidence(ctx, id, 1) {
			return
		}
	}
}

// answerEvidence answers the server's on-demand captures, each once per
// process (a request asked again after a restart is captured again: the
// node is healthy, nothing is lost).
func (a *agent) answerEvidence(ctx context.Context, reqs []api.EvidenceRequest) (ran bool) {
	for _, req := range reqs {
		a.mu.Lock()
		if a.evidenceAnswered == nil {
			a.evidenceAnswered = map[string]bool{}
		}
		done := a.evidenceAnswered[req.ID]
		a.mu.Unlock()
		if done || req.ID == "" {
			continue
		}
		ran = true
		spec := evidence.Spec{Node: a.cfg.NodeID, Reason: evidence.ReasonOnDemand, Units: req.Units, Binaries: req.Binaries, Names: req.Names, Endpoints: req.Endpoints, CAFiles: req.CAFiles}
		var b *evidence.Bundle
		if a.cfg.Evidence != nil {
			b = a.cfg.Evidence(ctx, spec)
		}
		if ctx.Err() != nil {
			return ran
		}
		if b == nil {
			b = &evidence.Bundle{Node: a.cfg.NodeID, Reason: evidence.ReasonOnDemand, CapturedAt: a.clock.Now().UTC(),
				Sections: []evidence.Section{{Name: "agent", Error: "this agent captures no evidence (started without it)"}}}
		}
		a.log.Info("on-demand evidence captured", "request", req.ID, "took", b.Took)
		err := a.c.retry(ctx, "evidence", 3, true, func(ctx context.Context) error {
			return a.c.do(ctx, api.PathEvidence, api.EvidenceReport{NodeID: a.cfg.NodeID, Request: req.ID, Bundle: b}, nil)
		})
		var se *ServerError
		if err != nil && !(errors.As(err, &se) && se.permanent()) {
			continue // asked again on the next poll
		}
		a.mu.Lock()
		a.evidenceAnswered[req.ID] = true
		a.mu.Unlock()
	}
	return ran
}

// evidenceSpec derives what to capture from a step: the units its
// service-restart actions and systemd and linkage probes name, the
// binaries its linkage probes name, the host names of
// its http and tcp probes, and the endpoints of its https probes.
func evidenceSpec(p api.StepPayload) evidence.Spec {
	var s evidence.Spec
	add := func(list *[]string, v string) {
		if v != "" && !slices.Contains(*list, v) {
			*list = append(*list, v)
		}
	}
	for _, act := range p.Actions {
		if act.ServiceRestart != nil {
			add(&s.Units, unitName(act.ServiceRestart.Service))
		}
	}
	for _, pr := range p.Probes {
		switch pr.Kind {
		case plan.ProbeSystemd:
			add(&s.Units, unitName(pr.Unit))
		case plan.ProbeHTTP:
			u, err := url.Parse(pr.URL)
			if err != nil || u.Hostname() == "" {
				continue
			}
			if net.ParseIP(u.Hostname()) == nil {
				add(&s.Names, u.Hostname())
			}
			if u.Scheme == "https" {
				port := u.Port()
				if port == "" {
					port = "443"
				}
				add(&s.Endpoints, net.JoinHostPort(u.Hostname(), port))
			}
		case plan.ProbeTCP:
			if h, _, err := net.SplitHostPort(pr.Address); err == nil && net.ParseIP(h) == nil {
				add(&s.Names, h)
			}
		case plan.ProbeLinkage:
			add(&s.Units, unitName(pr.Unit))
			for _, b := range pr.Binaries {
				add(&s.Binaries, b)
			}
		case plan.ProbeDNS:
			add(&s.Names, pr.Lookup)
		case plan.ProbeTLS:
			h, _, err := net.SplitHostPort(pr.Address)
			if err != nil {
				continue
			}
			if net.ParseIP(h) == nil {
				add(&s.Names, h)
			}
			add(&s.Endpoints, pr.Address)
			if pr.CAFile != "" {
				if s.CAFiles == nil {
					s.CAFiles = map[string]string{}
				}
				s.CAFiles[pr.Address] = pr.CAFile
			}
		}
	}
	return s
}

func unitName(s string) string {
	if s == "" || strings.Contains(s, ".") {
		return s
	}
	return s + ".service"
}

// changedPackages is what the step's actions changed, from their
// outcomes (or the change found by Preflight when Apply did not return).
func (a *agent) changedPackages(st stepState) []evidence.PackageChange {
	var out []evidence.PackageChange
	for i := range st.Payload.Actions {
		as := st.Actions[i]
		if as == nil {
			continue
		}
		switch {
		case as.Outcome != nil:
			for _, c := range as.Outcome.Changed {
				out = append(out, evidence.PackageChange{Name: c.Name, Before: c.From, After: c.To})
			}
		case as.Change != nil:
			for _, c := range as.Change.Items {
				out = append(out, evidence.PackageChange{Name: c.Name, Before: c.From, After: c.To + " (apply did not finish)"})
			}
		}
	}
	return out
}
