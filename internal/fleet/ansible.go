package fleet

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Ansible inventories (INI and YAML) map onto nodes as follows.
//
//   - The inventory host name is the node ID. Host patterns with ranges
//     (web[01:03].example.com, db-[a:c], node[0:10:5]) are expanded; numeric
//     ranges keep the width of their zero-padded start.
//   - Variables become labels: group vars are inherited through
//     [group:children] / children:, a child group's vars override its
//     parent's, groups at the same depth apply in name order, host vars win.
//     Vars whose values are lists or maps (YAML) are skipped.
//   - Every group a host belongs to, directly or through children, adds the
//     label "group.NAME" = "true" (the implicit all and ungrouped groups do
//     not).
//   - Well-known vars set facts and are not kept as labels:
//     ansible_os_family or os_family → os.family (RedHat→rhel, Debian→debian,
//     Suse→suse, Windows→windows, Darwin→macos, others lower-cased; an
//     ansible_distribution of Ubuntu makes the family ubuntu);
//     ansible_distribution → os.name; ansible_distribution_version or
//     os_version → os.version; ansible_kernel → kernel; hardware_class →
//     hardware.class; ansible_architecture or arch → arch (x86_64→amd64,
//     aarch64→arm64). The ansible_-prefixed name wins when both are set.
//   - A host listed several times (in several groups) is one node whose
//     vars merge, the later line winning.

// ansibleInv collects groups and hosts in file order before flattening.
type ansibleInv struct {
	file   string
	groups map[string]*ansibleGroup
	hosts  []*ansibleHost // file order of first appearance
	byName map[string]*ansibleHost
}

type ansibleGroup struct {
	name     string
	line     int
	vars     map[string]string
	children []string
	parents  []string
	hosts    []*ansibleHost
}

type ansibleHost struct {
	name string
	line int
	vars map[string]string
}

func newAnsibleInv(file string) *ansibleInv {
	inv := &ansibleInv{file: file, groups: map[string]*ansibleGroup{}, byName: map[string]*ansibleHost{}}
	inv.group("all", 0)
	return inv
}

