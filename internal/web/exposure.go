package web

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/drover-dev/drover/internal/api"
)

// exposureData is the exposure page: the catalog with each advisory's
// open exposures by status, the history's figures, and with ?advisory=
// who is exposed to it, node by node.
type exposureData struct {
	Summary    api.ExposureSummary
	Advisories []exposureAdvisory
	Chosen     string              // the advisory picked ("" none)
	Report     *api.ExposureReport // exposure to Chosen
	Exposed    []api.NodeExposure  // of Report, the nodes not not-affected, worst first
	Fine       int                 // of Report, the nodes not affected
	MTTR       string
	Oldest     string // age of the oldest open critical exposure
	Coverage   string // live patch coverage, percent
	DebtDays   string
}

// exposureAdvisory is one advisory of the picker with its open counts.
type exposureAdvisory struct {
	api.Advisory
	Counts map[string]int
	Open   int
	Since  time.Time // the oldest open exposure
}

// exposure answers "who is exposed to X": the advisory picked is judged
// now (GET /v1/exposure?advisory=, which also records it in the
// history) before the summary is read.
func (d *dashboard) exposure(r *http.Request, c *client) (string, *view, error) {
	data := exposureData{Chosen: r.URL.Query().Get("advisory")}
	if data.Chosen != "" {
		var rep api.ExposureReport
		if err := c.call(r.Context(), http.MethodGet, "/v1/exposure?advisory="+url.QueryEscape(data.Chosen), nil, &rep); err != nil {
			return "", nil, err
		}
		data.Report, data.Chosen = &rep, rep.Advisory
		rank := map[string]int{"affected": 0, "fixed-not-running": 1, "live-patched": 2, "unknown": 3}
		for _, n := range rep.Nodes {
			if n.Status == "not-affected" {
				data.Fine++
				continue
			}
			data.Exposed = append(data.Exposed, n)
		}
		slices.SortStableFunc(data.Exposed, func(a, b api.NodeExposure) int { return rank[a.Status] - rank[b.Status] })
	}
	if err := c.call(r.Context(), http.MethodGet, "/v1/exposure/summary", nil, &data.Summary); err != nil {
		return "", nil, err
	}
	var list api.AdvisoryList
	if err := c.call(r.Context(), http.MethodGet, "/v1/advisories?limit=5000", nil, &list); err != nil {
		return "", nil, err
	}
	open := map[string]api.AdvisoryExposureCount{}
	for _, a := range data.Summary.Advisories {
		open[a.Advisory] = a
	}
	for _, a := range list.Advisories {
		ea := exposureAdvisory{Advisory: a, Counts: open[a.ID].Counts, Since: open[a.ID].Since}
		for _, n := range ea.Counts {
			ea.Open += n
		}
		data.Advisories = append(data.Advisories, ea)
	}
	// Most open exposures first, then the most severe.
	slices.SortStableFunc(data.Advisories, func(a, b exposureAdvisory) int { return b.Open - a.Open })
	s := data.Summary
	data.MTTR = "—"
	if s.Remediated > 0 {
		data.MTTR = span(s.MeanTimeToRemediateSeconds)
	}
	data.Oldest = "none"
	if s.OldestOpenCritical != nil {
		data.Oldest = span(s.OldestOpenCritical.AgeSeconds)
	}
	data.Coverage = fmt.Sprintf("%.0f%%", 100*s.LivePatchCoverage)
	data.DebtDays = fmt.Sprintf("%.1f", s.RebootDebtDays)
	title := "Exposure"
	if data.Chosen != "" {
		title = "Exposure to " + data.Chosen
	}
	return "exposure", &view{Title: title, Nav: "exposure", Data: data}, nil
}

// span formats seconds as days, hours or minutes.
func span(sec float64) string {
	switch {
	case sec >= 86400:
		return fmt.Sprintf("%.1f days", sec/86400)
	case sec >= 3600:
		return fmt.Sprintf("%.1f h", sec/3600)
	default:
		return fmt.Sprintf("%.0f min", sec/60)
	}
}
