package demo

import (
	"context"
	"embed"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/drover-dev/drover/internal/api"
)

// demoAdvisories are simulated advisories in the vendors' formats (an
// OSV Debian DSA, an OSV Ubuntu USN, a Red Hat CSAF RHSA and a Microsoft
// CSAF), their IDs and fixed versions chosen for the demo fleet's
// packages so that the demo's openssl rollout remediates them.
//
//go:embed advisories/*.json
var demoAdvisories embed.FS

// ExposureSummary is the fleet's exposure to one of the demo's
// advisories before the rollouts and after them: nodes by status.
type ExposureSummary struct {
	Advisory string         `json:"advisory"`
	Severity string         `json:"severity"`
	Before   map[string]int `json:"before"`
	After    map[string]int `json:"after,omitempty"`
}

// importAdvisories imports the embedded advisories and returns their IDs.
func importAdvisories(ctx context.Context, c *api.Client) ([]string, error) {
	entries, err := demoAdvisories.ReadDir("advisories")
	if err != nil {
		return nil, err
	}
	var docs []api.AdvisoryDocument
	for _, e := range entries {
		b, err := demoAdvisories.ReadFile(path.Join("advisories", e.Name()))
		if err != nil {
			return nil, err
		}
		docs = append(docs, api.AdvisoryDocument{Name: e.Name(), Content: b})
	}
	if _, err := c.ImportAdvisories(ctx, docs); err != nil {
		return nil, fmt.Errorf("import the demo's advisories: %w", err)
	}
	l, err := c.ListAdvisories(ctx, api.AdvisoryFilter{})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, a := range l.Advisories {
		ids = append(ids, a.ID)
	}
	slices.Sort(ids)
	return ids, nil
}

// exposureCounts asks the server for each advisory's exposure.
func exposureCounts(ctx context.Context, c *api.Client, ids []string) ([]ExposureSummary, error) {
	var out []ExposureSummary
	for _, id := range ids {
		a, err := c.GetAdvisory(ctx, id)
		if err != nil {
			return nil, err
		}
		r, err := c.Exposure(ctx, id, "")
		if err != nil {
			return nil, fmt.Errorf("exposure to %s: %w", id, err)
		}
		out = append(out, ExposureSummary{Advisory: id, Severity: a.Severity, Before: r.Counts})
	}
	return out, nil
}

// printExposure prints one line an advisory: its nodes by status.
func printExposure(w io.Writer, es []ExposureSummary, after bool) {
	for _, e := range es {
		c := e.Before
		if after {
			c = e.After
		}
		var parts []string
		for _, s := range []string{"affected", "fixed-not-running", "live-patched", "unknown", "not-affected"} {
			if c[s] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", c[s], s))
			}
		}
		fmt.Fprintf(w, "  %-20s %-8s %s\n", e.Advisory, e.Severity, strings.Join(parts, ", "))
	}
}
