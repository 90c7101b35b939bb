package fleet

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Share is one operating-system family's weight in a generated fleet.
type Share struct {
	Family string
	Weight int
}

// GenSpec describes a synthetic fleet.
type GenSpec struct {
	// N is the number of nodes (≥ 0).
	N int
	// Mix gives os.family weights; node counts are apportioned exactly
	// (largest remainder) and nodes are emitted family by family in Mix
	// order. Families: debian, ubuntu, rhel, suse, windows, macos.
	Mix []Share
	// Zones is the number of zones, labelled a, b, c, … (1–26; 0 means 1).
	// Zones are assigned round robin, so they are balanced within one.
	Zones int
	// HardwareClasses is the number of hardware classes gen1…genN
	// (0 means 1), drawn at random.
	HardwareClasses int
}

// ParseMix parses "debian:40,rhel:30,windows:20,macos:10". Weights are
// non-negative integers, at least one positive; families must be known and
// appear once. Spaces around items are ignored.
func ParseMix(s string) ([]Share, error) {
	var mix []Share
	seen := make(map[string]bool)
	total := 0
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		fam, w, ok := strings.Cut(item, ":")
		if !ok {
			return nil, fmt.Errorf("mix %q: item %q: want FAMILY:WEIGHT", s, item)
		}
		fam = strings.ToLower(strings.TrimSpace(fam))
		if !knownFamily(fam) {
			return nil, fmt.Errorf("mix %q: unknown os family %q (want one of %s)", s, fam, familyNames)
		}
		if seen[fam] {
			return nil, fmt.Errorf("mix %q: family %q given twice", s, fam)
		}
		seen[fam] = true
		weight, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || weight < 0 {
			return nil, fmt.Errorf("mix %q: weight of %s: want a non-negative integer, got %q", s, fam, w)
		}
		total += weight
		mix = append(mix, Share{Family: fam, Weight: weight})
	}
	if total == 0 {
		return nil, fmt.Errorf("mix %q: all weights are zero", s)
	}
	return mix, nil
}

// DefaultMix is the os.family mix of the fleet `drover demo` runs and
// `drover simulate --nodes N` generates, so that a plan selecting nodes on
// one selects them on the other.
const DefaultMix = "debian:20,ubuntu:20,rhel:20,suse:10,windows:20,macos:10"

const familyNames = "debian, ubuntu, rhel, suse, windows, macos"

// variant is one release of a family as the generator emits it.
type variant struct {
	name, version string
	weight        int // relative share within the family
	kernels       []string
	packages      map[string]string
	services      map[string]string
	modules       []string
	linux         bool
}

// knownFamily reports whether fam is an os.family the generator knows.
func knownFamily(fam string) bool {
	switch fam {
	case "debian", "ubuntu", "rhel", "suse", "windows", "macos":
		return true
	}
	return false
}

