package fleet

import (
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func TestParseMix(t *testing.T) {
	mix, err := ParseMix("debian:40, rhel:30,windows:20,macos:10")
	if err != nil {
		t.Fatal(err)
	}
	want := []Share{{"debian", 40}, {"rhel", 30}, {"windows", 20}, {"macos", 10}}
	if !reflect.DeepEqual(mix, want) {
		t.Errorf("ParseMix = %v", mix)
	}
	for _, bad := range []string{"", "debian", "debian:x", "debian:-1", "plan9:3", "debian:1,debian:2", "debian:0"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) = nil error", bad)
		}
	}
}

func TestGenerateDeterministicAndProportional(t *testing.T) {
	mix, _ := ParseMix("debian:40,rhel:30,windows:20,macos:10")
	spec := GenSpec{N: 1000, Mix: mix, Zones: 3, HardwareClasses: 4}
	a, err := Generate(spec, 99)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate(spec, 99)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different fleets")
	}
	c, _ := Generate(spec, 100)
	if reflect.DeepEqual(a, c) {
		t.Fatal("different seeds, same fleet")
	}
	fam, zone, tier, class := map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	ids := map[string]bool{}
	for _, n := range a {
		fam[n.Facts.OS.Family]++
		zone[n.Labels["zone"]]++
		tier[n.Labels["tier"]]++
		class[n.Facts.Hardware.Class]++
		if ids[n.ID] {
			t.Fatalf("duplicate id %s", n.ID)
		}
		ids[n.ID] = true
		if n.Labels["env"] != "prod" || n.Facts.Kernel == "" || n.Facts.OS.Version == "" || len(n.Facts.BootID) != 36 {
			t.Fatalf("incomplete node %+v", n)
		}
	}
	if !reflect.DeepEqual(fam, map[string]int{"debian": 400, "rhel": 300, "windows": 200, "macos": 100}) {
		t.Errorf("families = %v", fam)
	}
	if !reflect.DeepEqual(tier, map[string]int{"web": 600, "app": 300, "db": 100}) {
		t.Errorf("tiers = %v", tier)
	}
	if len(zone) != 3 || zone["a"] != 334 || zone["c"] != 333 {
		t.Errorf("zones = %v", zone)
	}
	if len(class) != 4 {
		t.Errorf("classes = %v", class)
	}
	if a[0].ID != "debian-0001" || a[999].ID != "macos-0100" {
		t.Errorf("ids %s … %s", a[0].ID, a[999].ID)
	}
	for _, n := range a {
		switch n.Facts.OS.Family {
		case "debian":
			if !strings.HasPrefix(n.Facts.Kernel, "5.10.0-") && !strings.HasPrefix(n.Facts.Kernel, "6.1.0-") {
				t.Errorf("debian kernel %s", n.Facts.Kernel)
			}
		case "windows":
			if !strings.HasPrefix(n.Facts.Kernel, "10.0.") {
				t.Errorf("windows kernel %s", n.Facts.Kernel)
			}
		}
	}
}

func TestGenerateApportionRemainders(t *testing.T) {
	nodes, err := Generate(GenSpec{N: 10, Mix: []Share{{"debian", 1}, {"ubuntu", 1}, {"suse", 1}}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, n := range nodes {
		count[n.Facts.OS.Family]++
	}
	if !reflect.DeepEqual(count, map[string]int{"debian": 4, "ubuntu": 3, "suse": 3}) {
		t.Errorf("counts = %v", count)
	}
	if nodes[0].ID != "debian-01" {
		t.Errorf("width: %s", nodes[0].ID)
	}
	for _, bad := range []GenSpec{{N: -1, Mix: []Share{{"debian", 1}}}, {N: 1}, {N: 1, Mix: []Share{{"beos", 1}}}, {N: 1, Mix: []Share{{"debian", 1}}, Zones: 27}} {
		if _, err := Generate(bad, 1); err == nil {
			t.Errorf("Generate(%+v) = nil error", bad)
		}
	}
}

// TestGenerateMemory reports heap bytes per node for a 100,000-node fleet.
func TestGenerateMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a large fleet")
	}
	mix, _ := ParseMix("debian:40,rhel:30,windows:20,macos:10")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	nodes, err := Generate(GenSpec{N: 100_000, Mix: mix, Zones: 3, HardwareClasses: 3}, 1)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / float64(len(nodes))
	t.Logf("Generate: %.0f bytes per node at 100,000 nodes (sizeof Node %d)", per, reflect.TypeFor[Node]().Size())
	if per > 2000 {
		t.Errorf("%.0f bytes per node, want < 2000", per)
	}
	runtime.KeepAlive(nodes)
}

func BenchmarkGenerate100k(b *testing.B) {
	mix, _ := ParseMix("debian:40,rhel:30,windows:20,macos:10")
	for b.Loop() {
		if _, err := Generate(GenSpec{N: 100_000, Mix: mix, Zones: 3, HardwareClasses: 3}, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// Generated facts are written as the agent's collectors report them
// (internal/agent/facts), so that a plan written against real nodes
// selects generated ones: Windows os.version and kernel are
// Win32_OperatingSystem.Version (10.0.20348), macOS os.version is
// sw_vers's ProductVersion (14.6.1), the kubelet version is `kubelet
// --version`'s (v1.30.4); Kubernetes workers are labelled
// role=kubernetes-node.
func TestGenerateFactsAsCollectorsReport(t *testing.T) {
	mix, err := ParseMix(DefaultMix)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := Generate(GenSpec{N: 400, Mix: mix, Zones: 3, HardwareClasses: 3}, 1)
	if err != nil {
		t.Fatal(err)
	}
	windows := regexp.MustCompile(`^10\.0\.\d{5}$`)
	macos := regexp.MustCompile(`^\d{2}\.\d+(\.\d+)?$`)
	kubelet := regexp.MustCompile(`^v1\.\d+\.\d+$`)
	seen := map[string]bool{}
	for _, n := range nodes {
		f := n.Facts
		seen[f.OS.Family] = true
		switch f.OS.Family {
		case "windows":
			if !windows.MatchString(f.OS.Version) || !strings.HasPrefix(f.Kernel, f.OS.Version+".") || strings.Count(f.Kernel, ".") != 3 {
				t.Errorf("%s: os.version %q kernel %q, want the collector's 10.0.NNNNN and 10.0.NNNNN.UBR", n.ID, f.OS.Version, f.Kernel)
			}
		case "macos":
			if !macos.MatchString(f.OS.Version) {
				t.Errorf("%s: os.version %q, want sw_vers's ProductVersion", n.ID, f.OS.Version)
			}
		}
		if f.Kubelet != "" && (!kubelet.MatchString(f.Kubelet) || n.Labels["role"] != "kubernetes-node") {
			t.Errorf("%s: kubelet %q role %q", n.ID, f.Kubelet, n.Labels["role"])
		}
		if f.Kubelet == "" && n.Labels["role"] != "" {
			t.Errorf("%s: role %q without a kubelet", n.ID, n.Labels["role"])
		}
	}
	if len(seen) != 6 {
		t.Errorf("families %v, want all six of the default mix", seen)
	}
}
