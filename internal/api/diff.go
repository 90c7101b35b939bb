package api

import (
	"context"
	"net/http"
	"net/url"
)

// NodeDiff is a failing node compared with a healthy one (GET
// /v1/nodes/{id}/diff), ranked: the sections of tier "rollout" (what the
// rollout changed on the failing node) first, then "known" (differences
// known to break updates), then "other" (labels). Each section keeps its
// first differences, most telling first, and counts the rest in More.
type NodeDiff struct {
	Failing string `json:"failing"`
	Healthy string `json:"healthy"`
	// Rollout is the rollout whose changes are compared: the one asked
	// for, else the failing node's latest; "" when no rollout ever
	// dispatched a step to it.
	Rollout string `json:"rollout,omitempty"`
	// FailingState and HealthyState are the nodes' phases in Rollout
	// ("untouched" when it dispatched nothing to the node).
	FailingState string `json:"failingState,omitempty"`
	HealthyState string `json:"healthyState,omitempty"`
	// Picked says why the server chose Healthy; absent when the caller
	// named it (with=).
	Picked   *PeerChoice   `json:"picked,omitempty"`
	Sections []DiffSection `json:"sections"`
	// Warnings name what could not be compared (a step's evidence that
	// does not parse).
	Warnings []string `json:"warnings,omitempty"`
}

// PeerChoice is why a healthy peer was picked: its similarity Score out
// of MaxScore (same OS family and version, hardware class, zone, arch,
// kernel) and a sentence saying so.
type PeerChoice struct {
	Score    int    `json:"score"`
	MaxScore int    `json:"maxScore"`
	Reason   string `json:"reason"`
}

// DiffSection is one dimension's differences (os, kernel, packages,
// services, runtime, agent, hardware, zone, modules, labels; rollout);
// More counts those left out.
type DiffSection struct {
	Dimension   string       `json:"dimension"`
	Tier        string       `json:"tier"`
	Differences []Difference `json:"differences"`
	More        int          `json:"more,omitempty"`
}

// Difference is one key whose value differs ("" where a node lacks it),
// with the reason it is ranked where it is.
type Difference struct {
	Key     string `json:"key"`
	Failing string `json:"failing"`
	Healthy string `json:"healthy"`
	Reason  string `json:"reason"`
}

// NodeDiff compares failing with healthy ("" lets the server pick the
// most similar healthy node) over rollout's changes ("" for the failing
// node's latest rollout).
func (c *Client) NodeDiff(ctx context.Context, failing, healthy, rollout string) (NodeDiff, error) {
	q := url.Values{}
	if healthy != "" {
		q.Set("with", healthy)
	}
	if rollout != "" {
		q.Set("rollout", rollout)
	}
	path := "/v1/nodes/" + url.PathEscape(failing) + "/diff"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out NodeDiff
	err := c.do(ctx, http.MethodGet, path, 0, nil, &out)
	return out, err
}
