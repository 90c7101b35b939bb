package web

import (
	"net/http"

	"github.com/drover-dev/drover/internal/api"
)

// safetyData is the fleet safety page: the fleet disruption budgets with
// each domain's use and holders, and the fleet freezes with when they
// are in force.
type safetyData struct {
	Budgets []api.Budget
	Freezes []api.Freeze
	Full    int // budget domains at their limit
	Active  int // freezes in force now
}

// safety shows what bounds every rollout together. Budgets and freezes
// are changed with the CLI or the API (drover budget, drover freeze); the
// page reads them with the user's token like every other page.
func (d *dashboard) safety(r *http.Request, c *client) (string, *view, error) {
	var bl api.BudgetList
	if err := c.call(r.Context(), http.MethodGet, "/v1/budgets", nil, &bl); err != nil {
		return "", nil, err
	}
	var fl api.FreezeList
	if err := c.call(r.Context(), http.MethodGet, "/v1/freezes", nil, &fl); err != nil {
		return "", nil, err
	}
	data := safetyData{Budgets: bl.Budgets, Freezes: fl.Freezes}
	for _, b := range bl.Budgets {
		for _, dm := range b.Domains {
			if dm.InUse >= dm.Limit {
				data.Full++
			}
		}
	}
	for _, f := range fl.Freezes {
		if f.Active {
			data.Active++
		}
	}
	return "safety", &view{Title: "Fleet safety", Nav: "safety", Data: data}, nil
}
