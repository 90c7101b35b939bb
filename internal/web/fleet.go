package web

import (
	"cmp"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
)

// option is one choice of a <select>.
type option struct {
	Value, Label string
	Selected     bool
}

func options(cur string, pairs ...string) []option {
	var out []option
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, option{Value: pairs[i], Label: pairs[i+1], Selected: pairs[i] == cur})
	}
	return out
}

// dimensions the fleet can be grouped by, as topology keys.
func groupKey(n *fleet.Node, by string) string {
	switch by {
	case "zone":
		return orNone(n.Value("zone"))
	case "class":
		return orNone(n.Facts.Hardware.Class)
	case "tier":
		return orNone(n.Value("tier"))
	}
	return osName(n)
}

func osName(n *fleet.Node) string {
	return strings.TrimSpace(orNone(n.Facts.OS.Family) + " " + n.Facts.OS.Version)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// patchLevel is what the fleet page shows as a node's patch level: a
// package's version ("pkg:NAME"), the kernel, or the OS version.
func patchLevel(n *fleet.Node, level string) string {
	switch {
	case level == "kernel":
		return n.Facts.Kernel
	case strings.HasPrefix(level, "pkg:"):
		v, ok := n.Facts.Packages[strings.TrimPrefix(level, "pkg:")]
		if !ok {
			return "not installed"
		}
		return v
	}
	return strings.TrimSpace(n.Facts.OS.Name + " " + n.Facts.OS.Version)
}

type fleetData struct {
	Selector      string
	SelectorError string
	GroupBy       []option
	Level         []option
	LevelName     string
	Total         int
	Matching      int
	Online        int
	Offline       int
	Reboot        int
	Groups        []nodeGroup
	// Coverage of the imported inventories (drover nodes import); nil
	// when none was imported.
	Coverage *api.InventoryStatus
}

type nodeGroup struct {
	Name   string
	Online int
	Nodes  []nodeRow
}

type nodeRow struct {
	ID, OS, Zone, Class, Tier, Level string
	LastSeen                         time.Time
	Online, Reboot                   bool
}

func toFleet(n api.Node) *fleet.Node {
	return &fleet.Node{ID: n.ID, Facts: n.Facts, Labels: n.Labels}
}

// packageNames lists every package any node reports, sorted.
func packageNames(nodes []api.Node) []string {
	set := map[string]bool{}
	for _, n := range nodes {
		for p := range n.Facts.Packages {
			set[p] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

func (d *dashboard) fleet(r *http.Request, c *client) (string, *view, error) {
	q := r.URL.Query()
	sel := strings.TrimSpace(q.Get("selector"))
	by, level := q.Get("group"), q.Get("level")
	all, err := c.allNodes(r.Context(), "")
	if err != nil {
		return "", nil, err
	}
	data := fleetData{Selector: sel, Total: len(all),
		GroupBy: options(by, "os", "OS family and version", "zone", "Zone", "class", "Hardware class", "tier", "Tier")}
	lv := []string{"os", "OS version", "kernel", "Kernel"}
	for _, p := range packageNames(all) {
		lv = append(lv, "pkg:"+p, "Package "+p)
	}
	data.Level = options(level, lv...)
	data.LevelName = "OS version"
	for _, o := range data.Level {
		if o.Selected {
			data.LevelName = o.Label
		}
	}
	nodes := all
	if sel != "" {
		nodes, err = c.allNodes(r.Context(), sel)
		var ae *apiError
		if errors.As(err, &ae) && ae.status == http.StatusBadRequest {
			data.SelectorError, nodes = ae.body.Error, nil
		} else if err != nil {
			return "", nil, err
		}
	}
	data.Matching = len(nodes)
	var cov api.InventoryStatus
	if err := c.call(r.Context(), http.MethodGet, api.PathInventory, nil, &cov); err == nil && len(cov.Inventories) > 0 {
		data.Coverage = &cov
	}
	groups := map[string]*nodeGroup{}
	for _, an := range nodes {
		n := toFleet(an)
		row := nodeRow{ID: n.ID, OS: osName(n), Zone: n.Value("zone"), Class: n.Facts.Hardware.Class, Tier: n.Value("tier"),
			Level: patchLevel(n, level), LastSeen: an.LastSeen, Online: an.Online, Reboot: n.Facts.RebootRequired}
		if an.Online {
			data.Online++
		} else {
			data.Offline++
		}
		if row.Reboot {
			data.Reboot++
		}
		k := groupKey(n, by)
		g := groups[k]
		if g == nil {
			g = &nodeGroup{Name: k}
			groups[k] = g
		}
		g.Nodes = append(g.Nodes, row)
		if an.Online {
			g.Online++
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(groups), naturalLess) {
		data.Groups = append(data.Groups, *groups[k])
	}
	return "fleet", &view{Title: "Fleet", Nav: "fleet", Data: data}, nil
}

// naturalLess orders strings with their digit runs compared as numbers,
// so that "debian 9" < "debian 12" and "3.0.9" < "3.0.15".
func naturalLess(a, b string) int {
	for a != "" && b != "" {
		ra, rb := leadRun(a), leadRun(b)
		a, b = a[len(ra):], b[len(rb):]
		da, db := ra[0] >= '0' && ra[0] <= '9', rb[0] >= '0' && rb[0] <= '9'
		if da && db {
			na, _ := strconv.ParseUint(strings.TrimLeft(ra, "0")+"0", 10, 64)
			nb, _ := strconv.ParseUint(strings.TrimLeft(rb, "0")+"0", 10, 64)
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
			continue
		}
		if c := strings.Compare(ra, rb); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

// leadRun is the leading run of digits or of non-digits of a nonempty s.
func leadRun(s string) string {
	digit := unicode.IsDigit(rune(s[0]))
	for i := 1; i < len(s); i++ {
		if unicode.IsDigit(rune(s[i])) != digit {
			return s[:i]
		}
	}
	return s
}
