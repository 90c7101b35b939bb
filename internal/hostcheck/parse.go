package hostcheck

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The readers below are pure: bytes in, values out, so that they are
// tested on outputs captured from real hosts (testdata) and shared by
// whatever else reads a host.

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	Point    string `json:"point"`
	FSType   string `json:"fsType"`
	Source   string `json:"source,omitempty"`
	ReadOnly bool   `json:"readOnly,omitempty"` // ro in the mount's or the superblock's options
	Options  string `json:"options,omitempty"`  // the mount's own options
}

// ParseMountinfo parses /proc/PID/mountinfo (proc(5)): "ID PARENT
// MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS".
// A mount is read-only when either its own or its superblock's options
// say ro (a file system remounted read-only after an error shows in the
// superblock's).
func ParseMountinfo(b []byte) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if sep < 6 || len(f) < sep+3 {
			return nil, fmt.Errorf("mountinfo line %d: malformed: %q", n, line)
		}
		m := Mount{Point: unescapeOctal(f[4]), FSType: f[sep+1], Source: unescapeOctal(f[sep+2]), Options: f[5]}
		m.ReadOnly = hasOption(f[5], "ro")
		if len(f) > sep+3 {
			m.ReadOnly = m.ReadOnly || hasOption(f[sep+3], "ro")
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("mountinfo: no mounts")
	}
	return out, nil
}

func hasOption(opts, o string) bool {
	return slices.Contains(strings.Split(opts, ","), o)
}

// unescapeOctal undoes the kernel's \ooo escapes of space, tab, newline
// and backslash in mount points.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// MountOf returns the mount that holds path p: the last mount (mounts
// over mounts come later) whose point is p or a parent of it.
func MountOf(ms []Mount, p string) (Mount, bool) {
	p = path.Clean(p)
	var best Mount
	found := false
	for _, m := range ms {
		if m.Point == p || m.Point == "/" || strings.HasPrefix(p, m.Point+"/") {
			if !found || len(m.Point) >= len(best.Point) {
				best, found = m, true
			}
		}
	}
	return best, found
}

// Firewall backends of iptables.
const (
	BackendNFTables = "nf_tables"
	BackendLegacy   = "legacy"
	BackendNone     = "none" // no iptables on the host
)

// ParseIptablesVersion reads the backend from `iptables -V`
// ("iptables v1.8.9 (nf_tables)", "iptables v1.8.9 (legacy)"). iptables
// before 1.8 has no suffix and only the legacy backend.
func ParseIptablesVersion(out []byte) (string, error) {
	s := strings.TrimSpace(string(out))
	if !strings.HasPrefix(s, "iptables v") {
		return "", fmt.Errorf("iptables -V: unexpected output %q", s)
	}
	switch {
	case strings.HasSuffix(s, "(nf_tables)"):
		return BackendNFTables, nil
	case strings.HasSuffix(s, "(legacy)"), !strings.Contains(s, "("):
		return BackendLegacy, nil
	}
	return "", fmt.Errorf("iptables -V: unknown backend in %q", s)
}

// ParseAlternative reads the chosen path ("Value:") from
// `update-alternatives --query NAME` ("" when none is chosen).
func ParseAlternative(out []byte) string {
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(line, "Value:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// ParseFailedUnits reads the unit names from `systemctl list-units
// --failed --plain --no-legend --no-pager` (one unit a line, name first;
// a "●" marks failed units when --plain is not given).
func ParseFailedUnits(out []byte) []string {
	var units []string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) > 0 && (f[0] == "●" || f[0] == "*") {
			f = f[1:]
		}
		if len(f) == 0 || !strings.Contains(f[0], ".") {
			continue
		}
		units = append(units, f[0])
	}
	slices.Sort(units)
	return slices.Compact(units)
}

