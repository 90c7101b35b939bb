package nodediff

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	ev "github.com/drover-dev/drover/internal/evidence"
)

// Dimensions over the nodes' evidence bundles (Node.Evidence): compared
// only when both nodes have one (a dimension missing on one node says
// nothing about the other). In essay 002's order of what to compare
// ("package versions, kernel, config, ..., DNS, routes, mounts, and IO
// latency"), after the packages: missing libraries first (a library an
// update removed or renamed stops the service outright), then the
// resolver, the network (MTUs, default routes), mounts, the firewall
// backend and time sync.

func bothDecode(f, h *Node, name string, fv, hv any) bool {
	return f.Evidence != nil && h.Evidence != nil && f.Evidence.Decode(name, fv) && h.Evidence.Decode(name, hv)
}

func compareLinkage(f, h *Node) []Difference {
	if f.Evidence == nil {
		return nil
	}
	var fl, hl []ev.Linkage
	f.Evidence.Decode("linkage", &fl)
	if h.Evidence != nil {
		h.Evidence.Decode("linkage", &hl)
	}
	// A unit's binary is keyed by its unit, a binary a probe names by
	// its path.
	key := func(l ev.Linkage) string {
		if l.Unit != "" {
			return l.Unit
		}
		return l.Binary
	}
	healthyMissing := map[string]bool{}
	for _, l := range hl {
		for _, m := range l.Missing {
			healthyMissing[key(l)+" "+m] = true
		}
	}
	var ds []Difference
	for _, l := range fl {
		for _, m := range l.Missing {
			if healthyMissing[key(l)+" "+m] {
				continue
			}
			// Missing on the failing node needs no healthy bundle: a
			// binary that cannot load its libraries does not start.
			ds = append(ds, Difference{Key: key(l), Failing: l.Binary + ": " + m + " not found", Healthy: "(links)",
				Reason: "the service's binary cannot load a library (not found in the loader's search path): an update removed or renamed it (essay 002, dependency breakage)"})
		}
	}
	return ds
}

func compareResolver(f, h *Node) []Difference {
	var fr, hr ev.Resolver
	if !bothDecode(f, h, "resolver", &fr, &hr) {
		return nil
	}
	var ds []Difference
	if fr.Conf != nil && hr.Conf != nil {
		const why = "resolver configuration differs: a patch can change search domains and servers (essay 002)"
		ds = append(ds, scalar("nameservers", strings.Join(fr.Conf.Nameservers, " "), strings.Join(hr.Conf.Nameservers, " "), why)...)
		ds = append(ds, scalar("search", strings.Join(fr.Conf.Search, " "), strings.Join(hr.Conf.Search, " "), why)...)
		ds = append(ds, scalar("options", strings.Join(fr.Conf.Options, " "), strings.Join(hr.Conf.Options, " "), why)...)
	}
	answers := func(as []ev.Answer) map[string]string {
		m := map[string]string{}
		for _, a := range as {
			v := strings.Join(a.Addrs, " ")
			if a.Error != "" {
				v = "error: " + a.Error
			}
			m[a.Name] = v
		}
		return m
	}
	fa, ha := answers(fr.Answers), answers(hr.Answers)
	for _, name := range slices.Sorted(maps.Keys(fa)) {
		if hv, ok := ha[name]; ok && hv != fa[name] {
			why := "the name resolves differently"
			if strings.HasPrefix(fa[name], "error: ") {
				why = "the name does not resolve on the failing node only: the probes' dependency is unreachable by name"
			}
			ds = append(ds, Difference{Key: "answer " + name, Failing: fa[name], Healthy: hv, Reason: why})
		}
	}
	return ds
}

