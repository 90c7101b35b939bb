package api

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"time"
)

// Advisory is a security advisory of the catalog (GET /v1/advisories).
type Advisory struct {
	ID             string        `json:"id"`
	Aliases        []string      `json:"aliases"`
	Summary        string        `json:"summary,omitempty"`
	Severity       string        `json:"severity"` // unknown, none, low, medium, high, critical
	CVSSScore      float64       `json:"cvssScore,omitempty"`
	CVSSVector     string        `json:"cvssVector,omitempty"`
	Published      time.Time     `json:"published,omitzero"`
	Modified       time.Time     `json:"modified,omitzero"`
	Source         string        `json:"source"` // osv, csaf
	URL            string        `json:"url,omitempty"`
	RebootRequired bool          `json:"rebootRequired"`
	LivePatches    []string      `json:"livePatches"`
	Affected       []AdvisoryFix `json:"affected"`
}

// AdvisoryFix is the version that fixes a package on one ecosystem
// (debian:12, ubuntu:22.04, rhel:9, suse:15.5, windows:10.0.20348,
// macos:14). Fixed is empty when no fix is published.
type AdvisoryFix struct {
	Ecosystem string `json:"ecosystem"`
	Package   string `json:"package,omitempty"`
	Fixed     string `json:"fixed,omitempty"`
	KB        string `json:"kb,omitempty"`
	Product   string `json:"product,omitempty"`
}

// AdvisoryList is a page of advisories by ID; Next, when set, is the
// after= of the next page.
type AdvisoryList struct {
	Advisories []Advisory `json:"advisories"`
	Next       string     `json:"next,omitempty"`
}

// AdvisoryDocument is one document to import: its name (a file name or
// URL, named in errors) and its content, an OSV record, a CSAF 2.0
// document or a JSON array of either.
type AdvisoryDocument struct {
	Name    string          `json:"name"`
	Content json.RawMessage `json:"content"`
}

// AdvisoryImportRequest is POST /v1/advisories with several documents,
// imported all or nothing. The body may also be one document itself.
type AdvisoryImportRequest struct {
	Documents []AdvisoryDocument `json:"documents"`
}

// AdvisoryImportResult says what an import did.
type AdvisoryImportResult struct {
	Advisories int    `json:"advisories"` // in the documents
	Added      int    `json:"added"`
	Updated    int    `json:"updated"`
	Unchanged  int    `json:"unchanged"`
	Older      int    `json:"older"`  // the catalog holds a newer version
	SHA256     string `json:"sha256"` // of the documents' contents, in order
}

// ImportAdvisories imports documents, all or nothing.
func (c *Client) ImportAdvisories(ctx context.Context, docs []AdvisoryDocument) (AdvisoryImportResult, error) {
	var out AdvisoryImportResult
	err := c.do(ctx, "POST", "/v1/advisories", 0, AdvisoryImportRequest{Documents: docs}, &out)
	return out, err
}

// AdvisoryFilter filters ListAdvisories; zero values match all.
type AdvisoryFilter struct {
	ID, Ecosystem, Severity, After string
	Limit                          int
}

// ListAdvisories lists one page of advisories.
func (c *Client) ListAdvisories(ctx context.Context, f AdvisoryFilter) (AdvisoryList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"id": f.ID, "ecosystem": f.Ecosystem, "severity": f.Severity, "after": f.After} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	path := "/v1/advisories"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out AdvisoryList
	err := c.do(ctx, "GET", path, 0, nil, &out)
	return out, err
}

// GetAdvisory returns the advisory with ID or alias id (a CVE, a KB).
func (c *Client) GetAdvisory(ctx context.Context, id string) (Advisory, error) {
	var out Advisory
	err := c.do(ctx, "GET", "/v1/advisories/"+url.PathEscape(id), 0, nil, &out)
	return out, err
}

// ExposureReport is GET /v1/exposure: each node the selector chooses
// with its exposure to one advisory (advisory=ID) or to the whole
// catalog. Counts counts the nodes by status.
type ExposureReport struct {
	Advisory string         `json:"advisory,omitempty"`
	Counts   map[string]int `json:"counts"`
	Nodes    []NodeExposure `json:"nodes"`
}

// NodeExposure is one node's status: affected, fixed-not-running,
// live-patched, not-affected or unknown. Against the whole catalog,
// Status is the worst of Advisories (those not not-affected).
type NodeExposure struct {
	Node       string             `json:"node"`
	OS         string             `json:"os,omitempty"` // os.family and os.version: "debian 12"
	Status     string             `json:"status"`
	Reason     string             `json:"reason,omitempty"`
	Packages   []ExposedPackage   `json:"packages,omitempty"`
	Advisories []AdvisoryExposure `json:"advisories,omitempty"`
	// More counts the advisories left out of Advisories (at most
	// MaxNodeAdvisories are listed, worst first).
	More int `json:"more,omitempty"`
}

