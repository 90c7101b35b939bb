package fleet

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func byID(t *testing.T, nodes []*Node) map[string]*Node {
	t.Helper()
	m := map[string]*Node{}
	for _, n := range nodes {
		m[n.ID] = n
	}
	return m
}

func ids(nodes []*Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.ID)
	}
	return out
}

func TestDetectFormat(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"x.json", `{}`, FormatDrover},
		{"hosts.ini", `a`, FormatAnsibleINI},
		{"hosts", "[web]\nweb1\n", FormatAnsibleINI},
		{"hosts", "web1\nweb2 zone=a\n", FormatAnsibleINI},
		{"inv.yaml", "nodes: []\n", FormatDrover},
		{"inv.yml", "# c\nall:\n  hosts:\n    a:\n", FormatAnsibleYAML},
		{"inventory", "{\"nodes\": []}", FormatDrover},
		{"inventory", "---\nnodes:\n  - id: a\n", FormatDrover},
		{"inventory", "all:\n  hosts: {a: }\n", FormatAnsibleYAML},
	}
	for _, tt := range tests {
		if got := DetectFormat(tt.name, []byte(tt.data)); got != tt.want {
			t.Errorf("DetectFormat(%s, %q) = %s, want %s", tt.name, tt.data, got, tt.want)
		}
	}
}

