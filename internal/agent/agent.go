package agent

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/probe"
)

// DefaultFactsInterval is how often an idle agent collects its facts again
// to see whether they changed; they are also collected after every step,
// and before a poll when Config.PackageStamp changed.
const DefaultFactsInterval = 5 * time.Minute

// agent is one running agent.
type agent struct {
	cfg    Config
	log    *slog.Logger
	clock  Clock
	c      *client
	j      *journal
	prober *probe.Prober
	policy *fleet.AgentPolicy // reported in the facts; check enforces it

	mu        sync.Mutex
	facts     fleet.Facts
	factsHash [32]byte
	factsAt   time.Time
	sentHash  [32]byte
	stale     bool              // facts must be collected before the next poll
	pkgStamp  string            // PackageStamp when the facts were collected
	queue     []api.StepPayload // received, not yet taken on
	queued    map[string]bool
	working   string            // step being executed
	malformed map[string]string // step ID -> why its payload did not decode
	answered  map[string]bool   // rollouts whose pre-flight this process answered
	// evidenceAnswered: on-demand evidence requests this process answered.
	evidenceAnswered map[string]bool
	evMu             sync.Mutex     // one evidence bundle sent at a time
	bg               sync.WaitGroup // evidence sends, waited for before the journal closes
	wake             chan struct{}
	heartbeat        time.Duration
	pollWait         time.Duration

	prog progressSender
}

// progressSender sends a step's progress reports in the background and
// in order, so that the step does not wait for the server to take each
// one. A report waits up to progressCoalesce for a newer one, which
// replaces it (the server needs the node's latest state, not every state
// it passed through): a step done within that time reports only its
// result, and a progress report costs the server a write transaction.
// The final report waits for the report being sent, so that nothing
// overtakes it, and drops the unsent one.
type progressSender struct {
	clock   Clock
	mu      sync.Mutex
	idle    sync.Cond
	pending *api.StepReport
	sending bool
	cut     chan struct{} // closed to end the sender's wait at once
}

// progressCoalesce is how long a progress report waits for a newer one.
const progressCoalesce = 200 * time.Millisecond

// post queues rep, replacing an unsent one, and starts a sender if none
// runs; send delivers one report.
func (p *progressSender) post(ctx context.Context, rep api.StepReport, send func(context.Context, api.StepReport)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = &rep
	if p.sending {
		return
	}
	p.sending = true
	cut := make(chan struct{})
	p.cut = cut
	go func() {
		t := p.clock.NewTimer(progressCoalesce)
		select {
		case <-t.C:
		case <-cut:
		case <-ctx.Done():
		}
		t.Stop()
		p.mu.Lock()
		defer p.mu.Unlock()
		for p.pending != nil {
			next := *p.pending
			p.pending = nil
			p.mu.Unlock()
			send(ctx, next)
			p.mu.Lock()
		}
		p.sending = false
		p.idle.Broadcast()
	}()
}

// drain drops the unsent report, which the final one supersedes, and
// waits for the one being sent (it gives up when its ctx ends).
func (p *progressSender) drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = nil
	if p.cut != nil {
		close(p.cut)
		p.cut = nil
	}
	for p.sending {
		p.idle.Wait()
	}
}

