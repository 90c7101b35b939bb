package facts

import (
	"bufio"
	"bytes"
	"strings"

	"github.com/drover-dev/drover/internal/fleet"
)

// ParseSwVers reads the output of sw_vers into the OS facts (family
// macos, name macOS, version 14.4.1) and the build.
func ParseSwVers(b []byte) (fleet.OS, string) {
	o := fleet.OS{Family: "macos"}
	var build string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "ProductName":
			o.Name = v
		case "ProductVersion":
			o.Version = v
		case "BuildVersion":
			build = v
		}
	}
	return o, build
}

// ParsePkgutilPkgs reads pkgutil --pkgs: one receipt ID a line. The
// versions need pkgutil --pkg-info per receipt; packages map each ID to
// "installed".
func ParsePkgutilPkgs(b []byte) map[string]string {
	pkgs := map[string]string{}
	for line := range strings.Lines(string(b)) {
		if id := strings.TrimSpace(line); id != "" {
			pkgs[id] = "installed"
		}
	}
	return pkgs
}

// MacUpdate is one update softwareupdate --list offers.
type MacUpdate struct {
	Label       string
	Title       string
	Version     string
	Recommended bool
	Restart     bool // Action: restart
}

// ParseSoftwareUpdateList reads softwareupdate --list (macOS 10.15 and
// later): "* Label: L" lines, each followed by a tab-indented line of
// "Key: value," pairs.
func ParseSoftwareUpdateList(b []byte) []MacUpdate {
	var out []MacUpdate
	var cur *MacUpdate
	for line := range strings.Lines(string(b)) {
		t := strings.TrimSpace(line)
		if label, ok := strings.CutPrefix(t, "* Label:"); ok {
			out = append(out, MacUpdate{Label: strings.TrimSpace(label)})
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil || !strings.HasPrefix(line, "\t") {
			continue
		}
		for _, kv := range strings.Split(t, ",") {
			k, v, ok := strings.Cut(kv, ":")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch strings.TrimSpace(k) {
			case "Title":
				cur.Title = v
			case "Version":
				cur.Version = v
			case "Recommended":
				cur.Recommended = v == "YES"
			case "Action":
				cur.Restart = v == "restart"
			}
		}
	}
	return out
}

// ParseBootTime reads sysctl -n kern.boottime ("{ sec = 1712345678, usec
// = 123456 } Fri Apr  5 ...") into a boot ID that changes on every boot.
func ParseBootTime(b []byte) string {
	s := string(b)
	i, j := strings.Index(s, "sec = "), strings.Index(s, ",")
	if i < 0 || j < i {
		return ""
	}
	return "boot-" + strings.TrimSpace(s[i+len("sec = "):j])
}