// MaxNodeAdvisories bounds the advisories listed per node in an
// exposure report against the whole catalog.
const MaxNodeAdvisories = 100

// ExposedPackage is an installed package against its fix.
type ExposedPackage struct {
	Package   string `json:"package"`
	Installed string `json:"installed"`
	Fixed     string `json:"fixed,omitempty"`
}

// AdvisoryExposure is a node's status for one advisory.
type AdvisoryExposure struct {
	Advisory string `json:"advisory"`
	Severity string `json:"severity"`
	Status   string `json:"status"`
	Reason   string `json:"reason"`
}

// Exposure reports exposure; advisory "" means the whole catalog,
// selector "" every node.
func (c *Client) Exposure(ctx context.Context, advisory, selector string) (ExposureReport, error) {
	q := url.Values{}
	if advisory != "" {
		q.Set("advisory", advisory)
	}
	if selector != "" {
		q.Set("selector", selector)
	}
	path := "/v1/exposure"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out ExposureReport
	err := c.do(ctx, "GET", path, 0, nil, &out)
	return out, err
}

// ExposureSummary is GET /v1/exposure/summary: the fleet's exposure over
// time, from the exposure history the server records each time it
// computes exposure (on every GET /v1/exposure and every
// ExposureSweepSeconds for the whole catalog).
type ExposureSummary struct {
	// At is when the summary was made.
	At time.Time `json:"at"`
	// Advisories: each advisory some node is exposed to, with the nodes
	// by status (affected, fixed-not-running, live-patched) and since
	// when the oldest has been.
	Advisories []AdvisoryExposureCount `json:"advisories"`
	// ExposedNodes: nodes exposed to at least one advisory.
	ExposedNodes int `json:"exposedNodes"`
	// Remediated: exposures closed (a node found not affected after it
	// was found exposed); MeanTimeToRemediateSeconds their mean length.
	Remediated                 int     `json:"remediated"`
	MeanTimeToRemediateSeconds float64 `json:"meanTimeToRemediateSeconds"`
	// OldestOpenCritical: the longest-open exposure to a critical
	// advisory; nil when none is open.
	OldestOpenCritical *OpenExposure `json:"oldestOpenCritical,omitempty"`
	// LivePatch: of the exposed nodes, those whose every exposure is
	// covered by a loaded live patch (protected without a reboot).
	LivePatchedNodes  int          `json:"livePatchedNodes"`
	LivePatchCoverage float64      `json:"livePatchCoverage"` // livePatchedNodes / exposedNodes; 0 with none exposed
	RebootDebt        []RebootDebt `json:"rebootDebt"`
	RebootDebtDays    float64      `json:"rebootDebtDays"` // summed over the nodes
	// Nodes: the exposed nodes, longest exposed first (at most 100).
	Nodes []NodeDaysExposed `json:"nodes"`
}

// AdvisoryExposureCount is one advisory's open exposures.
type AdvisoryExposureCount struct {
	Advisory string         `json:"advisory"`
	Severity string         `json:"severity"`
	Counts   map[string]int `json:"counts"`
	Since    time.Time      `json:"since"`
}

// OpenExposure is one node's open exposure to one advisory.
type OpenExposure struct {
	Advisory   string    `json:"advisory"`
	Severity   string    `json:"severity"`
	Node       string    `json:"node"`
	Status     string    `json:"status"`
	Since      time.Time `json:"since"`
	AgeSeconds float64   `json:"ageSeconds"`
}

// RebootDebt is a node that needs a reboot: its facts say so, or its
// running kernel is older than the newest installed.
type RebootDebt struct {
	Node      string    `json:"node"`
	Since     time.Time `json:"since"`
	Days      float64   `json:"days"`
	Running   string    `json:"running,omitempty"`
	Installed string    `json:"installed,omitempty"` // newer kernel installed, when that is the debt
}

// NodeDaysExposed is a node exposed since its oldest open exposure.
type NodeDaysExposed struct {
	Node       string    `json:"node"`
	Since      time.Time `json:"since"`
	Days       float64   `json:"days"`
	Advisories int       `json:"advisories"`
}

// ExposureSummary returns the exposure summary.
func (c *Client) ExposureSummary(ctx context.Context) (ExposureSummary, error) {
	var out ExposureSummary
	err := c.do(ctx, "GET", "/v1/exposure/summary", 0, nil, &out)
	return out, err
}