// ParseLines returns the non-blank lines of out, trimmed, sorted and
// without repeats (names printed one a line, as PowerShell's
// ForEach-Object { $_.Name } prints them).
func ParseLines(out []byte) []string {
	var names []string
	for line := range strings.Lines(string(out)) {
		if l := strings.TrimSpace(line); l != "" {
			names = append(names, l)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// ClockState is what the node knows of its clock's synchronisation.
type ClockState struct {
	Source string // what said so: "chronyc tracking", "adjtimex"
	Synced bool
	// Offset is how far the clock is from its time source, as far as
	// the source knows (its estimated error included for adjtimex).
	Offset time.Duration
}

// ParseChronyTracking reads `chronyc tracking`: the "System time" line
// ("0.000123456 seconds slow of NTP time") and the "Leap status" line
// ("Not synchronised" when chronyd has no source).
func ParseChronyTracking(out []byte) (ClockState, error) {
	st := ClockState{Source: "chronyc tracking"}
	var haveOffset, haveLeap bool
	for line := range strings.Lines(string(out)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "System time":
			f := strings.Fields(v)
			if len(f) < 2 {
				return st, fmt.Errorf("chronyc tracking: unexpected System time %q", v)
			}
			sec, err := strconv.ParseFloat(f[0], 64)
			if err != nil || math.IsNaN(sec) || math.IsInf(sec, 0) {
				return st, fmt.Errorf("chronyc tracking: unexpected System time %q", v)
			}
			st.Offset = time.Duration(math.Abs(sec) * float64(time.Second))
			haveOffset = true
		case "Leap status":
			st.Synced = v != "Not synchronised"
			haveLeap = true
		}
	}
	if !haveOffset || !haveLeap {
		return st, errors.New("chronyc tracking: no System time or Leap status line")
	}
	return st, nil
}

// KernelLine is one record of the kernel log.
type KernelLine struct {
	Seq      uint64
	Priority int // syslog level: 0 emerg .. 3 err .. 7 debug
	Kernel   bool
	Message  string
}

// ParseKmsg parses records as read from /dev/kmsg, one a line
// ("PRIO,SEQ,USEC,FLAGS;MESSAGE", continuation lines starting with a
// space are skipped). PRIO is facility*8+level; Kernel is facility 0
// (lines user space writes into the log have another facility).
func ParseKmsg(b []byte) ([]KernelLine, error) {
	var out []KernelLine
	for line := range strings.Lines(string(b)) {
		line = strings.TrimRight(line, "\n")
		if line == "" || line[0] == ' ' {
			continue
		}
		head, msg, ok := strings.Cut(line, ";")
		if !ok {
			return nil, fmt.Errorf("kmsg: malformed record %q", line)
		}
		f := strings.Split(head, ",")
		if len(f) < 3 {
			return nil, fmt.Errorf("kmsg: malformed record %q", line)
		}
		prio, err1 := strconv.Atoi(f[0])
		seq, err2 := strconv.ParseUint(f[1], 10, 64)
		if err1 != nil || err2 != nil || prio < 0 {
			return nil, fmt.Errorf("kmsg: malformed record %q", line)
		}
		out = append(out, KernelLine{Seq: seq, Priority: prio & 7, Kernel: prio>>3 == 0, Message: msg})
	}
	return out, nil
}

// ReadMTUs reads the MTU of every network interface from a file system
// rooted at / (sys/class/net/IFACE/mtu).
func ReadMTUs(fsys fs.FS) (map[string]int, error) {
	ents, err := fs.ReadDir(fsys, "sys/class/net")
	if err != nil {
		return nil, fmt.Errorf("network interfaces: %w", err)
	}
	out := map[string]int{}
	for _, e := range ents {
		b, err := fs.ReadFile(fsys, "sys/class/net/"+e.Name()+"/mtu")
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // not an interface (bonding_masters)
			}
			return nil, fmt.Errorf("MTU of %s: %w", e.Name(), err)
		}
		n, err := ParseMTU(b)
		if err != nil {
			return nil, fmt.Errorf("MTU of %s: %w", e.Name(), err)
		}
		out[e.Name()] = n
	}
	return out, nil
}

// ParseMTU parses the content of /sys/class/net/IFACE/mtu.
func ParseMTU(b []byte) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("unexpected MTU %q", strings.TrimSpace(string(b)))
	}
	return n, nil
}

// adjtimex(2) values (linux/timex.h), the same on every architecture.
const (
	timeError = 5      // TIME_ERROR: clock not synchronised
	staUnsync = 0x0040 // STA_UNSYNC
	staNano   = 0x2000 // STA_NANO: offset in nanoseconds
)

// adjtimexState interprets adjtimex(2)'s answer. offset is in
// microseconds, or nanoseconds when STA_NANO is set; esterror in
// microseconds.
func adjtimexState(state int, status int32, offset, esterror int64) ClockState {
	st := ClockState{Source: "adjtimex"}
	st.Synced = state != timeError && status&staUnsync == 0
	off := time.Duration(offset) * time.Microsecond
	if status&staNano != 0 {
		off = time.Duration(offset)
	}
	st.Offset = max(off, -off) + time.Duration(esterror)*time.Microsecond
	return st
}

// ParseExecStart returns the binary of a unit's ExecStart property as
// `systemctl show -p ExecStart --value` prints it
// ("{ path=/usr/sbin/nginx ; argv[]=/usr/sbin/nginx -g ... }"), or the
// first word of a plain command line.
func ParseExecStart(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.Index(s, "path="); i >= 0 {
		rest := s[i+len("path="):]
		if j := strings.IndexAny(rest, " ;"); j >= 0 {
			rest = rest[:j]
		}
		return rest
	}
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return strings.TrimLeft(f[0], "-@+!:")
}
