package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/rehearsal"
)

// checkApproval refuses an approval that would count for nothing: of a
// wave the rollout does not have (404), of a wave that needs none, or of
// the start of a rollout whose start needs none (409); and one of a
// rollout whose stored nodes no longer hash to its assignment hash (409:
// what is approved is the assignment, and that is not the one on
// record). The store still refuses the author and terminal rollouts.
func (s *Server) checkApproval(ctx context.Context, rollout, wave string) error {
	data, rc, err := s.sched.load(ctx, rollout)
	if err != nil {
		return err
	}
	if err := s.checkAssignment(ctx, rollout); err != nil {
		return err
	}
	p := rc.plan
	var needing []string
	for _, w := range p.Waves {
		if w.Approvals > 0 {
			needing = append(needing, w.Name)
		}
	}
	hint := "no wave of it needs approvals"
	if len(needing) > 0 {
		hint = "waves needing approvals: " + strings.Join(needing, ", ") + " (approve one with --wave)"
	}
	if wave == "" {
		if max(p.Approvals.Start, data.Rollout.ApprovalsNeeded) == 0 {
			return &httpError{status: http.StatusConflict, code: api.CodeConflict,
				msg: fmt.Sprintf("rollout %s needs no approval to start; %s", rollout, hint)}
		}
		return nil
	}
	i := slices.IndexFunc(p.Waves, func(w plan.Wave) bool { return w.Name == wave })
	if i < 0 {
		names := make([]string, len(p.Waves))
		for j, w := range p.Waves {
			names[j] = w.Name
		}
		return &httpError{status: http.StatusNotFound, code: api.CodeNotFound,
			msg: fmt.Sprintf("rollout %s has no wave %q (its waves: %s)", rollout, wave, strings.Join(names, ", "))}
	}
	if p.Waves[i].Approvals == 0 {
		return &httpError{status: http.StatusConflict, code: api.CodeConflict,
			msg: fmt.Sprintf("wave %s of rollout %s needs no approval; %s", wave, rollout, hint)}
	}
	return nil
}

// checkAssignment compares the rollout's stored nodes, read whole from
// the store (not the scheduler's cache), with its assignment hash.
func (s *Server) checkAssignment(ctx context.Context, rollout string) error {
	data, err := s.st.LoadRollout(ctx, rollout)
	if err != nil {
		return err
	}
	want := data.Rollout.AssignmentSHA256
	if want == "" { // created before assignments were hashed
		return nil
	}
	waves := make(map[string]string, len(data.Nodes))
	for _, n := range data.Nodes {
		waves[n.NodeID] = n.State.Wave
	}
	if got := rehearsal.HashWaves(waves); got != want {
		return &httpError{status: http.StatusConflict, code: api.CodeConflict,
			msg: fmt.Sprintf("rollout %s: its nodes' waves hash to %s, not to the assignment %s it was created with; an approval would approve something else: create the rollout again", rollout, got, want)}
	}
	return nil
}

// approvers lists, sorted, the users who may approve: configured users
// and active API tokens' users with role approver or admin.
func (s *Server) approvers(ctx context.Context) ([]string, error) {
	set := map[string]bool{}
	for _, u := range s.cfg.Users {
		if allowed(u.Role, RoleApprover) {
			set[u.Name] = true
		}
	}
	if s.sec.creds != nil {
		ts, err := s.sec.creds.ListAPITokens(ctx)
		if err != nil {
			return nil, err
		}
		now := s.now()
		for _, t := range ts {
			if t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt)) && allowed(Role(t.Role), RoleApprover) {
				set[t.Name] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// approverWarnings warns when the start (needing start approvals) or a
// wave needs more distinct approvers other than author than the server
// knows: such a rollout waits until more people are given tokens.
func (s *Server) approverWarnings(ctx context.Context, p *plan.Plan, start int, author string) ([]string, error) {
	most := start
	for _, w := range p.Waves {
		most = max(most, w.Approvals)
	}
	if most == 0 {
		return nil, nil
	}
	all, err := s.approvers(ctx)
	if err != nil {
		return nil, err
	}
	others := slices.DeleteFunc(all, func(n string) bool { return n == author })
	who := "none"
	if len(others) > 0 {
		who = strings.Join(others, ", ")
	}
	var out []string
	if start > len(others) {
		out = append(out, fmt.Sprintf("the start needs %d approvals but the server has %d approvers other than %s (%s): it cannot start until more are given approver tokens",
			start, len(others), author, who))
	}
	for _, w := range p.Waves {
		if w.Approvals > len(others) {
			out = append(out, fmt.Sprintf("wave %s needs %d approvals but the server has %d approvers other than %s (%s): it cannot start until more are given approver tokens",
				w.Name, w.Approvals, len(others), author, who))
		}
	}
	return out, nil
}

// approvalsText is the dry run's account of the approvals a rollout of
// the plan would need.
func approvalsText(need approvalRequirement, warnings []string) string {
	var b strings.Builder
	switch {
	case need.Needed == 0:
		b.WriteString("approvals: none needed to start\n")
	default:
		fmt.Fprintf(&b, "approvals: %d needed to start, from distinct approvers other than the author\n", need.Needed)
	}
	if need.Floor != "" {
		fmt.Fprintf(&b, "  %s\n", need.Floor)
	}
	for _, w := range warnings {
		fmt.Fprintf(&b, "  warning: %s\n", w)
	}
	return b.String()
}
