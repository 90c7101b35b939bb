package web

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/drover-dev/drover/internal/api"
)

// coverageData answers "who has package P at version V": as a share of
// the fleet, by cohort, node by node, plus the reboot debt.
type coverageData struct {
	Packages []option
	Targets  []option
	Package  string
	Target   string
	Total    int
	At       int // nodes with Target
	Other    int // nodes with another version
	Missing  int // nodes without the package
	Bar      []segment
	Cohorts  []cohortTable
	Versions []versionNodes
	Reboot   []nodeRow
}

// segment is one part of a stacked share bar, in SVG user units of a
// 1000-wide bar.
type segment struct {
	Label string
	Class string
	Count int
	X, W  float64
	Pct   string
}

type cohortTable struct {
	Name string // the dimension: "OS family", "Zone", ...
	Rows []cohortRow
}

type cohortRow struct {
	Cohort                   string
	Nodes, At, Other, Absent int
	Pct                      string
	W                        float64 // share at target, of a 100-wide bar
}

type versionNodes struct {
	Version string
	Class   string
	Nodes   []string
}

func pct(n, of int) string {
	if of == 0 {
		return "0%"
	}
	return strconv.FormatFloat(100*float64(n)/float64(of), 'f', 0, 64) + "%"
}

func (d *dashboard) coverage(r *http.Request, c *client) (string, *view, error) {
	nodes, err := c.allNodes(r.Context(), "")
	if err != nil {
		return "", nil, err
	}
	q := r.URL.Query()
	names := packageNames(nodes)
	data := coverageData{Package: q.Get("package"), Target: q.Get("version"), Total: len(nodes)}
	if !slices.Contains(names, data.Package) {
		data.Package = ""
		if len(names) > 0 {
			data.Package = names[0]
			if slices.Contains(names, "openssl") {
				data.Package = "openssl"
			}
		}
	}
	for _, p := range names {
		data.Packages = append(data.Packages, option{Value: p, Label: p, Selected: p == data.Package})
	}
	byVersion := map[string][]string{}
	for _, n := range nodes {
		v, ok := n.Facts.Packages[data.Package]
		if !ok {
			v = ""
		}
		byVersion[v] = append(byVersion[v], n.ID)
	}
	versions := slices.SortedFunc(maps.Keys(byVersion), naturalLess)
	versions = slices.DeleteFunc(versions, func(v string) bool { return v == "" })
	if !slices.Contains(versions, data.Target) {
		data.Target = ""
		if len(versions) > 0 {
			data.Target = versions[len(versions)-1] // the newest seen
		}
	}
	for i := len(versions) - 1; i >= 0; i-- {
		v := versions[i]
		data.Targets = append(data.Targets, option{Value: v, Label: v, Selected: v == data.Target})
	}
	data.At = len(byVersion[data.Target])
	data.Missing = len(byVersion[""])
	data.Other = data.Total - data.At - data.Missing
	x := 0.0
	add := func(label, class string, n int) {
		if n == 0 || data.Total == 0 {
			return
		}
		w := 1000 * float64(n) / float64(data.Total)
		data.Bar = append(data.Bar, segment{Label: label, Class: class, Count: n, X: x, W: w, Pct: pct(n, data.Total)})
		x += w
	}
	add("at "+data.Target, "cov-at", data.At)
	add("other versions", "cov-other", data.Other)
	add("not installed", "cov-missing", data.Missing)
	for i := len(versions) - 1; i >= 0; i-- {
		v := versions[i]
		class := "cov-other"
		if v == data.Target {
			class = "cov-at"
		}
		data.Versions = append(data.Versions, versionNodes{Version: v, Class: class, Nodes: byVersion[v]})
	}
	if ids := byVersion[""]; len(ids) > 0 {
		data.Versions = append(data.Versions, versionNodes{Version: "not installed", Class: "cov-missing", Nodes: ids})
	}
	for _, dim := range []struct{ name, by string }{{"OS family", "family"}, {"Zone", "zone"}, {"Hardware class", "class"}} {
		rows := map[string]*cohortRow{}
		for _, an := range nodes {
			n := toFleet(an)
			var k string
			switch dim.by {
			case "family":
				k = orNone(n.Facts.OS.Family)
			default:
				k = groupKey(n, dim.by)
			}
			row := rows[k]
			if row == nil {
				row = &cohortRow{Cohort: k}
				rows[k] = row
			}
			row.Nodes++
			switch v, ok := n.Facts.Packages[data.Package]; {
			case !ok:
				row.Absent++
			case v == data.Target:
				row.At++
			default:
				row.Other++
			}
		}
		t := cohortTable{Name: dim.name}
		for _, k := range slices.SortedFunc(maps.Keys(rows), naturalLess) {
			row := rows[k]
			row.Pct = pct(row.At, row.Nodes)
			row.W = 100 * float64(row.At) / float64(row.Nodes)
			t.Rows = append(t.Rows, *row)
		}
		data.Cohorts = append(data.Cohorts, t)
	}
	for _, an := range nodes {
		if an.Facts.RebootRequired {
			n := toFleet(an)
			data.Reboot = append(data.Reboot, nodeRow{ID: n.ID, OS: osName(n), Zone: n.Value("zone"), Class: n.Facts.Hardware.Class,
				LastSeen: an.LastSeen, Online: an.Online, Reboot: true})
		}
	}
	return "coverage", &view{Title: "Coverage", Nav: "coverage", Data: data}, nil
}

type auditData struct {
	Verify   api.AuditVerification
	Rollout  string
	Entries  []event
	Earlier  string // link to the previous page, "" on the first
	Later    string // link to the next page, "" on the last
	First    int64
	PageSize int
}

const auditPage = 50

func (d *dashboard) audit(r *http.Request, c *client) (string, *view, error) {
	q := r.URL.Query()
	data := auditData{Rollout: q.Get("rollout"), PageSize: auditPage}
	if err := c.call(r.Context(), http.MethodGet, "/v1/audit/verify", nil, &data.Verify); err != nil {
		return "", nil, err
	}
	after := int64(-1)
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil && n >= 0 {
			after = n
		}
	}
	if after < 0 { // the latest page
		after = 0
		if data.Rollout == "" {
			after = max(0, data.Verify.Entries-auditPage)
		}
	}
	qs := url.Values{"after": {strconv.FormatInt(after, 10)}, "limit": {strconv.Itoa(auditPage)}}
	if data.Rollout != "" {
		qs.Set("rollout", data.Rollout)
	}
	var list api.AuditList
	if err := c.call(r.Context(), http.MethodGet, "/v1/audit?"+qs.Encode(), nil, &list); err != nil {
		return "", nil, err
	}
	for _, e := range list.Entries {
		data.Entries = append(data.Entries, event{AuditEntry: e, Summary: summarize(e)})
	}
	link := func(after int64) string {
		v := url.Values{"after": {strconv.FormatInt(after, 10)}}
		if data.Rollout != "" {
			v.Set("rollout", data.Rollout)
		}
		return "/ui/audit?" + v.Encode()
	}
	if after > 0 && data.Rollout == "" {
		data.Earlier = link(max(0, after-auditPage))
	}
	if list.Next > 0 {
		data.Later = link(list.Next)
	}
	data.First = after + 1
	return "audit", &view{Title: "Audit", Nav: "audit", Data: data}, nil
}
