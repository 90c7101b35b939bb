package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/drover-dev/drover/internal/api"
)

type evidenceData struct {
	Node    string
	Rollout string
	Bundles []api.EvidenceSummary
	Shown   *api.EvidenceBundle
	Rows    []evidenceRow
}

// evidenceRow is one section of the bundle shown, its data as text.
type evidenceRow struct {
	Name, Took, Error, Text string
	Truncated               bool
}

// evidence is a node's evidence page: its bundles (of ?rollout=) and the
// newest one (or ?id=) section by section, truncated sections marked.
func (d *dashboard) evidence(r *http.Request, c *client) (string, *view, error) {
	node, rollout := r.PathValue("id"), r.URL.Query().Get("rollout")
	p := "/v1/nodes/" + url.PathEscape(node) + "/evidence"
	if rollout != "" {
		p += "?rollout=" + url.QueryEscape(rollout)
	}
	var list api.EvidenceList
	if err := c.call(r.Context(), http.MethodGet, p, nil, &list); err != nil {
		return "", nil, err
	}
	data := evidenceData{Node: node, Rollout: rollout, Bundles: list.Bundles}
	id := r.URL.Query().Get("id")
	if id == "" && len(list.Bundles) > 0 {
		id = list.Bundles[0].ID
	}
	if id != "" {
		var b api.EvidenceBundle
		if err := c.call(r.Context(), http.MethodGet, "/v1/evidence/"+url.PathEscape(id), nil, &b); err != nil {
			return "", nil, err
		}
		data.Shown = &b
		if b.Bundle != nil {
			for _, s := range b.Bundle.Sections {
				row := evidenceRow{Name: s.Name, Took: s.Took.String(), Error: s.Error, Truncated: s.Truncated}
				var text string
				if json.Unmarshal(s.Data, &text) != nil && len(s.Data) > 0 {
					var v any
					if json.Unmarshal(s.Data, &v) == nil {
						raw, _ := json.MarshalIndent(v, "", "  ")
						text = string(raw)
					}
				}
				row.Text = strings.TrimRight(text, "\n")
				data.Rows = append(data.Rows, row)
			}
		}
	}
	return "evidence", &view{Title: "Evidence of " + node, Nav: "rollouts", Data: data}, nil
}
