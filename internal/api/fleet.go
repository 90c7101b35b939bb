package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// BudgetRequest creates or replaces a fleet disruption budget (PUT
// replaces with If-Match: the budget's version). MaxUnavailable is a
// count ("2") or a percent ("25%") of the nodes Selector matches, per
// domain of the Per label when Per is set.
type BudgetRequest struct {
	Name           string `json:"name"`
	Selector       string `json:"selector,omitempty"`
	MaxUnavailable string `json:"maxUnavailable"`
	Per            string `json:"per,omitempty"`
}

// Budget is a fleet disruption budget with its use now: per domain, the
// nodes it covers, its limit and who holds slots in it.
type Budget struct {
	Name           string         `json:"name"`
	Selector       string         `json:"selector,omitempty"`
	MaxUnavailable string         `json:"maxUnavailable"`
	Per            string         `json:"per,omitempty"`
	Version        int64          `json:"version"`
	CreatedBy      string         `json:"createdBy"`
	CreatedAt      time.Time      `json:"createdAt"`
	UpdatedAt      time.Time      `json:"updatedAt"`
	Domains        []BudgetDomain `json:"domains"`
}

// BudgetDomain is one domain of a budget ("" when the budget has no Per):
// Nodes it covers, its Limit and the Holders of its slots now.
type BudgetDomain struct {
	Domain  string `json:"domain"`
	Nodes   int    `json:"nodes"`
	Limit   int    `json:"limit"`
	InUse   int    `json:"inUse"`
	Holders []Hold `json:"holders"`
}

// Hold is a node held by a rollout's in-flight step (kind "rollout",
// holder its ID, name its plan's name) or another slot holder.
type Hold struct {
	Node   string    `json:"node"`
	Kind   string    `json:"kind"`
	Holder string    `json:"holder"`
	Name   string    `json:"name,omitempty"`
	Since  time.Time `json:"since"`
}

// BudgetList lists budgets by name.
type BudgetList struct {
	Budgets []Budget `json:"budgets"`
}

// FreezeSpec is a fleet freeze as written: periods from Start to End
// (local wall-clock times "2006-01-02T15:04" or dates in TimeZone),
// repeated by Rule (an iCalendar RRULE, "" for once), except the
// occurrences starting at Except; applying to the nodes Selector matches
// ("" for all). Source names the file it was imported from.
type FreezeSpec struct {
	Name     string   `json:"name"`
	TimeZone string   `json:"timeZone"`
	Start    string   `json:"start"`
	End      string   `json:"end"`
	Rule     string   `json:"rule,omitempty"`
	Except   []string `json:"except,omitempty"`
	Selector string   `json:"selector,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Source   string   `json:"source,omitempty"`
}

// FreezesRequest creates freezes, all or none (an import).
type FreezesRequest struct {
	Freezes []FreezeSpec `json:"freezes"`
}

// Freeze is a fleet freeze with its state now: Active until Until, or
// next in force from NextStart to NextEnd (absent when never again).
type Freeze struct {
	FreezeSpec
	Version   int64      `json:"version"`
	CreatedBy string     `json:"createdBy"`
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt time.Time  `json:"updatedAt"`
	Active    bool       `json:"active"`
	Until     *time.Time `json:"until,omitempty"`
	NextStart *time.Time `json:"nextStart,omitempty"`
	NextEnd   *time.Time `json:"nextEnd,omitempty"`
}

// FreezeList lists freezes by name.
type FreezeList struct {
	Freezes []Freeze `json:"freezes"`
}

// Overlap is an active rollout whose target shares nodes with a plan's:
// how many, and the first few. A node changes under one rollout at a
// time, so the later rollout waits for those nodes (overlap: wait) or is
// refused (overlap: refuse).
type Overlap struct {
	Rollout string   `json:"rollout"`
	Name    string   `json:"name"`
	State   string   `json:"state"`
	Shared  int      `json:"shared"`
	Nodes   []string `json:"nodes"`
}

// ListBudgets lists the fleet disruption budgets with their use.
func (c *Client) ListBudgets(ctx context.Context) (BudgetList, error) {
	var out BudgetList
	err := c.do(ctx, http.MethodGet, "/v1/budgets", 0, nil, &out)
	return out, err
}

// GetBudget reads one budget with its use.
func (c *Client) GetBudget(ctx context.Context, name string) (Budget, error) {
	var out Budget
	err := c.do(ctx, http.MethodGet, "/v1/budgets/"+url.PathEscape(name), 0, nil, &out)
	return out, err
}

// CreateBudget creates a budget (operator or admin).
func (c *Client) CreateBudget(ctx context.Context, req BudgetRequest) (Budget, error) {
	var out Budget
	err := c.do(ctx, http.MethodPost, "/v1/budgets", 0, req, &out)
	return out, err
}

// UpdateBudget replaces a budget at version ifVersion (admin only).
func (c *Client) UpdateBudget(ctx context.Context, ifVersion int64, req BudgetRequest) (Budget, error) {
	var out Budget
	err := c.do(ctx, http.MethodPut, "/v1/budgets/"+url.PathEscape(req.Name), ifVersion, req, &out)
	return out, err
}

// DeleteBudget deletes a budget (admin only).
func (c *Client) DeleteBudget(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/budgets/"+url.PathEscape(name), 0, nil, nil)
}

// ListFreezes lists the fleet freezes with their state now.
func (c *Client) ListFreezes(ctx context.Context) (FreezeList, error) {
	var out FreezeList
	err := c.do(ctx, http.MethodGet, "/v1/freezes", 0, nil, &out)
	return out, err
}

// GetFreeze reads one freeze.
func (c *Client) GetFreeze(ctx context.Context, name string) (Freeze, error) {
	var out Freeze
	err := c.do(ctx, http.MethodGet, "/v1/freezes/"+url.PathEscape(name), 0, nil, &out)
	return out, err
}

// CreateFreezes creates freezes, all or none (operator or admin).
func (c *Client) CreateFreezes(ctx context.Context, fs []FreezeSpec) (FreezeList, error) {
	var out FreezeList
	err := c.do(ctx, http.MethodPost, "/v1/freezes", 0, FreezesRequest{Freezes: fs}, &out)
	return out, err
}

// DeleteFreeze deletes a freeze (admin only).
func (c *Client) DeleteFreeze(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/freezes/"+url.PathEscape(name), 0, nil, nil)
}

// ReleaseFleetLockRequest releases the FleetLock slot a node holds (a
// node that never came back from its reboot); Reason is required.
type ReleaseFleetLockRequest struct {
	Reason string `json:"reason"`
}

// ReleaseFleetLock releases node's FleetLock slot, whatever its group
// (admin only), and returns the hold released.
func (c *Client) ReleaseFleetLock(ctx context.Context, node, reason string) (Hold, error) {
	var out Hold
	err := c.do(ctx, http.MethodPost, "/v1/nodes/"+url.PathEscape(node)+"/fleetlock/release", 0, ReleaseFleetLockRequest{Reason: reason}, &out)
	return out, err
}
