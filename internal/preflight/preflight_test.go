package preflight

import (
	"slices"
	"strings"
	"testing"

	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/plan"
)

func parse(t *testing.T, text string) *plan.Plan {
	t.Helper()
	p, err := plan.Parse("p.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func assign(t *testing.T, p *plan.Plan, nodes []*fleet.Node) *engine.Assignment {
	t.Helper()
	a, err := engine.Assign(p, nodes, 1)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func node(id string, labels map[string]string, pol *fleet.AgentPolicy) *fleet.Node {
	return &fleet.Node{ID: id, Labels: labels, Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}, Agent: pol}}
}

func lines(es plan.Errors) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Error())
	}
	return out
}

const head = `apiVersion: drover.dev/v1
name: p
target:
  selector: node.labels.tier == "web"
change:
  actions:
    - serviceRestart:
        service: nginx
waves:
  - name: canary
    nodes: 1
  - name: rest
`

func TestWindows(t *testing.T) {
	nodes := []*fleet.Node{
		node("web-1", map[string]string{"tier": "web", "mw": "sat"}, nil),
		node("web-2", map[string]string{"tier": "web", "mw": "night"}, nil),
		node("web-3", map[string]string{"tier": "web"}, nil),                   // default window
		node("db-1", map[string]string{"tier": "db", "mw": "never-seen"}, nil), // not targeted
	}
	tests := []struct {
		name, windows string
		want          []string
	}{
		{name: "all defined", windows: `windows:
  label: mw
  default: sat
  definitions:
    sat: {timeZone: UTC, spans: [{days: [Sat], start: "00:00", duration: 24h}]}
    night: {timeZone: UTC, spans: [{days: [Mon], start: "01:00", duration: 4h}]}
`},
		{name: "label names an undefined window", windows: `windows:
  label: mw
  definitions:
    sat: {timeZone: UTC, spans: [{days: [Sat], start: "00:00", duration: 24h}]}
`, want: []string{`p.yaml:16:5: windows.definitions: window "night" is named by 1 node (web-2) (label mw) but not defined: they would never start; the plan defines "sat"`}},
		{name: "no definitions at all", windows: "windows:\n  label: mw\n",
			want: []string{
				`p.yaml:4:13: target.selector: window "night" is named by 1 node (web-2) (label mw) but not defined: they would never start; the plan defines no window`,
				`p.yaml:4:13: target.selector: window "sat" is named by 1 node (web-1) (label mw) but not defined: they would never start; the plan defines no window`,
			}},
		{name: "default label", windows: "", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := parse(t, head+tt.windows)
			got := lines(Windows(p, Targets(assign(t, p, nodes))))
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestGates(t *testing.T) {
	nodes := []*fleet.Node{
		node("web-1", map[string]string{"tier": "web", "pod": "a"}, nil),
		node("web-2", map[string]string{"tier": "web"}, nil),
	}
	gates := `gates:
  wave:
    - name: errors
      mode: threshold
      max: 1
      query: %s
      blockingAlerts: [%s]
`
	mk := func(q, alerts string) *plan.Plan {
		return parse(t, head+strings.Replace(strings.Replace(gates, "%s", q, 1), "%s", alerts, 1))
	}
	good := `'sum(up{instance=~"{{ .Nodes | regex }}"})'`
	tests := []struct {
		name string
		p    *plan.Plan
		m    Metrics
		want string
	}{
		{name: "good, metrics unknown", p: mk(good, ""), m: Metrics{}},
		{name: "good, metrics configured", p: mk(good, `'severity="page"'`), m: Metrics{Known: true, Configured: true}},
		{name: "no metrics source", p: mk(good, ""), m: Metrics{Known: true},
			want: "p.yaml:15:7: gates.wave[0]: wave gate errors needs a metrics source and this server has none"},
		{name: "does not parse", p: mk(`'sum(up'`, ""),
			want: "p.yaml:18:14: gates.wave[0].query: wave gate errors over the nodes of wave canary: query (canary side) does not parse as PromQL"},
		// web-2 lacks the label: whichever wave it is in is named.
		{name: "a wave's node lacks a label", p: mk(`'up{pod=~"{{ .Nodes | label "pod" | regex }}"}'`, ""),
			want: `node web-2 has no label "pod"`},
		{name: "bad alert matcher", p: mk(good, `'severity="page"} or vector(1) or up{a="b"'`),
			want: "p.yaml:19:23: gates.wave[0].blockingAlerts: wave gate errors over the nodes of wave canary: blocking alert matcher"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := Gates(tt.p, assign(t, tt.p, nodes), tt.m)
			switch {
			case tt.want == "" && len(es) > 0:
				t.Fatalf("unexpected: %v", es)
			case tt.want != "" && (len(es) != 1 || !strings.Contains(es[0].Error(), tt.want)):
				t.Fatalf("got %q, want one problem with %q", lines(es), tt.want)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	std := []string{"package", "kernel", "livepatch", "service-restart", "container-runtime", "kubernetes-node"}
	nodes := []*fleet.Node{
		node("web-1", map[string]string{"tier": "web"}, &fleet.AgentPolicy{Accepts: std}),
		node("web-2", map[string]string{"tier": "web"}, &fleet.AgentPolicy{Accepts: append(std, "script"), CommandProbes: true, Artifacts: true}),
		node("web-3", map[string]string{"tier": "web"}, &fleet.AgentPolicy{Accepts: append(std, "script")}),
		node("web-4", map[string]string{"tier": "web"}, nil), // protocol 1
	}
	p := parse(t, `apiVersion: drover.dev/v1
name: p
target:
  selector: node.labels.tier == "web"
change:
  actions:
    - serviceRestart: {service: nginx}
    - script: {artifact: fix-ntp}
    - livepatch: {id: kpatch-1, artifact: kpatch-1.ko}
waves:
  - name: all
gates:
  node:
    probes:
      - kind: command
        command: [/usr/local/bin/check]
      - kind: command
        artifact: check-db
      - kind: http
        url: http://localhost/healthz
`)
	got := Refusals(p, Targets(assign(t, p, nodes)))
	var text []string
	for _, r := range got {
		text = append(text, r.Path+" "+strings.Join(r.Nodes, ",")+": "+r.Reason)
	}
	want := []string{
		"change.actions[1] web-1: action kind script is not in the agent's --accept list (package,kernel,livepatch,service-restart,container-runtime,kubernetes-node)",
		"change.actions[1] web-3: script runs signed artifact fix-ntp and the agent verifies none (--artifact-root)",
		"change.actions[2] web-1,web-3: livepatch runs signed artifact kpatch-1.ko and the agent verifies none (--artifact-root)",
		"gates.node.probes[0] web-1,web-3: command probe /usr/local/bin/check: the agent does not allow command probes (--allow-command-probes)",
		"gates.node.probes[0] web-4: command probe: the agent is older than protocol 2 and does not ask its node's consent to run commands; upgrade it",
		"gates.node.probes[1] web-1,web-3: command probe runs signed artifact check-db and the agent verifies none (--artifact-root)",
		"gates.node.probes[1] web-4: command probe: the agent is older than protocol 2 and does not ask its node's consent to run commands; upgrade it",
	}
	if strings.Join(text, "\n") != strings.Join(want, "\n") {
		t.Fatalf("refusals:\n%s\nwant:\n%s", strings.Join(text, "\n"), strings.Join(want, "\n"))
	}
	if b := Blocking(p, got); len(b) != len(got) {
		t.Errorf("refuse-creation (the default): %d of %d refusals block", len(b), len(got))
	}
	p.Target.OnRefusal = plan.RefusalFailNode
	b := Blocking(p, got)
	if len(b) != 2 || b[0].Nodes[0] != "web-4" || b[1].Nodes[0] != "web-4" {
		t.Errorf("fail-node: blocking %+v; want only the protocol 1 node's command probes", b)
	}
	e := b[0].Error(p)
	if e.Line != 15 || !strings.Contains(e.Msg, "target.onRefusal cannot override this") {
		t.Errorf("error %v", e)
	}
}

// TestHostCheckRefusals: a Linux host check in a plan that targets a
// Windows node is named before the rollout, for that node only.
func TestHostCheckRefusals(t *testing.T) {
	std := []string{"package"}
	lin := node("web-1", map[string]string{"tier": "web"}, &fleet.AgentPolicy{Accepts: std})
	win := node("web-2", map[string]string{"tier": "web"}, &fleet.AgentPolicy{Accepts: std})
	win.Facts.OS.Family = "windows"
	p := parse(t, `apiVersion: drover.dev/v1
name: p
target:
  selector: node.labels.tier == "web"
change:
  actions:
    - package: {packages: [{name: openssl, version: 3.0.16}]}
waves:
  - name: all
gates:
  node:
    probes:
      - kind: dns
        lookup: db.internal.example
      - kind: mounts
`)
	got := Refusals(p, Targets(assign(t, p, []*fleet.Node{lin, win})))
	if len(got) != 1 || got[0].Path != "gates.node.probes[1]" || !slices.Equal(got[0].Nodes, []string{"web-2"}) ||
		got[0].Reason != "mounts probes are not supported on windows (they read Linux interfaces)" {
		t.Errorf("refusals %+v", got)
	}
}

func TestCommands(t *testing.T) {
	p := parse(t, `apiVersion: drover.dev/v1
name: p
target:
  selector: node.labels.tier == "web"
change:
  actions:
    - package:
        packages: [{name: openssl, version: 3.0.16}]
        families: {rhel: [{name: openssl-libs, version: 3.0.7}]}
    - script: {artifact: fix-ntp, args: ["--force", "a b"], rollback: unfix-ntp}
    - livepatch: {id: kpatch-1, artifact: kpatch-1.ko}
  reboot: always
waves:
  - name: all
gates:
  node:
    probes:
      - kind: command
        command: [/bin/sh, -c, "id > /tmp/x"]
      - kind: command
        artifact: check-db
        args: [--quick]
      - kind: systemd
        unit: nginx.service
`)
	digests := map[string]string{"fix-ntp": "aa11", "check-db": "bb22"}
	got := Commands(p, func(n string) string { return digests[n] })
	want := []string{
		"change.actions[0]: package upgrade openssl=3.0.16 rhel:openssl-libs=3.0.7",
		`change.actions[1]: script fix-ntp (sha256:aa11) "--force" "a b"; rollback unfix-ntp (digest unknown to this server)`,
		"change.actions[2]: livepatch kpatch-1 from artifact kpatch-1.ko (digest unknown to this server)",
		"change.reboot: reboot always",
		`gates.node.probes[0]: command probe runs "/bin/sh" "-c" "id > /tmp/x"`,
		`gates.node.probes[1]: command probe runs artifact check-db (sha256:bb22) "--quick"`,
		`gates.node.probes[2]: systemd probe: systemctl is-active "nginx.service"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestActionKind(t *testing.T) {
	if k := (plan.Action{Script: &plan.ScriptAction{}}).Kind(); k != plan.ActionScript {
		t.Errorf("script: %q", k)
	}
	if k := (plan.Action{}).Kind(); k != "" {
		t.Errorf("none: %q", k)
	}
	if k := (plan.Action{Kernel: &plan.KernelAction{}, LivePatch: &plan.LivePatchAction{}}).Kind(); k != "" {
		t.Errorf("two kinds: %q", k)
	}
}