// Run runs the agent until ctx ends: it opens the journal in StateDir,
// registers, finishes or verifies any step a crash or reboot interrupted,
// then long-polls for steps and executes them one at a time. It returns
// nil when ctx ends, an error wrapping ErrProtocolUnsupported when the
// server does not speak this agent's protocol, and an error when the
// configuration or the journal is unusable.
func Run(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	j, err := openJournal(cfg.StateDir)
	if err != nil {
		return err
	}
	defer j.close()
	j.afterAppend = cfg.afterAppend
	a := &agent{
		cfg:   cfg,
		log:   cfg.Logger.With("node", cfg.NodeID),
		clock: cfg.Clock,
		j:     j,
		c: &client{
			node: cfg.NodeID, base: cfg.ServerURL, http: cfg.HTTPClient, token: cfg.Token, log: cfg.Logger.With("node", cfg.NodeID),
			clock: cfg.Clock, jitter: cfg.Rand.Float64, cap: cfg.MaxBackoff,
		},
		prober: &probe.Prober{
			Runner: cfg.Runner, HTTPClient: cfg.ProbeHTTPClient, Clock: cfg.Clock,
			AllowCommands: cfg.AllowCommandProbes, AllowOutput: cfg.AllowProbeOutput, Verifier: cfg.Verifier,
			Host: cfg.HostCheck,
		},
		policy:    cfg.policy(),
		queued:    map[string]bool{},
		wake:      make(chan struct{}, 1),
		heartbeat: cfg.Heartbeat,
	}
	a.prog.idle.L, a.prog.clock = &a.prog.mu, cfg.Clock
	defer a.prog.drain()
	defer a.bg.Wait()
	if j.torn > 0 {
		a.log.Warn("journal: cut a torn last record; its step is treated as interrupted", "bytes", j.torn)
	}
	if j.skipped > 0 {
		a.log.Warn("journal: skipped unreadable records", "records", j.skipped)
	}
	err = a.run(ctx)
	if ctx.Err() != nil && !errors.Is(err, ErrProtocolUnsupported) {
		return nil
	}
	return err
}