// familyTable returns fresh release tables; its maps and slices become the
// shared Packages, Services and Modules of one Generate call's nodes.
func familyTable() map[string][]variant {
	return map[string][]variant{
		"debian": {
			{name: "Debian GNU/Linux", version: "11", weight: 3, linux: true,
				kernels:  []string{"5.10.0-30-amd64", "5.10.0-32-amd64", "5.10.0-33-amd64"},
				packages: map[string]string{"openssl": "1.1.1w-0+deb11u1", "openssh-server": "1:8.4p1-5+deb11u3", "libc6": "2.31-13+deb11u11"},
				services: map[string]string{"ssh.service": "active", "cron.service": "active"},
				modules:  []string{"overlay", "nf_conntrack"}},
			{name: "Debian GNU/Linux", version: "12", weight: 7, linux: true,
				kernels:  []string{"6.1.0-25-amd64", "6.1.0-26-amd64", "6.1.0-26-amd64", "6.1.0-27-amd64"},
				packages: map[string]string{"openssl": "3.0.15-1~deb12u1", "openssh-server": "1:9.2p1-2+deb12u3", "libc6": "2.36-9+deb12u8"},
				services: map[string]string{"ssh.service": "active", "cron.service": "active"},
				modules:  []string{"overlay", "nf_conntrack", "br_netfilter"}},
		},
		"ubuntu": {
			{name: "Ubuntu", version: "22.04", weight: 4, linux: true,
				kernels:  []string{"5.15.0-119-generic", "5.15.0-122-generic"},
				packages: map[string]string{"openssl": "3.0.2-0ubuntu1.18", "openssh-server": "1:8.9p1-3ubuntu0.10", "libc6": "2.35-0ubuntu3.8"},
				services: map[string]string{"ssh.service": "active", "unattended-upgrades.service": "active"},
				modules:  []string{"overlay", "nf_conntrack"}},
			{name: "Ubuntu", version: "24.04", weight: 6, linux: true,
				kernels:  []string{"6.8.0-41-generic", "6.8.0-45-generic"},
				packages: map[string]string{"openssl": "3.0.13-0ubuntu3.4", "openssh-server": "1:9.6p1-3ubuntu13.5", "libc6": "2.39-0ubuntu8.3"},
				services: map[string]string{"ssh.service": "active", "unattended-upgrades.service": "active"},
				modules:  []string{"overlay", "nf_conntrack", "br_netfilter"}},
		},
		"rhel": {
			{name: "Red Hat Enterprise Linux", version: "8.10", weight: 4, linux: true,
				kernels:  []string{"4.18.0-553.16.1.el8_10.x86_64", "4.18.0-553.22.1.el8_10.x86_64"},
				packages: map[string]string{"openssl": "1:1.1.1k-12.el8_9", "openssh-server": "8.0p1-24.el8", "glibc": "2.28-251.el8_10.2"},
				services: map[string]string{"sshd.service": "active", "chronyd.service": "active"},
				modules:  []string{"overlay", "nf_conntrack"}},
			{name: "Red Hat Enterprise Linux", version: "9.4", weight: 6, linux: true,
				kernels:  []string{"5.14.0-427.33.1.el9_4.x86_64", "5.14.0-427.37.1.el9_4.x86_64"},
				packages: map[string]string{"openssl": "1:3.0.7-27.el9", "openssh-server": "8.7p1-38.el9_4.4", "glibc": "2.34-100.el9_4.4"},
				services: map[string]string{"sshd.service": "active", "chronyd.service": "active"},
				modules:  []string{"overlay", "nf_conntrack", "br_netfilter"}},
		},
		"suse": {
			{name: "SUSE Linux Enterprise Server", version: "15.5", weight: 4, linux: true,
				kernels:  []string{"5.14.21-150500.55.73-default", "5.14.21-150500.55.80-default"},
				packages: map[string]string{"openssl-3": "3.0.8-150500.5.45.1", "openssh-server": "9.6p1-150500.3.3.1", "glibc": "2.31-150300.86.3"},
				services: map[string]string{"sshd.service": "active", "chronyd.service": "active"},
				modules:  []string{"overlay"}},
			{name: "SUSE Linux Enterprise Server", version: "15.6", weight: 6, linux: true,
				kernels:  []string{"6.4.0-150600.23.22-default", "6.4.0-150600.23.25-default"},
				packages: map[string]string{"openssl-3": "3.1.4-150600.5.15.1", "openssh-server": "9.6p1-150600.6.15.2", "glibc": "2.38-150600.14.8.2"},
				services: map[string]string{"sshd.service": "active", "chronyd.service": "active"},
				modules:  []string{"overlay", "br_netfilter"}},
		},
		"windows": {
			// As the agent's collector reports them: os.version is
			// Win32_OperatingSystem.Version, the release; the kernel is
			// the build that runs with its update build revision (the
			// August 2024 cumulative updates, KB5041578 and KB5041160);
			// installed updates are packages.
			{name: "Windows Server 2019 Datacenter", version: "10.0.17763", weight: 4,
				kernels:  []string{"10.0.17763.6189"},
				packages: map[string]string{"KB5041578": "installed", "Microsoft.NETCore.App": "6.0.33"},
				services: map[string]string{"W32Time": "running", "WinRM": "running"}},
			{name: "Windows Server 2022 Datacenter", version: "10.0.20348", weight: 6,
				kernels:  []string{"10.0.20348.2655"},
				packages: map[string]string{"KB5041160": "installed", "Microsoft.NETCore.App": "8.0.8"},
				services: map[string]string{"W32Time": "running", "WinRM": "running"}},
		},
		"macos": {
			{name: "macOS", version: "14.6.1", weight: 1,
				kernels:  []string{"23.6.0"},
				packages: map[string]string{"openssl@3": "3.3.2", "xcode-select": "2406"},
				services: map[string]string{"com.openssh.sshd": "running"}},
		},
	}
}

