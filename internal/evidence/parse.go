package evidence

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"github.com/drover-dev/drover/internal/hostcheck"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Parse functions: pure over bytes, named by what they parse.

// UnitState is a systemd unit's state.
type UnitState struct {
	Unit   string `json:"unit"`
	Load   string `json:"load,omitempty"`
	Active string `json:"active"`
	Sub    string `json:"sub,omitempty"`
	Result string `json:"result,omitempty"`
}

// ParseSystemctlFailed parses `systemctl --failed --no-legend --plain`.
func ParseSystemctlFailed(b []byte) []UnitState {
	var out []UnitState
	for _, line := range lines(b) {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "●"))
		if len(f) < 4 {
			continue
		}
		out = append(out, UnitState{Unit: f[0], Load: f[1], Active: f[2], Sub: f[3]})
	}
	return out
}

// ParseSystemctlShow parses `systemctl show -p A,B UNIT` (KEY=value
// lines) into a map.
func ParseSystemctlShow(b []byte) map[string]string {
	m := map[string]string{}
	for _, line := range lines(b) {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// ResolvConf is what /etc/resolv.conf configures.
type ResolvConf struct {
	Nameservers []string `json:"nameservers"`
	Search      []string `json:"search,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// ParseResolvConf parses resolv.conf(5).
func ParseResolvConf(b []byte) ResolvConf {
	var r ResolvConf
	for _, line := range lines(b) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		f := strings.Fields(line)
		switch f[0] {
		case "nameserver":
			if len(f) > 1 {
				r.Nameservers = append(r.Nameservers, f[1])
			}
		case "search", "domain":
			r.Search = append(r.Search, f[1:]...)
		case "options":
			r.Options = append(r.Options, f[1:]...)
		}
	}
	return r
}

// Route is one IPv4 route of /proc/net/route.
type Route struct {
	Iface       string `json:"iface"`
	Destination string `json:"destination"` // CIDR
	Gateway     string `json:"gateway,omitempty"`
	Metric      int    `json:"metric,omitempty"`
	MTU         int    `json:"mtu,omitempty"`
}

// ParseProcNetRoute parses /proc/net/route (addresses little-endian hex).
func ParseProcNetRoute(b []byte) ([]Route, error) {
	var out []Route
	for i, line := range lines(b) {
		f := strings.Fields(line)
		if i == 0 || len(f) < 11 {
			continue
		}
		dst, err1 := hexIPv4(f[1])
		gw, err2 := hexIPv4(f[2])
		mask, err3 := hexIPv4(f[7])
		if err1 != nil || err2 != nil || err3 != nil {
			return out, fmt.Errorf("/proc/net/route line %d: bad address in %q", i+1, line)
		}
		ones := 0
		for _, by := range mask.As4() {
			for ; by != 0; by <<= 1 {
				ones += int(by >> 7)
			}
		}
		r := Route{Iface: f[0], Destination: netip.PrefixFrom(dst, ones).String()}
		if gw != netip.IPv4Unspecified() {
			r.Gateway = gw.String()
		}
		r.Metric, _ = strconv.Atoi(f[6])
		r.MTU, _ = strconv.Atoi(f[8])
		out = append(out, r)
	}
	return out, nil
}

func hexIPv4(s string) (netip.Addr, error) {
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return netip.Addr{}, err
	}
	var a [4]byte
	binary.LittleEndian.PutUint32(a[:], uint32(v))
	return netip.AddrFrom4(a), nil
}

// Mount is one line of /proc/self/mountinfo, as internal/hostcheck
// reads it (read-only in the mount's or the superblock's options, so a
// file system the kernel remounted read-only after an error shows).
type Mount = hostcheck.Mount

// TimeSync is the node's clock synchronisation.
type TimeSync struct {
	Source       string  `json:"source"` // timedatectl | chronyc
	Synchronized bool    `json:"synchronized"`
	NTP          string  `json:"ntp,omitempty"`     // timedatectl: NTP service enabled
	Server       string  `json:"server,omitempty"`  // chronyc: reference
	Offset       float64 `json:"offsetSeconds"`     // chronyc: system time minus NTP time
	Stratum      int     `json:"stratum,omitempty"` // chronyc
}

// ParseTimedatectlShow parses `timedatectl show`.
func ParseTimedatectlShow(b []byte) TimeSync {
	m := ParseSystemctlShow(b)
	return TimeSync{Source: "timedatectl", Synchronized: m["NTPSynchronized"] == "yes", NTP: m["NTP"]}
}

// ParseChronyTracking parses `chronyc tracking`.
func ParseChronyTracking(b []byte) (TimeSync, error) {
	t := TimeSync{Source: "chronyc"}
	seen := false
	for _, line := range lines(b) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "Reference ID":
			t.Server = v
		case "Stratum":
			t.Stratum, _ = strconv.Atoi(v)
		case "System time":
			f := strings.Fields(v) // 0.000012 seconds fast of NTP time
			if len(f) < 3 {
				return t, fmt.Errorf("chronyc tracking: bad System time %q", v)
			}
			off, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return t, fmt.Errorf("chronyc tracking: bad System time %q: %w", v, err)
			}
			if f[2] == "slow" {
				off = -off
			}
			t.Offset, seen = off, true
		case "Leap status":
			t.Synchronized = v == "Normal"
		}
	}
	if !seen {
		return t, fmt.Errorf("chronyc tracking: no System time line")
	}
	return t, nil
}

// Firewall is the iptables in use.
type Firewall struct {
	Version string `json:"version"`
	Backend string `json:"backend"` // nf_tables | legacy
}

// ParseIptablesVersion parses `iptables -V` ("iptables v1.8.9
// (nf_tables)"); the backend is internal/hostcheck's reading.
func ParseIptablesVersion(b []byte) (Firewall, error) {
	backend, err := hostcheck.ParseIptablesVersion(b)
	if err != nil {
		return Firewall{}, err
	}
	return Firewall{Version: strings.TrimPrefix(strings.Fields(string(b))[1], "v"), Backend: backend}, nil
}

// DiskStat is one device's counters in /proc/diskstats.
type DiskStat struct {
	Reads, ReadMs, Writes, WriteMs, IOMs uint64
}

// ParseDiskstats parses /proc/diskstats; loop, ram and zram devices
// are left out.
func ParseDiskstats(b []byte) map[string]DiskStat {
	m := map[string]DiskStat{}
	for _, line := range lines(b) {
		f := strings.Fields(line)
		if len(f) < 14 {
			continue
		}
		name := f[2]
		if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "zram") {
			continue
		}
		n := func(i int) uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return v }
		m[name] = DiskStat{Reads: n(3), ReadMs: n(6), Writes: n(7), WriteMs: n(10), IOMs: n(12)}
	}
	return m
}

// DiskIO is one device's IO between two samples.
type DiskIO struct {
	Device         string  `json:"device"`
	Utilisation    float64 `json:"utilisationPercent"`
	ReadsPerSec    float64 `json:"readsPerSec"`
	WritesPerSec   float64 `json:"writesPerSec"`
	ReadLatencyMs  float64 `json:"readLatencyMs"` // mean per read completed
	WriteLatencyMs float64 `json:"writeLatencyMs"`
}

// DiskIOBetween computes IO rates, mean latencies and utilisation from
// two /proc/diskstats samples dt apart, by device name.
func DiskIOBetween(a, b map[string]DiskStat, dt time.Duration) []DiskIO {
	var out []DiskIO
	secs := dt.Seconds()
	if secs <= 0 {
		return nil
	}
	for name, y := range b {
		x, ok := a[name]
		if !ok || y.Reads < x.Reads || y.Writes < x.Writes {
			continue
		}
		d := DiskIO{Device: name}
		r, w := float64(y.Reads-x.Reads), float64(y.Writes-x.Writes)
		d.ReadsPerSec, d.WritesPerSec = round2(r/secs), round2(w/secs)
		if r > 0 {
			d.ReadLatencyMs = round2(float64(y.ReadMs-x.ReadMs) / r)
		}
		if w > 0 {
			d.WriteLatencyMs = round2(float64(y.WriteMs-x.WriteMs) / w)
		}
		d.Utilisation = round2(min(100, float64(y.IOMs-x.IOMs)/(secs*1000)*100))
		out = append(out, d)
	}
	slices.SortFunc(out, func(p, q DiskIO) int { return strings.Compare(p.Device, q.Device) })
	return out
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// tcpStates names the st column of /proc/net/tcp (include/net/tcp_states.h).
var tcpStates = map[string]string{
	"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
	"06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}

// ParseProcNetTCP counts the connections of /proc/net/tcp or tcp6 by
// state, adding to counts.
func ParseProcNetTCP(b []byte, counts map[string]int) {
	for i, line := range lines(b) {
		f := strings.Fields(line)
		if i == 0 || len(f) < 4 {
			continue
		}
		st, ok := tcpStates[strings.ToUpper(f[3])]
		if !ok {
			st = "UNKNOWN"
		}
		counts[st]++
	}
}

// ParseBootID checks /proc/sys/kernel/random/boot_id.
func ParseBootID(b []byte) (string, error) {
	s := strings.TrimSpace(string(b))
	if _, err := hex.DecodeString(strings.ReplaceAll(s, "-", "")); err != nil || len(s) != 36 {
		return "", fmt.Errorf("boot_id: not a UUID: %q", s)
	}
	return s, nil
}

// LastLines keeps the last n lines of b.
func LastLines(b []byte, n int) string {
	ls := lines(b)
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

func lines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
