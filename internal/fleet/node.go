// Package fleet owns what drover knows about managed nodes: their identity,
// facts and labels, the CEL selectors that choose them, the keys that group
// them into topology domains, the inventory files they are read from
// (drover YAML/JSON, Ansible INI/YAML) and the synthetic fleets the
// simulator and demo run against.
//
// Selectors (CompileSelector, Compiler) are type-checked CEL over one
// variable, node; a compiled Selector is immutable and safe for concurrent
// use. Inventories (LoadInventory) report problems as "FILE:LINE: message".
// Generate is deterministic for a seed and shares read-only fact maps
// between nodes of the same release: never mutate a generated node's
// Packages, Services or Modules in place.
package fleet

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// Node is one managed machine as the control plane sees it.
type Node struct {
	ID     string            `json:"id" yaml:"id"`
	Facts  Facts             `json:"facts" yaml:"facts"`
	Labels map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
}

// Facts are what an agent reports about its node. Zero values mean unknown.
type Facts struct {
	OS          OS                `json:"os" yaml:"os"`
	Kernel      string            `json:"kernel,omitempty" yaml:"kernel,omitempty"`
	Arch        string            `json:"arch,omitempty" yaml:"arch,omitempty"`
	Hardware    Hardware          `json:"hardware" yaml:"hardware"`
	BootID      string            `json:"bootId,omitempty" yaml:"bootId,omitempty"`
	Packages    map[string]string `json:"packages,omitempty" yaml:"packages,omitempty"`
	Services    map[string]string `json:"services,omitempty" yaml:"services,omitempty" desc:"unit or service name -> state (active, failed, running, stopped)"`
	Modules     []string          `json:"modules,omitempty" yaml:"modules,omitempty"`
	LivePatches []string          `json:"livePatches,omitempty" yaml:"livePatches,omitempty"`
	// Holds are the packages held at their installed version (dpkg's
	// hold selection, dnf versionlock, zypper locks), sorted; the
	// families without holds (Windows, macOS) report none.
	Holds          []string `json:"holds,omitempty" yaml:"holds,omitempty" desc:"packages held at their version (apt-mark hold, dnf versionlock, zypper addlock)"`
	Runtime        Runtime  `json:"runtime" yaml:"runtime"`
	Kubelet        string   `json:"kubelet,omitempty" yaml:"kubelet,omitempty"`
	RebootRequired bool     `json:"rebootRequired,omitempty" yaml:"rebootRequired,omitempty"`
	// Agent is what the node's agent is configured to run, as it reports
	// it (protocol 2 on); nil for an agent that reports nothing.
	Agent *AgentPolicy `json:"agent,omitempty" yaml:"agent,omitempty"`
}

// AgentPolicy is what a node's own agent configuration lets it run,
// reported with its facts so that a server can tell, before anything
// is touched, which nodes would refuse a plan. The agent enforces it
// whatever the server believes.
type AgentPolicy struct {
	// Accepts are the action kinds the agent performs (--accept).
	Accepts []string `json:"accepts" yaml:"accepts"`
	// CommandProbes: the agent runs command probes' commands
	// (--allow-command-probes); signed artifacts need Artifacts instead.
	CommandProbes bool `json:"commandProbes,omitempty" yaml:"commandProbes,omitempty"`
	// ProbeOutput: the agent returns a probe's output when the probe
	// asks (--allow-probe-output).
	ProbeOutput bool `json:"probeOutput,omitempty" yaml:"probeOutput,omitempty"`
	// Artifacts: the agent verifies signed artifacts (--artifact-root or
	// --trusted-dir), so it can run scripts and artifact probes.
	Artifacts bool `json:"artifacts,omitempty" yaml:"artifacts,omitempty"`
}

// OS identifies the operating system. Family is one of debian, ubuntu,
// rhel, suse, windows, macos (ubuntu is its own family: its versions and
// packages differ from Debian's).
type OS struct {
	Family  string `json:"family" yaml:"family"`
	Name    string `json:"name,omitempty" yaml:"name,omitempty"`
	Version string `json:"version,omitempty" yaml:"version,omitempty"`
}

// Hardware describes the machine class (DMI product name or an operator's
// label for it).
type Hardware struct {
	Class string `json:"class,omitempty" yaml:"class,omitempty"`
}

// Runtime holds container runtime versions; empty means not installed.
type Runtime struct {
	Containerd string `json:"containerd,omitempty" yaml:"containerd,omitempty"`
	Docker     string `json:"docker,omitempty" yaml:"docker,omitempty"`
	CRIO       string `json:"crio,omitempty" yaml:"crio,omitempty"`
}

// Value returns the value of a topology key on n; topology keys group
// nodes into fault domains for caps and spreading. A key naming a scalar
// fact ("os.family", "os.name", "os.version", "hardware.class", "arch",
// "kernel", "kubelet", "runtime.containerd", "runtime.docker",
// "runtime.crio") reads the fact; "labels.X" reads label X, and any other
// bare key ("zone", "tier") reads the label of that name, so a label can
// never shadow a fact. A missing fact or label is "", not an error; callers
// decide whether "" is a domain of its own. n must not be nil.
func (n *Node) Value(key string) string {
	switch key {
	case "os.family":
		return n.Facts.OS.Family
	case "os.name":
		return n.Facts.OS.Name
	case "os.version":
		return n.Facts.OS.Version
	case "hardware.class":
		return n.Facts.Hardware.Class
	case "arch":
		return n.Facts.Arch
	case "kernel":
		return n.Facts.Kernel
	case "kubelet":
		return n.Facts.Kubelet
	case "runtime.containerd":
		return n.Facts.Runtime.Containerd
	case "runtime.docker":
		return n.Facts.Runtime.Docker
	case "runtime.crio":
		return n.Facts.Runtime.CRIO
	}
	return n.Labels[strings.TrimPrefix(key, "labels.")]
}

// ValidKey reports whether key can be a topology key: nonempty, without
// whitespace, and not "labels." alone. It does not check that any node has
// the key: an unknown label is a legal key whose value is "" everywhere.
func ValidKey(key string) error {
	if key == "" {
		return errors.New("empty topology key")
	}
	if strings.IndexFunc(key, unicode.IsSpace) >= 0 {
		return fmt.Errorf("topology key %q contains whitespace", key)
	}
	if key == "labels." {
		return fmt.Errorf("topology key %q names no label", key)
	}
	return nil
}