func (inv *ansibleInv) errf(line int, format string, args ...any) error {
	return &InventoryError{File: inv.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (inv *ansibleInv) group(name string, line int) *ansibleGroup {
	g, ok := inv.groups[name]
	if !ok {
		g = &ansibleGroup{name: name, line: line, vars: map[string]string{}}
		inv.groups[name] = g
	}
	return g
}

func (inv *ansibleInv) addChild(parent, child string, line int) error {
	if parent == child {
		return inv.errf(line, "group %q cannot be its own child", child)
	}
	p, c := inv.group(parent, line), inv.group(child, line)
	if !slices.Contains(p.children, child) {
		p.children = append(p.children, child)
		c.parents = append(c.parents, parent)
	}
	return nil
}

// addHosts expands pattern and adds each host to group with vars.
func (inv *ansibleInv) addHosts(group, pattern string, vars map[string]string, line int) error {
	names, err := expandHostPattern(pattern)
	if err != nil {
		return inv.errf(line, "host %q: %v", pattern, err)
	}
	g := inv.group(group, line)
	for _, name := range names {
		if err := ValidID(name); err != nil {
			return inv.errf(line, "host %q: %v", name, err)
		}
		h, ok := inv.byName[name]
		if !ok {
			h = &ansibleHost{name: name, line: line, vars: map[string]string{}}
			inv.byName[name] = h
			inv.hosts = append(inv.hosts, h)
		}
		for k, v := range vars {
			h.vars[k] = v
		}
		if !slices.Contains(g.hosts, h) {
			g.hosts = append(g.hosts, h)
		}
	}
	return nil
}

// nodes flattens groups into nodes, applying the precedence rules above.
func (inv *ansibleInv) nodes() ([]*Node, error) {
	depth := map[string]int{}
	if err := inv.depths("all", 0, depth, map[string]bool{}); err != nil {
		return nil, err
	}
	// Groups not reachable from all (INI groups are children of all
	// implicitly) sit at depth 1.
	for name := range inv.groups {
		if _, ok := depth[name]; !ok {
			if err := inv.depths(name, 1, depth, map[string]bool{}); err != nil {
				return nil, err
			}
		}
	}
	memberOf := map[*ansibleHost][]string{}
	for name, g := range inv.groups {
		for _, h := range g.hosts {
			memberOf[h] = append(memberOf[h], name)
		}
	}
	nodes := make([]*Node, 0, len(inv.hosts))
	for _, h := range inv.hosts {
		groups := map[string]bool{}
		for _, g := range memberOf[h] {
			inv.ancestors(g, groups)
		}
		order := make([]string, 0, len(groups))
		for g := range groups {
			order = append(order, g)
		}
		slices.SortFunc(order, func(a, b string) int {
			if depth[a] != depth[b] {
				return depth[a] - depth[b]
			}
			return strings.Compare(a, b)
		})
		vars := map[string]string{}
		for _, g := range order {
			for k, v := range inv.groups[g].vars {
				vars[k] = v
			}
		}
		for k, v := range h.vars {
			vars[k] = v
		}
		n := &Node{ID: h.name}
		applyAnsibleVars(n, vars)
		for _, g := range order {
			if g != "all" && g != "ungrouped" {
				n.Labels["group."+g] = "true"
			}
		}
		if len(n.Labels) == 0 {
			n.Labels = nil
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// depths assigns each group its longest distance from a root, rejecting
// cycles.
func (inv *ansibleInv) depths(name string, d int, depth map[string]int, onPath map[string]bool) error {
	if onPath[name] {
		return inv.errf(inv.groups[name].line, "group %q is its own ancestor", name)
	}
	if cur, ok := depth[name]; ok && cur >= d {
		return nil
	}
	depth[name] = d
	onPath[name] = true
	defer delete(onPath, name)
	for _, c := range inv.groups[name].children {
		if err := inv.depths(c, d+1, depth, onPath); err != nil {
			return err
		}
	}
	return nil
}

func (inv *ansibleInv) ancestors(name string, into map[string]bool) {
	if into[name] {
		return
	}
	into[name] = true
	for _, p := range inv.groups[name].parents {
		inv.ancestors(p, into)
	}
}

// applyAnsibleVars moves well-known vars into facts and the rest into labels.
func applyAnsibleVars(n *Node, vars map[string]string) {
	take := func(names ...string) string {
		v := ""
		for _, k := range names {
			if x, ok := vars[k]; ok {
				if v == "" {
					v = x
				}
				delete(vars, k)
			}
		}
		return v
	}
	family := normaliseFamily(take("ansible_os_family", "os_family"))
	dist := take("ansible_distribution")
	if strings.EqualFold(dist, "ubuntu") {
		family = "ubuntu"
	}
	n.Facts.OS = OS{Family: family, Name: dist, Version: take("ansible_distribution_version", "os_version")}
	n.Facts.Kernel = take("ansible_kernel")
	n.Facts.Hardware.Class = take("hardware_class")
	n.Facts.Arch = normaliseArch(take("ansible_architecture", "arch"))
	n.Labels = vars
}

func normaliseFamily(f string) string {
	switch l := strings.ToLower(strings.TrimSpace(f)); l {
	case "redhat", "red hat", "rhel":
		return "rhel"
	case "darwin", "macos", "macosx":
		return "macos"
	default:
		return l
	}
}

func normaliseArch(a string) string {
	switch l := strings.ToLower(strings.TrimSpace(a)); l {
	case "x86_64", "x64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	default:
		return l
	}
}

// parseAnsibleINI reads an Ansible INI inventory.
func parseAnsibleINI(name string, data []byte) ([]*Node, error) {
	inv := newAnsibleInv(name)
	section, kind := "ungrouped", "hosts"
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return nil, inv.errf(lineNo, "section header %q: missing ]", line)
			}
			head := strings.TrimSpace(line[1 : len(line)-1])
			g, suffix, _ := strings.Cut(head, ":")
			if g == "" || strings.ContainsAny(g, " \t[]") {
				return nil, inv.errf(lineNo, "invalid group name %q", g)
			}
			switch suffix {
			case "":
				kind = "hosts"
			case "vars", "children":
				kind = suffix
			default:
				return nil, inv.errf(lineNo, "section [%s]: unknown suffix %q (want :vars or :children)", head, suffix)
			}
			section = g
			inv.group(g, lineNo)
			if g != "all" && g != "ungrouped" {
				// INI groups hang under all unless a :children says otherwise;
				// an extra all parent changes neither labels nor depth order.
				if err := inv.addChild("all", g, lineNo); err != nil {
					return nil, err
				}
			}
			continue
		}
		switch kind {
		case "children":
			if strings.ContainsAny(line, " \t=") {
				return nil, inv.errf(lineNo, "[%s:children]: want one group name per line, got %q", section, line)
			}
			if err := inv.addChild(section, line, lineNo); err != nil {
				return nil, err
			}
		case "vars":
			k, v, ok := strings.Cut(line, "=")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				return nil, inv.errf(lineNo, "[%s:vars]: want key=value, got %q", section, line)
			}
			val, err := unquote(strings.TrimSpace(v))
			if err != nil {
				return nil, inv.errf(lineNo, "var %s: %v", k, err)
			}
			inv.groups[section].vars[k] = val
		default:
			fields, err := splitINIFields(line)
			if err != nil {
				return nil, inv.errf(lineNo, "%v", err)
			}
			host := fields[0]
			if strings.Contains(host, "=") {
				return nil, inv.errf(lineNo, "want a host name before variables, got %q", host)
			}
			vars := map[string]string{}
			if c := strings.LastIndexByte(host, ':'); c > strings.LastIndexByte(host, ']') && strings.Count(host, ":") == 1+strings.Count(host[:c], "[") {
				port := host[c+1:]
				if _, err := strconv.Atoi(port); err != nil {
					return nil, inv.errf(lineNo, "host %q: bad port %q", host, port)
				}
				host, vars["ansible_port"] = host[:c], port
			}
			for _, f := range fields[1:] {
				k, v, ok := strings.Cut(f, "=")
				if !ok || k == "" {
					return nil, inv.errf(lineNo, "host %s: want key=value, got %q", host, f)
				}
				vars[k] = v
			}
			if err := inv.addHosts(section, host, vars, lineNo); err != nil {
				return nil, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, inv.errf(lineNo+1, "read: %v", err)
	}
	return inv.nodes()
}

// splitINIFields splits a host line on whitespace, honouring single and
// double quotes (which are removed) so that key="a b" is one field.
func splitINIFields(line string) ([]string, error) {
	var fields []string
	var cur strings.Builder
	var quote rune
	inField := false
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inField = r, true
		case r == ' ' || r == '\t':
			if inField {
				fields = append(fields, cur.String())
				cur.Reset()
				inField = false
			}
		case r == '#' && !inField:
			quote = -1 // comment: stop
		default:
			cur.WriteRune(r)
			inField = true
		}
		if quote == -1 {
			break
		}
	}
	if quote > 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inField {
		fields = append(fields, cur.String())
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("empty host line")
	}
	return fields, nil
}

func unquote(v string) (string, error) {
	if len(v) >= 1 && (v[0] == '"' || v[0] == '\'') {
		if len(v) < 2 || v[len(v)-1] != v[0] {
			return "", fmt.Errorf("unterminated quote in %s", v)
		}
		return v[1 : len(v)-1], nil
	}
	return v, nil
}

// expandHostPattern expands Ansible ranges: [01:03], [a:c], [1:10:3].
// Several ranges in one pattern multiply.
func expandHostPattern(p string) ([]string, error) {
	i := strings.IndexByte(p, '[')
	if i < 0 {
		if strings.ContainsRune(p, ']') {
			return nil, fmt.Errorf("unmatched ]")
		}
		return []string{p}, nil
	}
	j := strings.IndexByte(p[i:], ']')
	if j < 0 {
		return nil, fmt.Errorf("unterminated range")
	}
	j += i
	parts := strings.Split(p[i+1:j], ":")
	if len(parts) < 2 || len(parts) > 3 {
		return nil, fmt.Errorf("range [%s]: want [START:END] or [START:END:STEP]", p[i+1:j])
	}
	step := 1
	if len(parts) == 3 {
		s, err := strconv.Atoi(parts[2])
		if err != nil || s < 1 {
			return nil, fmt.Errorf("range [%s]: bad step %q", p[i+1:j], parts[2])
		}
		step = s
	}
	var items []string
	lo, hi := parts[0], parts[1]
	if a, errA := strconv.Atoi(lo); errA == nil {
		b, errB := strconv.Atoi(hi)
		if errB != nil || b < a {
			return nil, fmt.Errorf("range [%s]: bad end %q", p[i+1:j], hi)
		}
		if b-a > 100_000 {
			return nil, fmt.Errorf("range [%s]: more than 100000 hosts", p[i+1:j])
		}
		width := 0
		if len(lo) > 1 && lo[0] == '0' {
			width = len(lo)
		}
		for k := a; k <= b; k += step {
			items = append(items, fmt.Sprintf("%0*d", width, k))
		}
	} else if len(lo) == 1 && len(hi) == 1 && lo[0] <= hi[0] && isLower(lo[0]) == isLower(hi[0]) && isAlpha(lo[0]) && isAlpha(hi[0]) {
		for c := lo[0]; c <= hi[0]; c += byte(step) {
			items = append(items, string(c))
			if int(c)+step > 255 {
				break
			}
		}
	} else {
		return nil, fmt.Errorf("range [%s]: want numbers or single letters", p[i+1:j])
	}
	rest, err := expandHostPattern(p[j+1:])
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(items)*len(rest))
	for _, it := range items {
		for _, r := range rest {
			out = append(out, p[:i]+it+r)
		}
	}
	return out, nil
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }

