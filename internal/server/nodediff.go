package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/evidence"
	"github.com/drover-dev/drover/internal/nodediff"
	"github.com/drover-dev/drover/internal/store"
)

// untouched is the state of a node the compared rollout dispatched
// nothing to.
const untouched = "untouched"

// nodeDiff compares a failing node with a healthy one (with=, else the
// most similar online node that succeeded in the rollout or is untouched
// by it) over the rollout's changes (rollout=, else the failing node's
// latest rollout).
func (s *Server) nodeDiff(w http.ResponseWriter, r *http.Request, _ identity) error {
	ctx, q := r.Context(), r.URL.Query()
	rec, err := s.st.GetNode(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	rollout := q.Get("rollout")
	if rollout == "" {
		switch rollout, err = s.st.LatestRolloutOf(ctx, rec.ID); {
		case errors.Is(err, store.ErrNotFound):
			rollout = ""
		case err != nil:
			return err
		}
	}
	states := map[string]string{} // node -> phase in the rollout; untouched when it had no step
	if rollout != "" {
		data, err := s.st.LoadRollout(ctx, rollout)
		if err != nil {
			return err
		}
		for _, n := range data.Nodes {
			states[n.NodeID] = string(n.State.Phase)
			if n.StepID == "" {
				states[n.NodeID] = untouched
			}
		}
	}
	stateOf := func(id string) string {
		if st, ok := states[id]; ok {
			return st
		}
		return untouched
	}
	out := api.NodeDiff{Failing: rec.ID, Rollout: rollout, Sections: []api.DiffSection{}}
	failing, err := s.diffNode(ctx, rec, rollout, stateOf(rec.ID), &out.Warnings)
	if err != nil {
		return err
	}
	out.FailingState = failing.State
	var healthy *nodediff.Node
	if with := q.Get("with"); with != "" {
		if with == rec.ID {
			return badRequest("with=%s: compare a node with another one", with)
		}
		hrec, err := s.st.GetNode(ctx, with)
		if err != nil {
			return err
		}
		if healthy, err = s.diffNode(ctx, hrec, rollout, stateOf(with), &out.Warnings); err != nil {
			return err
		}
	} else {
		var candidates []*nodediff.Node
		for after := ""; ; {
			page, err := s.st.ListNodes(ctx, store.NodeFilter{After: after, Limit: 500})
			if err != nil {
				return err
			}
			for _, n := range page {
				if st := stateOf(n.ID); n.ID != rec.ID && s.online(n) && (st == untouched || st == "succeeded") {
					candidates = append(candidates, &nodediff.Node{ID: n.ID, Facts: n.Facts, Labels: n.Labels,
						AgentVersion: n.AgentVersion, Protocol: n.Protocol, State: st})
				}
			}
			if len(page) < 500 {
				break
			}
			after = page[len(page)-1].ID
		}
		peer, ok := nodediff.PickPeer(failing, candidates)
		if !ok {
			return &httpError{status: http.StatusNotFound, code: api.CodeNotFound,
				msg: fmt.Sprintf("no healthy peer for %s: no other online node succeeded in rollout %q or is untouched by it; name one with with=", rec.ID, rollout)}
		}
		healthy = peer.Node
		healthy.Evidence = s.newestEvidence(ctx, healthy.ID, "", &out.Warnings)
		if rollout != "" {
			steps, err := s.st.NodeSteps(ctx, rollout, healthy.ID)
			if err != nil {
				return err
			}
			healthy.Changed = changesOf(steps, healthy.ID, &out.Warnings)
		}
		out.Picked = &api.PeerChoice{Score: peer.Score, MaxScore: nodediff.MaxScore, Reason: peer.Reason}
	}
	out.Healthy, out.HealthyState = healthy.ID, healthy.State
	for _, sec := range nodediff.Diff(failing, healthy, nil, 0) {
		as := api.DiffSection{Dimension: sec.Dimension, Tier: sec.Tier.String(), More: sec.More}
		for _, d := range sec.Differences {
			as.Differences = append(as.Differences, api.Difference{Key: d.Key, Failing: d.Failing, Healthy: d.Healthy, Reason: d.Reason})
		}
		out.Sections = append(out.Sections, as)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// diffNode is what the diff knows of rec: its record and what rollout's
// steps changed on it (a warning when their evidence cannot be read).
func (s *Server) diffNode(ctx context.Context, rec store.NodeRecord, rollout, state string, warnings *[]string) (*nodediff.Node, error) {
	n := &nodediff.Node{ID: rec.ID, Facts: rec.Facts, Labels: rec.Labels, AgentVersion: rec.AgentVersion, Protocol: rec.Protocol, State: state}
	n.Evidence = s.newestEvidence(ctx, rec.ID, rollout, warnings)
	if rollout == "" {
		return n, nil
	}
	steps, err := s.st.NodeSteps(ctx, rollout, rec.ID)
	if err != nil {
		return nil, err
	}
	n.Changed = changesOf(steps, rec.ID, warnings)
	return n, nil
}

// changesOf reads what steps changed on node; evidence that cannot be
// read leaves the node's changes out of the diff, with a warning.
func changesOf(steps []store.StepEvidence, node string, warnings *[]string) *nodediff.Changed {
	in := make([]nodediff.Step, len(steps))
	for i, st := range steps {
		in[i] = nodediff.Step{Kind: string(st.Kind), Result: st.Result, Evidence: st.Evidence}
	}
	ch, err := nodediff.ChangesOf(in)
	if err != nil {
		*warnings = append(*warnings, fmt.Sprintf("what the rollout changed on %s is left out: %v", node, err))
		return nil
	}
	return ch
}

// newestEvidence is node's newest evidence bundle (of rollout, else its
// newest of any), nil when it has none; one that cannot be read is left
// out with a warning.
func (s *Server) newestEvidence(ctx context.Context, node, rollout string, warnings *[]string) *evidence.Bundle {
	recs, err := s.st.ListEvidence(ctx, node, rollout)
	if err == nil && len(recs) == 0 && rollout != "" {
		recs, err = s.st.ListEvidence(ctx, node, "")
	}
	if err == nil && len(recs) == 0 {
		return nil
	}
	var rec store.EvidenceRecord
	if err == nil {
		rec, err = s.st.GetEvidence(ctx, recs[0].ID)
	}
	var b evidence.Bundle
	if err == nil {
		err = json.Unmarshal(rec.Body, &b)
	}
	if err != nil {
		*warnings = append(*warnings, fmt.Sprintf("the evidence of %s is left out: %v", node, err))
		return nil
	}
	return &b
}
