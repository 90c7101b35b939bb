package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
	"github.com/drover-dev/drover/internal/rehearsal"
	"github.com/drover-dev/drover/internal/store"
)

// parseSeed reads an API seed (a decimal uint64 in a string); "" is no
// seed.
func parseSeed(s string) (seed uint64, given bool, err error) {
	if s == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, badRequest("seed %q: not a decimal number from 0 to %d", s, uint64(1<<64-1))
	}
	return v, true, nil
}

// newDryRunID is dr-YYYYMMDD-HHMMSS-XXXXXX: sortable, readable, unique.
func newDryRunID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("dr-%s-%s", now.UTC().Format("20060102-150405"), hex.EncodeToString(b[:]))
}

// keepDryRun stores a dry run's plan, seed and assignment so that a
// rollout can be created from it.
func (s *Server) keepDryRun(ctx context.Context, p *plan.Plan, text string, seed uint64, inv []*fleet.Node,
	a *engine.Assignment, author string) (store.DryRun, rehearsal.Record, error) {
	rec, err := rehearsal.Build(p, inv, a)
	if err != nil {
		return store.DryRun{}, rec, fmt.Errorf("record the dry run's assignment: %w", err)
	}
	raw, err := packRecord(rec)
	if err != nil {
		return store.DryRun{}, rec, err
	}
	sum := sha256.Sum256([]byte(text))
	now := s.now()
	d := store.DryRun{ID: newDryRunID(now), Name: p.Name, Author: author, Plan: []byte(text), PlanSHA256: hex.EncodeToString(sum[:]),
		Seed: seed, Assignment: raw, AssignmentSHA256: rec.Hash(), CreatedAt: now}
	if err := s.st.CreateDryRun(ctx, d); err != nil {
		return store.DryRun{}, rec, err
	}
	return d, rec, nil
}

// fromDryRun resolves a create request's plan and seed: from the dry run
// it names (its plan when the request has none, refused if it has
// another; its seed, refused if the request names another), else the
// request's seed or a random one.
func (s *Server) fromDryRun(ctx context.Context, req *api.CreateRolloutRequest) (seed uint64, dr *store.DryRun, err error) {
	seed, given, err := parseSeed(req.Seed)
	if err != nil {
		return 0, nil, err
	}
	if req.FromDryRun == "" {
		if !given {
			seed = randomSeed()
		}
		return seed, nil, nil
	}
	d, err := s.st.GetDryRun(ctx, req.FromDryRun)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil, &httpError{status: http.StatusNotFound, code: api.CodeNotFound,
			msg: fmt.Sprintf("dry run %s not found (the server keeps dry runs %s, at most the %d newest): dry-run the plan again",
				req.FromDryRun, store.DryRunMaxAge, store.DryRunsKept)}
	}
	if err != nil {
		return 0, nil, err
	}
	if req.Plan == "" {
		req.Plan = string(d.Plan)
		if req.File == "" {
			req.File = d.Name + ".yaml"
		}
	} else if sum := sha256.Sum256([]byte(req.Plan)); hex.EncodeToString(sum[:]) != d.PlanSHA256 {
		return 0, nil, &httpError{status: http.StatusConflict, code: api.CodeConflict,
			msg: fmt.Sprintf("plan %s (sha256 %s) is not the plan dry run %s rehearsed (sha256 %s): create from the dry run without the plan, or dry-run this plan",
				orDefault(req.File, "plan.yaml"), hex.EncodeToString(sum[:]), d.ID, d.PlanSHA256)}
	}
	if given && seed != d.Seed {
		return 0, nil, &httpError{status: http.StatusConflict, code: api.CodeConflict,
			msg: fmt.Sprintf("seed %d is not the seed of dry run %s (%d)", seed, d.ID, d.Seed)}
	}
	return d.Seed, &d, nil
}

// compareDryRun recomputes what moved between dry run d and assignment a
// of the current inventory inv; with moves and without accept it refuses
// (assignment_changed, listing them), so that what was reviewed is what
// runs.
func compareDryRun(d *store.DryRun, p *plan.Plan, inv []*fleet.Node, a *engine.Assignment, hash string, accept bool) ([]api.AssignmentMove, error) {
	if d == nil || hash == d.AssignmentSHA256 {
		return nil, nil
	}
	then, err := unpackRecord(d.Assignment)
	if err != nil {
		return nil, fmt.Errorf("dry run %s: stored assignment: %w", d.ID, err)
	}
	now, err := rehearsal.Build(p, inv, a)
	if err != nil {
		return nil, err
	}
	var moves []api.AssignmentMove
	for _, m := range rehearsal.Diff(then, now) {
		moves = append(moves, api.AssignmentMove{Node: m.Node, From: m.From, To: m.To, Why: m.Why})
	}
	if accept {
		return moves, nil
	}
	return nil, &httpError{status: http.StatusConflict, code: api.CodeAssignmentChanged, moves: moves,
		msg: fmt.Sprintf("the assignment on the current inventory differs from dry run %s: %d node(s) moved; review them, then create with --accept-changes (API: acceptChanges) or dry-run again",
			d.ID, len(moves))}
}

// packRecord is how a dry run's record is stored: gzip-compressed JSON
// (every inventory node's entry; on a generated 10,000-node fleet 1.5 MB of
// JSON, 46 kB compressed).
func packRecord(rec rehearsal.Record) ([]byte, error) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if err := json.NewEncoder(zw).Encode(rec); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func unpackRecord(data []byte) (rehearsal.Record, error) {
	var rec rehearsal.Record
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return rec, err
	}
	err = json.NewDecoder(zr).Decode(&rec)
	return rec, err
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