// parseAnsibleYAML reads an Ansible YAML inventory: top-level keys are
// groups (usually just all), each with optional hosts, vars and children.
func parseAnsibleYAML(name string, data []byte) ([]*Node, error) {
	inv := newAnsibleInv(name)
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(name, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, inv.errf(root.Line, "want a mapping of groups")
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		g := root.Content[i].Value
		if g != "all" {
			if err := inv.addChild("all", g, root.Content[i].Line); err != nil {
				return nil, err
			}
		}
		if err := inv.yamlGroup(g, root.Content[i], root.Content[i+1]); err != nil {
			return nil, err
		}
	}
	return inv.nodes()
}

func (inv *ansibleInv) yamlGroup(name string, key, body *yaml.Node) error {
	g := inv.group(name, key.Line)
	if isNull(body) {
		return nil
	}
	if body.Kind != yaml.MappingNode {
		return inv.errf(body.Line, "group %s: want a mapping with hosts, vars or children", name)
	}
	for i := 0; i+1 < len(body.Content); i += 2 {
		k, v := body.Content[i], body.Content[i+1]
		switch k.Value {
		case "hosts":
			if isNull(v) {
				continue
			}
			if v.Kind != yaml.MappingNode {
				return inv.errf(v.Line, "group %s: hosts must be a mapping of host names", name)
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				hk, hv := v.Content[j], v.Content[j+1]
				vars, err := inv.yamlVars(hv, "host "+hk.Value)
				if err != nil {
					return err
				}
				if err := inv.addHosts(name, hk.Value, vars, hk.Line); err != nil {
					return err
				}
			}
		case "vars":
			vars, err := inv.yamlVars(v, "group "+name+" vars")
			if err != nil {
				return err
			}
			for vk, vv := range vars {
				g.vars[vk] = vv
			}
		case "children":
			if isNull(v) {
				continue
			}
			if v.Kind != yaml.MappingNode {
				return inv.errf(v.Line, "group %s: children must be a mapping of groups", name)
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				c := v.Content[j].Value
				if err := inv.addChild(name, c, v.Content[j].Line); err != nil {
					return err
				}
				if err := inv.yamlGroup(c, v.Content[j], v.Content[j+1]); err != nil {
					return err
				}
			}
		default:
			return inv.errf(k.Line, "group %s: unknown key %q (want hosts, vars or children)", name, k.Value)
		}
	}
	return nil
}

// yamlVars reads a mapping of vars; scalars become strings, lists and maps
// are skipped (labels are strings).
func (inv *ansibleInv) yamlVars(n *yaml.Node, what string) (map[string]string, error) {
	vars := map[string]string{}
	if isNull(n) {
		return vars, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, inv.errf(n.Line, "%s: want a mapping of variables", what)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		if v.Kind == yaml.ScalarNode && !isNull(v) {
			vars[k.Value] = v.Value
		}
	}
	return vars, nil
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}
