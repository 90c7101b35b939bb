package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
)

// preflight answers the server's node pre-flights (protocol 4): for each
// request not answered yet by this process, every action goes through its
// driver's Preflight and, where the package manager can rehearse the
// change (driver.Simulator), its Simulate. Nothing on the node changes
// and nothing is journaled: a pre-flight asked again after a restart is
// simply run again. The report is sent until the server takes or refuses
// it. It reports whether it ran any.
func (a *agent) preflight(ctx context.Context, reqs []api.PreflightRequest) (ran bool) {
	for _, req := range reqs {
		a.mu.Lock()
		if a.answered == nil {
			a.answered = map[string]bool{}
		}
		done := a.answered[req.Rollout]
		a.mu.Unlock()
		if done || req.Rollout == "" {
			continue
		}
		ran = true
		rep := a.runPreflight(ctx, req)
		if ctx.Err() != nil {
			return ran
		}
		a.log.Info("pre-flight answered", "rollout", req.Rollout, "ok", rep.OK, "took", rep.Took, "reasons", rep.Reasons)
		err := a.c.retry(ctx, "pre-flight report", 0, true, func(ctx context.Context) error {
			return a.c.do(ctx, api.PathPreflight, rep, nil)
		})
		var se *ServerError
		if err != nil && !(errors.As(err, &se) && se.permanent()) {
			continue // asked again on the next poll
		}
		if err != nil {
			a.log.Warn("server refused the pre-flight report", "rollout", req.Rollout, "error", err)
		}
		a.mu.Lock()
		a.answered[req.Rollout] = true
		a.mu.Unlock()
	}
	return ran
}

// runPreflight runs one pre-flight request through the drivers.
func (a *agent) runPreflight(ctx context.Context, req api.PreflightRequest) api.PreflightReport {
	start := a.clock.Now()
	facts := a.currentFacts()
	rep := api.PreflightReport{Rollout: req.Rollout, NodeID: a.cfg.NodeID, OK: true, Actions: []api.PreflightAction{}}
	fail := func(pa *api.PreflightAction, why string) {
		pa.OK, pa.Reason = false, why
		rep.OK = false
		rep.Reasons = append(rep.Reasons, pa.Action+": "+why)
	}
	if len(req.Actions) == 0 {
		rep.OK, rep.Reasons = false, []string{"malformed pre-flight request: no actions"}
	}
	for _, act := range req.Actions {
		pa := api.PreflightAction{Action: describe(act, facts.OS.Family), OK: true}
		kind, err := driver.KindOf(act)
		if err != nil {
			fail(&pa, "malformed action: "+err.Error())
			rep.Actions = append(rep.Actions, pa)
			continue
		}
		if !slices.Contains(a.cfg.Accepts, kind) {
			fail(&pa, fmt.Sprintf("action kind %s not allowed by this agent's configuration", kind))
			rep.Actions = append(rep.Actions, pa)
			continue
		}
		d, err := a.cfg.Drivers.For(act, facts)
		if err != nil {
			fail(&pa, err.Error())
			rep.Actions = append(rep.Actions, pa)
			continue
		}
		pa.Driver = d.Name()
		c, err := d.Preflight(ctx, act)
		if err == nil && !c.None {
			if sim, ok := d.(driver.Simulator); ok {
				var s driver.Change
				if s, err = sim.Simulate(ctx, act); err == nil {
					c.Planned, c.Held, c.Reboot = s.Planned, mergeHeld(c.Held, s.Held), c.Reboot || s.Reboot
				}
			}
		}
		if err != nil {
			fail(&pa, err.Error())
		} else {
			fillAction(&pa, c)
		}
		rep.Actions = append(rep.Actions, pa)
		rep.Reboot = rep.Reboot || pa.Reboot
		rep.BytesNeeded += pa.BytesNeeded
		if pa.BytesFree > 0 && (rep.BytesFree == 0 || pa.BytesFree < rep.BytesFree) {
			rep.BytesFree = pa.BytesFree
		}
	}
	rep.At = a.clock.Now()
	rep.Took = rep.At.Sub(start)
	return rep
}

func fillAction(pa *api.PreflightAction, c driver.Change) {
	pa.Summary, pa.None, pa.Held, pa.Reboot = c.Summary, c.None, c.Held, c.Reboot
	pa.BytesNeeded, pa.BytesFree = c.BytesNeeded, c.BytesFree
	for _, op := range c.Planned {
		pa.Planned = append(pa.Planned, api.PlannedChange{Op: op.Op, Name: op.Name, From: op.From, To: op.To})
	}
}

func mergeHeld(a, b []string) []string {
	for _, h := range b {
		if !slices.Contains(a, h) {
			a = append(a, h)
		}
	}
	return a
}
