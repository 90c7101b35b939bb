package api

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/drover-dev/drover/internal/baseline"
)

// BaselineApply is the body of PUT/POST /v1/baselines: a baseline file
// as YAML (baseline.Parse), File its name for error positions.
type BaselineApply struct {
	File string `json:"file,omitempty"`
	YAML string `json:"yaml"`
}

// BaselineApplied answers an apply: the stored version, and whether
// this apply made it (false: the rules equal the current version's).
type BaselineApplied struct {
	Baseline baseline.Baseline `json:"baseline"`
	Changed  bool              `json:"changed"`
}

// BaselineList lists the current version of every baseline.
type BaselineList struct {
	Baselines []baseline.Baseline `json:"baselines"`
}

// BaselineCompliance is GET /v1/baselines/{name}/compliance: every
// node's standing against the baseline's current version, counts by
// status, and what each non-compliant node needs (the input of a
// remediation rollout).
type BaselineCompliance struct {
	Baseline string                    `json:"baseline"`
	Version  int                       `json:"version"`
	At       time.Time                 `json:"at"`
	Counts   map[string]int            `json:"counts"`
	Nodes    []baseline.NodeCompliance `json:"nodes"`
	Needs    []baseline.Need           `json:"needs"`
}

// BaselineExempt is the body of POST /v1/baselines/{name}/exemptions;
// the exemption's author is the caller.
type BaselineExempt struct {
	Node   string    `json:"node"`
	Reason string    `json:"reason"`
	Until  time.Time `json:"until"`
}

// BaselineExemptions lists a baseline's exemptions (expired ones too).
type BaselineExemptions struct {
	Exemptions []baseline.Exemption `json:"exemptions"`
}

// DriftEvent is one detected drift (GET /v1/drift).
type DriftEvent struct {
	ID int64 `json:"id"`
	baseline.Drift
	DetectedAt time.Time `json:"detectedAt"`
}

// DriftList is GET /v1/drift, oldest first; Next is the after= of the
// next page ("" none).
type DriftList struct {
	Events []DriftEvent `json:"events"`
	Next   string       `json:"next,omitempty"`
}

// ApplyBaseline sends a baseline file (PUT /v1/baselines).
func (c *Client) ApplyBaseline(ctx context.Context, file, yaml string) (BaselineApplied, error) {
	var out BaselineApplied
	err := c.do(ctx, "PUT", "/v1/baselines", 0, BaselineApply{File: file, YAML: yaml}, &out)
	return out, err
}

// ListBaselines lists the current version of every baseline.
func (c *Client) ListBaselines(ctx context.Context) (BaselineList, error) {
	var out BaselineList
	err := c.do(ctx, "GET", "/v1/baselines", 0, nil, &out)
	return out, err
}

// GetBaseline returns version (0: the current) of a baseline.
func (c *Client) GetBaseline(ctx context.Context, name string, version int) (baseline.Baseline, error) {
	var out baseline.Baseline
	path := "/v1/baselines/" + url.PathEscape(name)
	if version > 0 {
		path += "?version=" + strconv.Itoa(version)
	}
	err := c.do(ctx, "GET", path, 0, nil, &out)
	return out, err
}

// BaselineCompliance judges every node against a baseline.
func (c *Client) BaselineCompliance(ctx context.Context, name string) (BaselineCompliance, error) {
	var out BaselineCompliance
	err := c.do(ctx, "GET", "/v1/baselines/"+url.PathEscape(name)+"/compliance", 0, nil, &out)
	return out, err
}

// ExemptNode exempts a node from a baseline until req.Until.
func (c *Client) ExemptNode(ctx context.Context, name string, req BaselineExempt) (baseline.Exemption, error) {
	var out baseline.Exemption
	err := c.do(ctx, "POST", "/v1/baselines/"+url.PathEscape(name)+"/exemptions", 0, req, &out)
	return out, err
}

// ListDrift lists drift events (node "" every node) after the event id after.
func (c *Client) ListDrift(ctx context.Context, node string, after int64) (DriftList, error) {
	var out DriftList
	q := url.Values{}
	if node != "" {
		q.Set("node", node)
	}
	if after > 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	path := "/v1/drift"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	err := c.do(ctx, "GET", path, 0, nil, &out)
	return out, err
}

// BaselineRemediate is the body of POST /v1/baselines/{name}/remediate.
type BaselineRemediate struct {
	// DryRun shows the plan and its dry run on the live inventory
	// without creating the rollout.
	DryRun bool `json:"dryRun,omitempty"`
	// Seed fixes the assignment (decimal uint64); "" draws one.
	Seed string `json:"seed,omitempty"`
}

// BaselineRemediation is the answer of POST
// /v1/baselines/{name}/remediate: the plan built from the baseline's
// needs and rollout template, its dry run with the advisories each wave
// closes, and, without dryRun, the rollout created.
type BaselineRemediation struct {
	Baseline string `json:"baseline"`
	Version  int    `json:"version"`
	// Plan is the plan's YAML ("" when no node can be remediated).
	Plan    string              `json:"plan"`
	Nodes   []string            `json:"nodes"`
	Closes  map[string][]string `json:"closes,omitempty"` // node -> advisories
	Skipped []RemediationSkip   `json:"skipped,omitempty"`
	// Waves are the dry run's waves, each with its nodes and the
	// advisories it closes.
	Waves []RemediationWave `json:"waves,omitempty"`
	// AutoApproved: the baseline's policy approved the start; Policy
	// says why or why not.
	AutoApproved bool   `json:"autoApproved"`
	Policy       string `json:"policy"`
	// Notes say what the plan does that an operator may not expect: pins
	// not held, live patches instead of kernel packages and reboots.
	Notes   []string        `json:"notes,omitempty"`
	DryRun  *DryRunResponse `json:"dryRun,omitempty"`
	Rollout *Rollout        `json:"rollout,omitempty"`
}

// RemediationSkip is a non-compliant node the plan leaves out.
type RemediationSkip struct {
	Node   string `json:"node"`
	Reason string `json:"reason"`
}

// RemediationWave is one wave of a remediation's dry run.
type RemediationWave struct {
	Name       string   `json:"name"`
	Nodes      []string `json:"nodes"`
	Advisories []string `json:"advisories"`
}

// RemediateBaseline builds the remediation rollout of a baseline's
// non-compliant nodes: with req.DryRun only its plan and dry run, else
// the rollout is created too.
func (c *Client) RemediateBaseline(ctx context.Context, name string, req BaselineRemediate) (BaselineRemediation, error) {
	var out BaselineRemediation
	err := c.do(ctx, "POST", "/v1/baselines/"+url.PathEscape(name)+"/remediate", 0, req, &out)
	return out, err
}
