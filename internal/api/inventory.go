package api

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/drover-dev/drover/internal/fleet"
)

// Inventory paths.
const (
	PathInventory       = "/v1/inventory"
	PathInventoryTokens = "/v1/inventory/tokens"
)

// MaxInventoryBytes is the largest inventory file POST /v1/inventory
// accepts (the request's JSON may be somewhat larger).
const MaxInventoryBytes = 8 << 20

// InventoryImportRequest imports an inventory file (POST /v1/inventory):
// drover YAML/JSON, Ansible INI or Ansible YAML, detected from Source's
// extension and Content as `drover simulate` does. Its hosts replace the
// named inventory's expected nodes in one transaction. DryRun returns
// the diff without writing anything.
type InventoryImportRequest struct {
	Name    string `json:"name"`    // inventory name, e.g. "prod"; several may coexist
	Source  string `json:"source"`  // file name, for the format and for errors (FILE:LINE)
	Content string `json:"content"` // the file's text
	DryRun  bool   `json:"dryRun,omitempty"`
}

// InventoryDiff is what an import changes (or would change, for a dry
// run). Applied is false for a dry run and for an import that changes
// nothing.
type InventoryDiff struct {
	Inventory string       `json:"inventory"`
	Format    string       `json:"format"`
	Hosts     int          `json:"hosts"`
	New       bool         `json:"new,omitempty"`
	Added     []string     `json:"added"`
	Changed   []HostChange `json:"changed"`
	Removed   []string     `json:"removed"`
	Unchanged int          `json:"unchanged"`
	Applied   bool         `json:"applied"`
}

// HostChange is a host whose labels, groups or facts an import changes.
type HostChange struct {
	Host string `json:"host"`
	// Labels maps each changed label to [old, new] ("" when absent).
	Labels        map[string][2]string `json:"labels,omitempty"`
	GroupsAdded   []string             `json:"groupsAdded,omitempty"`
	GroupsRemoved []string             `json:"groupsRemoved,omitempty"`
	Facts         bool                 `json:"facts,omitempty"`
}

// Inventory is an imported inventory.
type Inventory struct {
	Name       string    `json:"name"`
	Source     string    `json:"source"`
	Format     string    `json:"format"`
	Hosts      int       `json:"hosts"`
	ImportedAt time.Time `json:"importedAt"`
	ImportedBy string    `json:"importedBy"`
}

// ExpectedNode is a host an inventory expects to run an agent.
type ExpectedNode struct {
	Inventory string            `json:"inventory"`
	Host      string            `json:"host"`
	Labels    map[string]string `json:"labels,omitempty"`
	Groups    []string          `json:"groups,omitempty"`
	Facts     fleet.Facts       `json:"facts"`
}

// InventoryStatus (GET /v1/inventory[?inventory=NAME]) lists the
// inventories and the agent coverage: expected hosts no agent registered
// as (Missing) and registered nodes no inventory names (Unexpected;
// listed only without ?inventory).
type InventoryStatus struct {
	Inventories []Inventory    `json:"inventories"`
	Expected    int            `json:"expected"`
	Registered  int            `json:"registered"`
	Covered     int            `json:"covered"`
	Missing     []ExpectedNode `json:"missing"`
	Unexpected  []string       `json:"unexpected"`
}

// EnrollTokensRequest (POST /v1/inventory/tokens, admin) creates one
// single-use enrolment token per expected host that has no agent yet,
// chosen by Inventory, Selector (CEL over the expected nodes, their
// groups as labels "group.NAME") or both. Each token is bound to its
// host's name and carries the host's inventory labels (ansible_*
// variables excluded), which the node gets when it registers.
type EnrollTokensRequest struct {
	Inventory string `json:"inventory,omitempty"`
	Selector  string `json:"selector,omitempty"`
	TTL       string `json:"ttl,omitempty"` // default 1h
}

// EnrollTokens is the enrolment material per host, keyed by host name.
// Skipped lists chosen hosts that are enrolled or registered already
// (they need no token).
type EnrollTokens struct {
	CAHash  string                     `json:"caHash"`
	Hosts   map[string]HostEnrollToken `json:"hosts"`
	Skipped []string                   `json:"skipped"`
}

// HostEnrollToken is one host's single-use enrolment token.
type HostEnrollToken struct {
	Token     string            `json:"token"`
	ExpiresAt time.Time         `json:"expiresAt"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// ImportInventory imports (or, with DryRun, diffs) an inventory.
func (c *Client) ImportInventory(ctx context.Context, req InventoryImportRequest) (InventoryDiff, error) {
	var out InventoryDiff
	err := c.do(ctx, http.MethodPost, PathInventory, 0, req, &out)
	return out, err
}

// InventoryStatus returns the inventories and the agent coverage, of one
// inventory when name is not "".
func (c *Client) InventoryStatus(ctx context.Context, name string) (InventoryStatus, error) {
	var out InventoryStatus
	path := PathInventory
	if name != "" {
		path += "?inventory=" + url.QueryEscape(name)
	}
	err := c.do(ctx, http.MethodGet, path, 0, nil, &out)
	return out, err
}

// CreateEnrollTokens creates the enrolment tokens of an inventory's hosts.
func (c *Client) CreateEnrollTokens(ctx context.Context, req EnrollTokensRequest) (EnrollTokens, error) {
	var out EnrollTokens
	err := c.do(ctx, http.MethodPost, PathInventoryTokens, 0, req, &out)
	return out, err
}