// Generate builds a synthetic fleet, deterministic for (spec, seed): the
// same inputs give the same nodes on every platform (math/rand/v2 PCG).
//
// IDs are FAMILY-NNNN, numbered from 1 within each family and zero-padded
// to the number of digits of spec.N. Labels are zone (a, b, …), tier
// (web, app, db in a 60/30/10 ratio within every family), env=prod, and
// role=kubernetes-node on the three Linux nodes in ten that run a kubelet.
// Facts are written as the agent's collectors report them (Windows
// os.version 10.0.20348, macOS 14.6.1, kubelet v1.30.4).
// Arch uses Go's names (amd64, arm64).
//
// Sharing: nodes of the same release share one Packages map, one Services
// map and one Modules slice. Callers must not mutate those; replace them
// with a fresh map or slice to change one node's facts. Labels are per node.
func Generate(spec GenSpec, seed uint64) ([]*Node, error) {
	if spec.N < 0 {
		return nil, fmt.Errorf("generate: N = %d, want ≥ 0", spec.N)
	}
	zones, classes := max(spec.Zones, 1), max(spec.HardwareClasses, 1)
	if spec.Zones < 0 || spec.Zones > 26 {
		return nil, fmt.Errorf("generate: %d zones, want 1–26", spec.Zones)
	}
	if spec.HardwareClasses < 0 {
		return nil, fmt.Errorf("generate: %d hardware classes, want ≥ 0", spec.HardwareClasses)
	}
	counts, err := apportion(spec.N, spec.Mix)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	width := len(strconv.Itoa(spec.N))
	classNames := make([]string, classes)
	for i := range classNames {
		classNames[i] = "gen" + strconv.Itoa(i+1)
	}
	tiers := [10]string{"web", "app", "web", "db", "web", "app", "web", "web", "app", "web"}

	families := familyTable()
	nodes := make([]*Node, 0, spec.N)
	// One backing array for all nodes keeps 100,000 nodes in one allocation.
	backing := make([]Node, spec.N)
	for fi, share := range spec.Mix {
		vars := families[share.Family]
		totalW := 0
		for _, v := range vars {
			totalW += v.weight
		}
		for k := range counts[fi] {
			i := len(nodes)
			v := pickVariant(rng, vars, totalW)
			arch := "amd64"
			kernel := v.kernels[rng.IntN(len(v.kernels))]
			switch {
			case share.Family == "macos":
				arch = "arm64"
			case v.linux && rng.IntN(10) == 0:
				arch = "arm64"
				kernel = armKernel(kernel)
			}
			n := &backing[i]
			*n = Node{
				ID: fmt.Sprintf("%s-%0*d", share.Family, width, k+1),
				Facts: Facts{
					OS:             OS{Family: share.Family, Name: v.name, Version: v.version},
					Kernel:         kernel,
					Arch:           arch,
					Hardware:       Hardware{Class: classNames[rng.IntN(classes)]},
					BootID:         bootID(rng),
					Packages:       v.packages,
					Services:       v.services,
					Modules:        v.modules,
					RebootRequired: rng.IntN(20) == 0,
				},
				Labels: map[string]string{
					"zone": string(rune('a' + i%zones)),
					"tier": tiers[(k*7)%10],
					"env":  "prod",
				},
			}
			if v.linux && rng.IntN(10) < 3 {
				// Kubernetes workers; the kubelet's version as the agent's
				// collector reads it (`kubelet --version`: "v1.30.4").
				n.Facts.Runtime.Containerd = "1.7." + strconv.Itoa(18+rng.IntN(5))
				n.Facts.Kubelet = "v1.30." + strconv.Itoa(2+rng.IntN(4))
				n.Labels["role"] = "kubernetes-node"
			}
			nodes = append(nodes, n)
		}
	}
	return nodes, nil
}

// armKernel turns an amd64 kernel release into its arm64 twin.
func armKernel(k string) string {
	for _, s := range [][2]string{{"-amd64", "-arm64"}, {".x86_64", ".aarch64"}} {
		if strings.HasSuffix(k, s[0]) {
			return strings.TrimSuffix(k, s[0]) + s[1]
		}
	}
	return k
}

func pickVariant(rng *rand.Rand, vars []variant, totalW int) *variant {
	r := rng.IntN(totalW)
	for i := range vars {
		if r < vars[i].weight {
			return &vars[i]
		}
		r -= vars[i].weight
	}
	return &vars[len(vars)-1]
}

func bootID(rng *rand.Rand) string {
	const hex = "0123456789abcdef"
	var b [36]byte
	hi, lo := rng.Uint64(), rng.Uint64()
	j := 0
	for i := range b {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			b[i] = '-'
			continue
		}
		src := &hi
		if j >= 16 {
			src = &lo
		}
		b[i] = hex[*src&0xf]
		*src >>= 4
		j++
	}
	return string(b[:])
}

// apportion splits n among the mix weights by the largest-remainder method,
// so counts are exact and sum to n. Ties go to the earlier share.
func apportion(n int, mix []Share) ([]int, error) {
	total := 0
	for _, s := range mix {
		if !knownFamily(s.Family) {
			return nil, fmt.Errorf("unknown os family %q (want one of %s)", s.Family, familyNames)
		}
		if s.Weight < 0 {
			return nil, fmt.Errorf("family %s: negative weight %d", s.Family, s.Weight)
		}
		total += s.Weight
	}
	if total == 0 {
		return nil, fmt.Errorf("mix has no positive weight")
	}
	counts := make([]int, len(mix))
	rems := make([]int, len(mix))
	left := n
	for i, s := range mix {
		counts[i] = n * s.Weight / total
		rems[i] = n * s.Weight % total
		left -= counts[i]
	}
	for ; left > 0; left-- {
		best := 0
		for i := range rems {
			if rems[i] > rems[best] {
				best = i
			}
		}
		counts[best]++
		rems[best] = -1
	}
	return counts, nil
}