func TestLoadDroverYAML(t *testing.T) {
	nodes, err := LoadInventoryFile("testdata/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(nodes); !slices.Equal(got, []string{"web-01", "db-01", "win-01", "k8s-node-1"}) {
		t.Fatalf("ids = %v", got)
	}
	web := nodes[0]
	if web.Facts.OS.Family != "debian" || web.Facts.Packages["openssl"] != "3.0.15-1~deb12u1" ||
		web.Labels["zone"] != "a" || !slices.Equal(web.Facts.Modules, []string{"overlay", "br_netfilter"}) ||
		web.Facts.Hardware.Class != "r650" || web.Facts.Services["nginx.service"] != "active" {
		t.Errorf("web-01 = %+v", web)
	}
	if db := nodes[1]; !db.Facts.RebootRequired || db.Facts.OS.Version != "9.4" || len(db.Facts.LivePatches) != 1 {
		t.Errorf("db-01 = %+v", db)
	}
	if k := nodes[3]; k.Facts.Kubelet != "1.30.4" || k.Facts.Runtime.Containerd != "1.7.22" || k.Labels != nil {
		t.Errorf("k8s-node-1 = %+v", k)
	}
	s, err := CompileSelector(`node.os.family in ["debian", "rhel"] && node.labels.zone == "a"`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Filter(nodes)
	if err != nil || !slices.Equal(ids(got), []string{"web-01"}) {
		t.Errorf("Filter = %v, %v", ids(got), err)
	}
}

func TestLoadDroverJSON(t *testing.T) {
	nodes, err := LoadInventoryFile("testdata/fleet.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0].Facts.OS.Family != "macos" || nodes[0].Facts.Arch != "arm64" ||
		nodes[1].Facts.BootID == "" || nodes[0].Labels["tier"] != "app" {
		t.Fatalf("nodes = %+v %+v", nodes[0], nodes[1])
	}
}

func TestLoadDroverErrors(t *testing.T) {
	tests := []struct {
		name, data string
		line       int
		msg        string
	}{
		{"a.yaml", "nodes:\n  - id: a\n    facts:\n      os: {famly: debian}\n", 4, "field famly not found in type OS"},
		{"a.yaml", "nodes:\n  - id: a\n    zone: b\n", 3, "field zone not found"},
		{"a.json", "{\"nodez\": []}\n", 1, "field nodez not found"},
		{"a.yaml", "nodes:\n  - id: a\n  - id: b\n  - id: a\n", 4, `duplicate node id "a" (first at line 2)`},
		{"a.yaml", "nodes:\n  - id: a\n  - labels: {zone: a}\n", 3, "node 2: empty node id"},
		{"a.yaml", "nodes:\n  - id: a b\n", 2, "contains whitespace"},
		{"a.yaml", "nodes:\n  - id: a\n\tlabels: {}\n", 2, "tab character"},
		{"a.yaml", "nodes:\n  - id: a\n    facts: {rebootRequired: maybe}\n", 3, "cannot unmarshal"},
		{"a.json", "{\n\t\"nodes\": [\n\t\t{\"id\": \"a\", \"zone\": 1}\n\t]\n}\n", 3, "field zone not found"},
		{"a.json", "{\n\"nodes\": [\n{\"id\": \"a\",}\n]}\n", 3, "invalid character"},
		{"a.json", "{\"nodes\": [{\"id\": \"a\"}, {\"id\": \"a\"}]}", 1, "duplicate node id"},
	}
	for _, tt := range tests {
		_, err := LoadInventory(tt.name, []byte(tt.data))
		var ie *InventoryError
		if !errors.As(err, &ie) {
			t.Errorf("%q: err = %v, want *InventoryError", tt.data, err)
			continue
		}
		if ie.Line != tt.line || !strings.Contains(ie.Msg, tt.msg) || ie.File != tt.name {
			t.Errorf("%q: err = %v, want %s:%d containing %q", tt.data, err, tt.name, tt.line, tt.msg)
		}
		if !strings.HasPrefix(err.Error(), tt.name+":") {
			t.Errorf("Error() = %q, want FILE:LINE prefix", err)
		}
	}
}

func TestLoadEmpty(t *testing.T) {
	for _, name := range []string{"a.yaml", "hosts"} {
		nodes, err := LoadInventory(name, []byte("# nothing\n"))
		if err != nil || len(nodes) != 0 {
			t.Errorf("%s: %v, %v", name, nodes, err)
		}
	}
}

func TestLoadAnsibleINI(t *testing.T) {
	nodes, err := LoadInventoryFile("testdata/hosts.ini")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bastion.example.com", "web01.example.com", "web02.example.com", "web03.example.com",
		"web04.example.com", "db1.example.com", "db2.example.com", "win-ada.corp.example.com", "win-adb.corp.example.com"}
	if got := ids(nodes); !slices.Equal(got, want) {
		t.Fatalf("ids = %v\nwant  %v", got, want)
	}
	m := byID(t, nodes)
	check := func(id string, facts Facts, labels map[string]string) {
		t.Helper()
		n := m[id]
		if !reflect.DeepEqual(n.Facts, facts) {
			t.Errorf("%s facts = %+v, want %+v", id, n.Facts, facts)
		}
		if !maps.Equal(n.Labels, labels) {
			t.Errorf("%s labels = %v, want %v", id, n.Labels, labels)
		}
	}
	check("bastion.example.com", Facts{OS: OS{Family: "debian"}}, map[string]string{"ansible_host": "203.0.113.10"})
	// web inherits web:vars over datacentre:vars (child beats parent).
	check("web02.example.com", Facts{OS: OS{Family: "ubuntu", Name: "Ubuntu", Version: "24.04"}, Hardware: Hardware{Class: "r650"}},
		map[string]string{"tier": "web", "zone": "a", "env": "prod", "group.web": "true", "group.datacentre": "true"})
	check("web04.example.com", Facts{OS: OS{Family: "ubuntu", Name: "Ubuntu", Version: "24.04"}, Hardware: Hardware{Class: "r750"}},
		map[string]string{"tier": "web", "zone": "b", "env": "prod", "ansible_port": "2222", "group.web": "true", "group.datacentre": "true"})
	check("db2.example.com", Facts{OS: OS{Family: "rhel", Version: "8.10"}, Arch: "amd64", Hardware: Hardware{Class: "r650"}},
		map[string]string{"tier": "db", "zone": "b", "env": "prod", "role": "primary replica", "group.db": "true", "group.datacentre": "true"})
	check("win-adb.corp.example.com", Facts{OS: OS{Family: "windows"}},
		map[string]string{"ansible_connection": "winrm", "group.win": "true"})

	s, err := CompileSelector(`node.labels["group.datacentre"] == "true" && node.os.family == "rhel"`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Filter(nodes)
	if !slices.Equal(ids(got), []string{"db1.example.com", "db2.example.com"}) {
		t.Errorf("Filter = %v", ids(got))
	}
}

func TestLoadAnsibleYAML(t *testing.T) {
	nodes, err := LoadInventoryFile("testdata/hosts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"jump.example.com", "mac-build1.example.com", "mac-build2.example.com", "sles01.example.com", "deb01.example.com"}
	if got := ids(nodes); !slices.Equal(got, want) {
		t.Fatalf("ids = %v", got)
	}
	m := byID(t, nodes)
	if n := m["jump.example.com"]; !maps.Equal(n.Labels, map[string]string{"env": "prod", "ansible_user": "deploy"}) {
		t.Errorf("jump labels = %v", n.Labels)
	}
	if n := m["mac-build2.example.com"]; n.Facts.OS.Family != "macos" || n.Facts.Arch != "arm64" || n.Labels["group.macs"] != "true" {
		t.Errorf("mac = %+v", n)
	}
	sles := m["sles01.example.com"]
	if sles.Facts.OS != (OS{Family: "suse", Version: "15.6"}) || sles.Facts.Hardware.Class != "gen2" ||
		!maps.Equal(sles.Labels, map[string]string{"env": "prod", "ansible_user": "deploy", "zone": "c", "tier": "app",
			"group.linux": "true", "group.suse": "true"}) {
		t.Errorf("sles = %+v", sles)
	}
	deb := m["deb01.example.com"]
	if deb.Facts.Arch != "arm64" || deb.Facts.Hardware.Class != "gen3" || deb.Labels["ntp_servers"] != "" || deb.Labels["group.debian"] != "true" {
		t.Errorf("deb = %+v", deb)
	}
}

func TestAnsibleErrors(t *testing.T) {
	tests := []struct {
		name, data string
		line       int
		msg        string
	}{
		{"hosts", "[web\nweb1\n", 1, "missing ]"},
		{"hosts", "[web:bogus]\n", 1, `unknown suffix "bogus"`},
		{"hosts", "[web]\nweb1 zone\n", 2, "want key=value"},
		{"hosts", "[web]\nweb[01:x].example.com\n", 2, "bad end"},
		{"hosts", "[web]\nweb[01:03.example.com\n", 2, "unterminated range"},
		{"hosts", "[web]\nweb1 role=\"a b\n", 2, "unterminated"},
		{"hosts", "\n\n[g:vars]\nnovalue\n", 4, "want key=value"},
		{"hosts", "[a:children]\nb\n[b:children]\na\n", 1, "its own ancestor"},
		{"hosts", "[a:children]\nb c\n", 2, "one group name per line"},
		{"hosts", "[web]\nweb1:ssh\n", 2, "bad port"},
		{"inv.yaml", "all:\n  hosts:\n    a:\n  childs:\n    b:\n", 4, `unknown key "childs"`},
		{"inv.yaml", "all:\n  hosts: [a, b]\n", 2, "hosts must be a mapping"},
		{"inv.yaml", "all:\n  hosts:\n    a: [x]\n", 3, "want a mapping of variables"},
		{"inv.yaml", "all:\n  hosts:\n    'bad host':\n", 3, "whitespace"},
	}
	for _, tt := range tests {
		_, err := LoadInventory(tt.name, []byte(tt.data))
		var ie *InventoryError
		if !errors.As(err, &ie) {
			t.Errorf("%q: err = %v, want *InventoryError", tt.data, err)
			continue
		}
		if ie.Line != tt.line || !strings.Contains(ie.Msg, tt.msg) {
			t.Errorf("%q: err = %v, want line %d containing %q", tt.data, err, tt.line, tt.msg)
		}
	}
}

func TestExpandHostPattern(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"web", []string{"web"}},
		{"web[1:3]", []string{"web1", "web2", "web3"}},
		{"web[08:10].x", []string{"web08.x", "web09.x", "web10.x"}},
		{"n[0:10:5]", []string{"n0", "n5", "n10"}},
		{"db-[a:c]", []string{"db-a", "db-b", "db-c"}},
		{"r[1:2]n[a:b]", []string{"r1na", "r1nb", "r2na", "r2nb"}},
	}
	for _, tt := range tests {
		got, err := expandHostPattern(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("expand(%s) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestNodeValue(t *testing.T) {
	n := testNode()
	for key, want := range map[string]string{
		"os.family": "debian", "os.version": "12", "hardware.class": "gen2", "arch": "amd64",
		"zone": "a", "labels.zone": "a", "tier": "web", "rack": "", "runtime.containerd": "1.7.20",
	} {
		if got := n.Value(key); got != want {
			t.Errorf("Value(%s) = %q, want %q", key, got, want)
		}
	}
	for _, k := range []string{"", "a b", " zone"} {
		if ValidKey(k) == nil {
			t.Errorf("ValidKey(%q) = nil", k)
		}
	}
	if err := ValidKey("labels.zone"); err != nil {
		t.Error(err)
	}
}

func TestAnsiblePrecedence(t *testing.T) {
	ini := `
[all:vars]
tier=any
owner=ops

[b]
h1 owner=alice

[a]
h1
h2

[a:vars]
tier=a
env=staging

[b:vars]
tier=b

[parent:children]
a

[parent:vars]
tier=parent
env=prod
`
	nodes, err := LoadInventory("hosts", []byte(ini))
	if err != nil {
		t.Fatal(err)
	}
	m := byID(t, nodes)
	// a sits deeper (all > parent > a) than b (all > b), so a's tier wins
	// as in Ansible; the host var wins owner.
	want := map[string]string{"tier": "a", "owner": "alice", "env": "staging", "group.a": "true", "group.b": "true", "group.parent": "true"}
	if !maps.Equal(m["h1"].Labels, want) {
		t.Errorf("h1 labels = %v, want %v", m["h1"].Labels, want)
	}
	// a is a child of parent, so a's vars beat parent's.
	want = map[string]string{"tier": "a", "owner": "ops", "env": "staging", "group.a": "true", "group.parent": "true"}
	if !maps.Equal(m["h2"].Labels, want) {
		t.Errorf("h2 labels = %v, want %v", m["h2"].Labels, want)
	}
	if len(nodes) != 2 || nodes[0].ID != "h1" {
		t.Errorf("nodes = %v", ids(nodes))
	}
}

func TestAnsibleSameDepthOrder(t *testing.T) {
	nodes, err := LoadInventory("hosts", []byte("[zeta]\nh\n[alpha]\nh\n[zeta:vars]\nv=z\n[alpha:vars]\nv=a\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := nodes[0].Labels["v"]; got != "z" {
		t.Errorf("v = %q, want z (same depth: later name wins)", got)
	}
}
