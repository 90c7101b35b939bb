package api

import (
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