func (a *agent) run(ctx context.Context) error {
	if err := a.c.retry(ctx, "collect facts", 0, false, a.refreshFacts); err != nil {
		return err
	}
	if err := a.register(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := a.pollLoop(ctx); err != nil {
			cancel(err)
		}
	}()
	if err := a.executeLoop(ctx); err != nil {
		cancel(err)
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// refreshFacts collects the node's facts and remembers their hash.
func (a *agent) refreshFacts(ctx context.Context) error {
	stamp := a.packageStamp() // before: a change while collecting is seen next time
	f, err := a.cfg.Facts(ctx)
	if err != nil {
		return fmt.Errorf("collect facts: %w", err)
	}
	f.Agent = a.policy
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("collect facts: %w", err)
	}
	h := sha256.Sum256(b)
	a.mu.Lock()
	a.facts, a.factsHash, a.factsAt, a.stale, a.pkgStamp = f, h, a.clock.Now(), false, stamp
	a.mu.Unlock()
	return nil
}

func (a *agent) packageStamp() string {
	if a.cfg.PackageStamp == nil {
		return ""
	}
	return a.cfg.PackageStamp()
}

func (a *agent) currentFacts() fleet.Facts {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.facts
}

// bootID returns the node's current boot ID.
func (a *agent) bootID(ctx context.Context) (string, error) {
	if a.cfg.BootID != nil {
		return a.cfg.BootID(ctx)
	}
	f, err := a.cfg.Facts(ctx)
	if err != nil {
		return "", err
	}
	return f.BootID, nil
}

func (a *agent) register(ctx context.Context) error {
	a.mu.Lock()
	req := api.RegisterRequest{
		NodeID: a.cfg.NodeID, Facts: a.facts, Labels: a.cfg.Labels,
		AgentVersion: a.cfg.Version, Accepts: a.cfg.Accepts,
	}
	hash := a.factsHash
	a.mu.Unlock()
	var resp api.RegisterResponse
	err := a.c.retry(ctx, "register", 0, false, func(ctx context.Context) error {
		return a.c.do(ctx, api.PathRegister, req, &resp)
	})
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.sentHash = hash
	if resp.Heartbeat > 0 {
		a.heartbeat = resp.Heartbeat
	}
	a.pollWait = time.Duration(resp.PollWaitSeconds) * time.Second
	a.mu.Unlock()
	a.log.Info("registered", "server", a.cfg.ServerURL, "lease_seconds", resp.LeaseSeconds,
		"poll_wait_seconds", resp.PollWaitSeconds, "heartbeat", a.heartbeat)
	return nil
}

// pollLoop long-polls until ctx ends. It returns only a fatal error
// (protocol refused) or ctx's.
func (a *agent) pollLoop(ctx context.Context) error {
	for {
		start := a.clock.Now()
		fresh, err := a.pollOnce(ctx)
		if err != nil {
			return err
		}
		if fresh {
			// Poll again at once: the server holds the next poll (it knows
			// what this agent holds), so a cancel of what was just taken
			// in reaches it without waiting a heartbeat.
			continue
		}
		a.mu.Lock()
		hb := a.heartbeat
		a.mu.Unlock()
		if wait := hb - a.clock.Now().Sub(start); wait > 0 {
			if err := a.c.sleep(ctx, wait); err != nil {
				return err
			}
		}
	}
}

// pollOnce sends one poll (retrying on errors) and takes in the steps and
// cancels it returns. fresh reports whether any was new to the agent.
func (a *agent) pollOnce(ctx context.Context) (fresh bool, err error) {
	stamp := a.packageStamp()
	a.mu.Lock()
	refresh := a.stale || a.clock.Now().Sub(a.factsAt) >= DefaultFactsInterval ||
		// The package database changed (by hand, or by anything but a
		// step of ours: a step's own changes are collected when it ends).
		(stamp != a.pkgStamp && a.working == "" && len(a.queue) == 0)
	a.mu.Unlock()
	if refresh {
		if err := a.refreshFacts(ctx); err != nil {
			a.log.Warn("facts not refreshed", "error", err)
		}
	}
	a.mu.Lock()
	req := api.PollRequest{NodeID: a.cfg.NodeID, BootID: a.facts.BootID}
	if a.working != "" {
		req.Working = []string{a.working}
	}
	for _, p := range a.queue { // held too: not handed out again, so the poll waits and a cancel wakes it
		req.Working = append(req.Working, p.ID)
	}
	hash := a.factsHash
	if hash != a.sentHash {
		f := a.facts
		req.Facts = &f
	}
	wait := a.pollWait
	a.mu.Unlock()
	// Steps are decoded one by one (decodeSteps): a payload that does not
	// decode must not fail the whole poll, or the agent would poll again
	// for ever and never run the other steps.
	var resp struct {
		Steps      []json.RawMessage      `json:"steps"`
		Cancel     []string               `json:"cancel"`
		Preflights []api.PreflightRequest `json:"preflights"`
		Evidence   []api.EvidenceRequest  `json:"evidence"`
	}
	err = a.c.retry(ctx, "poll", 0, false, func(ctx context.Context) error {
		pctx, cancel := context.WithTimeout(ctx, wait+30*time.Second)
		defer cancel()
		return a.c.do(pctx, api.PathPoll, req, &resp)
	})
	if err != nil {
		return false, err
	}
	if req.Facts != nil {
		a.mu.Lock()
		a.sentHash = hash
		a.mu.Unlock()
	}
	for _, id := range resp.Cancel {
		fresh = a.cancel(ctx, id) || fresh
	}
	for _, p := range a.decodeSteps(resp.Steps) {
		fresh = a.take(ctx, p) || fresh
	}
	if len(resp.Preflights) > 0 && a.preflight(ctx, resp.Preflights) {
		fresh = true
	}
	if len(resp.Evidence) > 0 && a.answerEvidence(ctx, resp.Evidence) {
		fresh = true
	}
	a.sendPendingEvidence(ctx)
	return fresh, nil
}

// cancel answers the server's cancel of a step. One the agent has not
// begun (not in the journal, not being taken on) is journaled as
// cancelled, so that it is never begun, and acknowledged with a cancelled
// report; one it began runs on and reports its real outcome. It reports
// whether the cancel was new (the step journaled as cancelled now).
func (a *agent) cancel(ctx context.Context, id string) bool {
	if id == "" {
		return false
	}
	a.mu.Lock()
	if st, known := a.j.step(id); known || a.working == id {
		a.mu.Unlock()
		if known && st.finished() && !st.Reported {
			a.sendFinal(ctx, id, *st.Result, 5)
		} else if !known || !st.finished() {
			a.log.Info("cancel of a step already begun; it runs to its end", "step", id)
		}
		return false
	}
	a.queue = slices.DeleteFunc(a.queue, func(p api.StepPayload) bool { return p.ID == id })
	delete(a.queued, id)
	rep := api.StepReport{StepID: id, NodeID: a.cfg.NodeID, Phase: engine.PhaseCancelled, At: a.clock.Now(),
		Reason: "not begun on this node"}
	err := a.j.append(record{Type: recCancelled, Step: id, At: rep.At, Report: &rep})
	a.mu.Unlock()
	if err != nil {
		a.log.Error("journal write failed; cancel not acknowledged (the step is not begun either)", "step", id, "error", err)
		return false
	}
	a.log.Info("step cancelled before it began", "step", id)
	a.sendFinal(ctx, id, rep, 5)
	return true
}

// decodeSteps decodes the steps of a poll answer. A step whose payload
// does not decode but whose ID can be read is handed on as a malformed
// step (kind kindMalformed, the decoding error kept in a.malformed): it is
// journaled and failed with that reason like any other malformed step,
// nothing runs, and it is never taken on twice. One without a readable ID
// cannot be reported and is logged and dropped.
func (a *agent) decodeSteps(raw []json.RawMessage) []api.StepPayload {
	steps := make([]api.StepPayload, 0, len(raw))
	for _, r := range raw {
		var p api.StepPayload
		err := json.Unmarshal(r, &p)
		if err == nil {
			steps = append(steps, p)
			continue
		}
		var id struct {
			ID      string `json:"id"`
			Rollout string `json:"rollout"`
		}
		if json.Unmarshal(r, &id) != nil || id.ID == "" {
			a.log.Error("server handed out a step that does not decode and has no ID; ignored", "error", err)
			continue
		}
		a.mu.Lock()
		if a.malformed == nil {
			a.malformed = map[string]string{}
		}
		a.malformed[id.ID] = err.Error()
		a.mu.Unlock()
		steps = append(steps, api.StepPayload{ID: id.ID, Rollout: id.Rollout, Kind: kindMalformed})
	}
	return steps
}

// take queues a step the server handed out, unless the agent already knows
// it: a finished step's recorded result is reported again instead (the
// step is never executed twice), a step in progress or queued is ignored.
// It reports whether the step was queued now.
func (a *agent) take(ctx context.Context, p api.StepPayload) bool {
	if p.ID == "" {
		a.log.Error("server handed out a step without an ID; ignored", "rollout", p.Rollout, "kind", p.Kind)
		return false
	}
	if st, ok := a.j.step(p.ID); ok {
		if st.finished() {
			a.log.Info("step handed out again; reporting its recorded result", "step", p.ID, "phase", st.Result.Phase)
			a.sendFinal(ctx, st.ID, *st.Result, 5)
		}
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.queued[p.ID] || a.working == p.ID {
		return false
	}
	a.queued[p.ID] = true
	a.queue = append(a.queue, p)
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return true
}

// ErrReplaced is returned by Run when Config.Replaced said the agent's
// program was replaced on disk while no step ran: every step it took is
// finished and reported (or journaled for the next start to report), and
// the caller should start the new program.
var ErrReplaced = errors.New("agent program replaced on disk (package upgrade): restart to run the new one")

// executeLoop first settles what the journal left unfinished, then runs
// queued steps one at a time until ctx ends. It returns ErrReplaced when
// the agent's program was replaced and no step is running or queued.
func (a *agent) executeLoop(ctx context.Context) error {
	replaced := func() bool {
		if a.cfg.Replaced == nil || !a.cfg.Replaced() {
			return false
		}
		a.mu.Lock()
		queued := len(a.queue)
		a.mu.Unlock()
		return queued == 0
	}
	var check <-chan time.Time
	for _, st := range a.j.all() {
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case !st.finished():
			a.setWorking(st.ID)
			a.log.Warn("resuming interrupted step", "step", st.ID, "kind", st.Payload.Kind)
			a.resume(ctx, st)
			a.settle(ctx, st.ID)
			a.setWorking("")
		case !st.Reported:
			a.sendFinal(ctx, st.ID, *st.Result, 0)
		}
	}
	for {
		a.mu.Lock()
		var p *api.StepPayload
		if len(a.queue) > 0 {
			first := a.queue[0]
			p = &first
			a.queue = slices.Delete(a.queue, 0, 1)
			delete(a.queued, p.ID)
			a.working = p.ID
		}
		a.mu.Unlock()
		if p == nil {
			if a.cfg.Replaced != nil && check == nil {
				check = a.clock.After(a.cfg.ReplacedCheck)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-a.wake:
				continue
			case <-check:
				check = nil
				if replaced() {
					a.log.Warn("agent program replaced on disk while idle: restarting")
					return ErrReplaced
				}
				continue
			}
		}
		if _, known := a.j.step(p.ID); !known {
			a.execute(ctx, *p)
			a.settle(ctx, p.ID)
		}
		a.setWorking("")
		if ctx.Err() != nil {
			return nil
		}
		if replaced() {
			a.log.Warn("agent program replaced on disk during a step: restarting now the step is finished", "step", p.ID)
			return ErrReplaced
		}
	}
}

// settle resumes, again and again with a growing delay, a step that
// its run left unfinished in the journal although ctx did not end: a
// journal write failed (a full disk), so its result was never recorded
// nor reported, and without this its node would stay in flight on the
// server until the agent restarts. It returns when the step is finished
// or ctx ends.
func (a *agent) settle(ctx context.Context, id string) {
	wait := time.Second
	for {
		st, ok := a.j.step(id)
		if !ok || st.finished() || ctx.Err() != nil {
			return
		}
		a.log.Warn("step left unfinished by its run (journal write failed): resuming it", "step", id, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-a.clock.After(wait):
		}
		a.resume(ctx, st)
		wait = min(2*wait, a.cfg.MaxBackoff)
	}
}

func (a *agent) setWorking(id string) {
	a.mu.Lock()
	a.working = id
	if id == "" {
		a.stale = true // the step may have changed the facts
	}
	a.mu.Unlock()
}

// progress reports a non-final phase in the background (see
// progressSender), trying a few times; a lost progress report is logged,
// not fatal: the final report carries the outcome.
func (a *agent) progress(ctx context.Context, rep api.StepReport) {
	rep.NodeID = a.cfg.NodeID
	rep.At = a.clock.Now()
	a.prog.post(ctx, rep, func(ctx context.Context, rep api.StepReport) {
		err := a.c.retry(ctx, "report "+string(rep.Phase), 3, true, func(ctx context.Context) error {
			return a.c.do(ctx, api.PathReport, rep, nil)
		})
		if err != nil && ctx.Err() == nil {
			a.log.Warn("progress report lost", "step", rep.StepID, "phase", rep.Phase, "error", err)
		}
	})
}

// finish journals the final report of a step, then sends it. Persist
// before sending: once the result is journaled the step never runs again.
func (a *agent) finish(ctx context.Context, id string, rep api.StepReport) error {
	rep.StepID = id
	rep.NodeID = a.cfg.NodeID
	rep.At = a.clock.Now()
	if err := a.j.append(record{Type: recResult, Step: id, At: rep.At, Report: &rep}); err != nil {
		a.log.Error("journal write failed; step result not recorded", "step", id, "error", err)
		return err
	}
	a.log.Info("step finished", "step", id, "phase", rep.Phase, "gate", rep.Gate, "reason", rep.Reason)
	a.sendFinal(ctx, id, rep, 0)
	return nil
}

// sendFinal sends a recorded final report (maxTries <= 0: until it is
// accepted, refused, or ctx ends) and journals that it was accepted.
func (a *agent) sendFinal(ctx context.Context, id string, rep api.StepReport, maxTries int) {
	a.prog.drain()
	err := a.c.retry(ctx, "report "+string(rep.Phase), maxTries, true, func(ctx context.Context) error {
		return a.c.do(ctx, api.PathReport, rep, nil)
	})
	var se *ServerError
	switch {
	case err == nil:
	case errors.As(err, &se) && se.permanent():
		// The server will not take it (stale step, fenced term); keep
		// the result in the journal and do not send it again.
		a.log.Warn("server refused the step result; not sending it again", "step", id, "error", err)
	default:
		return // unsent: sent again on the next start or hand-out
	}
	if st, ok := a.j.step(id); ok && st.Reported {
		return
	}
	if err := a.j.append(record{Type: recReported, Step: id, At: a.clock.Now()}); err != nil {
		a.log.Warn("journal write failed", "step", id, "error", err)
	}
}
