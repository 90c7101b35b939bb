package plan

import (
	"net/netip"
	"strings"
)

// commandProbe checks a command probe (what names it: "a command
// probe", "a pre-restart check"): exactly one of command (a program the
// agent runs only if its own configuration allows command probes) and
// artifact (a signed artifact, verified as scripts are); args go with
// artifact only.
func (v *validator) commandProbe(pp string, pr *Probe, what string) {
	_, hasCmd := v.d.pos[pp+".command"]
	_, hasArt := v.d.pos[pp+".artifact"]
	switch {
	case hasCmd && hasArt:
		v.keyErrf(pp+".artifact", "%s runs either command or a signed artifact, not both", what)
	case !hasCmd && !hasArt:
		v.errf(pp, "%s needs command (a list: [\"/usr/bin/check\", \"--quick\"], run only by agents started with --allow-command-probes) or artifact (a signed artifact)", what)
	case hasCmd:
		if v.written(pp+".command") && (len(pr.Command) == 0 || pr.Command[0] == "") {
			v.errf(pp+".command", "command must name a program")
		}
		if _, ok := v.d.pos[pp+".args"]; ok {
			v.keyErrf(pp+".args", "args go with artifact; put a command's arguments in its list")
		}
	case hasArt:
		v.nonEmpty(pp+".artifact", pr.Artifact, "artifact")
	}
}

// dnsProbe checks a dns probe's lookup, expected addresses and server.
func (v *validator) dnsProbe(pp string, pr *Probe) {
	if v.written(pp+".lookup") && pr.Lookup != "" {
		if len(pr.Lookup) > 253 || strings.ContainsAny(pr.Lookup, " /:@") {
			v.errf(pp+".lookup", "expected a DNS name such as db.internal.example, got %q", pr.Lookup)
		}
	}
	for i, a := range pr.Expect {
		if _, err := netip.ParseAddr(a); err != nil {
			v.errf(joinIndex(pp+".expect", i), "expected an IP address such as 10.0.0.5 or fd00::5, got %q", a)
		}
	}
	if v.written(pp+".server") && pr.Server != "" {
		if _, err := netip.ParseAddr(pr.Server); err == nil {
			return
		}
		if _, err := netip.ParseAddrPort(pr.Server); err != nil {
			v.errf(pp+".server", "expected an IP address or ip:port of a resolver (10.0.0.53, 10.0.0.53:53, [fd00::53]:53), got %q", pr.Server)
		}
	}
}

// tlsProbe checks a tls probe's version and validity.
func (v *validator) tlsProbe(pp string, pr *Probe) {
	v.enum(pp+".minVersion", pr.MinVersion, "1.2", "1.3")
	if v.written(pp+".minValidity") && pr.MinValidity < 0 {
		v.errf(pp+".minValidity", "minValidity must be 0 or longer")
	}
	if v.written(pp+".caFile") && !strings.HasPrefix(pr.CAFile, "/") && !(len(pr.CAFile) > 2 && pr.CAFile[1] == ':') {
		v.errf(pp+".caFile", "expected an absolute path on the node, got %q", pr.CAFile)
	}
}

// validInterface reports whether n can name a network interface (Linux:
// at most 15 bytes, no slash, no white space).
func validInterface(n string) bool {
	return n != "" && len(n) <= 15 && n != "." && n != ".." && !strings.ContainsAny(n, "/ \t\n:")
}