// compareTLS compares the handshakes with the endpoints both bundles
// reached: one that verifies on the healthy node only (a CA bundle
// replaced, a clock off, an intercepting proxy) or fails outright.
func compareTLS(f, h *Node) []Difference {
	var ft, ht []ev.TLSResult
	if !bothDecode(f, h, "tls", &ft, &ht) {
		return nil
	}
	state := func(r ev.TLSResult) string {
		switch {
		case r.Error != "":
			return "handshake failed: " + r.Error
		case r.Verified:
			return "verified"
		}
		return "not verified: " + r.VerifyError
	}
	hs := map[string]string{}
	for _, r := range ht {
		hs[r.Endpoint] = state(r)
	}
	var ds []Difference
	for _, r := range ft {
		hv, ok := hs[r.Endpoint]
		if fv := state(r); ok && fv != hv {
			why := "the endpoint's chain is trusted otherwise on the two nodes: a CA bundle replaced or trust store changed (essay 002)"
			if r.Error != "" {
				why = "the TLS handshake fails on the failing node only: MTU, firewall or proxy in the way"
			}
			ds = append(ds, Difference{Key: "handshake " + r.Endpoint, Failing: fv, Healthy: hv, Reason: why})
		}
	}
	return ds
}

func compareNetwork(f, h *Node) []Difference {
	var ds []Difference
	var fi, hi []ev.Interface
	if bothDecode(f, h, "interfaces", &fi, &hi) {
		hm := map[string]int{}
		for _, i := range hi {
			hm[i.Name] = i.MTU
		}
		for _, i := range fi {
			if m, ok := hm[i.Name]; ok && m != i.MTU {
				ds = append(ds, Difference{Key: "mtu " + i.Name, Failing: fmt.Sprint(i.MTU), Healthy: fmt.Sprint(m),
					Reason: "an MTU mismatch drops large packets: TLS handshakes and big responses hang (essay 002)"})
			}
		}
	}
	var fr, hr []ev.Route
	if bothDecode(f, h, "routes", &fr, &hr) {
		def := func(rs []ev.Route) string {
			var out []string
			for _, r := range rs {
				if r.Destination == "0.0.0.0/0" {
					out = append(out, r.Gateway+" dev "+r.Iface)
				}
			}
			return strings.Join(out, ", ")
		}
		ds = append(ds, scalar("default route", orNone(def(fr)), orNone(def(hr)), "traffic leaves by another way")...)
	}
	return ds
}

func compareMounts(f, h *Node) []Difference {
	var fm, hm []ev.Mount
	if !bothDecode(f, h, "mounts", &fm, &hm) {
		return nil
	}
	state := func(ms []ev.Mount) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			if strings.HasPrefix(m.Point, "/proc") || strings.HasPrefix(m.Point, "/sys") || strings.HasPrefix(m.Point, "/dev") || strings.HasPrefix(m.Point, "/run") {
				continue
			}
			rw := "rw"
			if m.ReadOnly {
				rw = "ro"
			}
			out[m.Point] = rw + " " + m.FSType
		}
		return out
	}
	fs, hs := state(fm), state(hm)
	var ds []Difference
	for _, p := range slices.Sorted(maps.Keys(hs)) {
		switch fv, ok := fs[p]; {
		case !ok:
			ds = append(ds, Difference{Key: p, Failing: "(not mounted)", Healthy: hs[p], Reason: "a mount did not come back (essay 002: udev and multipath changes)"})
		case fv != hs[p]:
			why := "mounted otherwise"
			if strings.HasPrefix(fv, "ro ") && strings.HasPrefix(hs[p], "rw ") {
				why = "read-only on the failing node: a filesystem error remounts read-only"
			}
			ds = append(ds, Difference{Key: p, Failing: fv, Healthy: hs[p], Reason: why})
		}
	}
	return ds
}

func compareFirewall(f, h *Node) []Difference {
	var ff, hf ev.Firewall
	if !bothDecode(f, h, "firewall", &ff, &hf) {
		return nil
	}
	return scalar("iptables backend", ff.Backend, hf.Backend, "rules written for one backend are not seen by the other: CNI and firewall rules vanish (essay 002)")
}

func compareTime(f, h *Node) []Difference {
	var ft, ht ev.TimeSync
	if !bothDecode(f, h, "time", &ft, &ht) {
		return nil
	}
	return scalar("synchronized", fmt.Sprint(ft.Synchronized), fmt.Sprint(ht.Synchronized), "a clock out of sync fails TLS and tokens")
}
