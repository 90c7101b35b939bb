package evidence

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/hostcheck"
)

// Kernel is the running kernel and boot.
type Kernel struct {
	Release string `json:"release"`
	Version string `json:"version,omitempty"`
	BootID  string `json:"bootId,omitempty"`
	Uptime  string `json:"uptime,omitempty"`
}

func collectKernelLinux(_ context.Context, h Host, _ Spec) (any, error) {
	var k Kernel
	var errs []error
	if b, err := h.read("/proc/sys/kernel/osrelease"); err == nil {
		k.Release = strings.TrimSpace(string(b))
	} else {
		errs = append(errs, err)
	}
	if b, err := h.read("/proc/sys/kernel/version"); err == nil {
		k.Version = strings.TrimSpace(string(b))
	}
	if b, err := h.read("/proc/sys/kernel/random/boot_id"); err == nil {
		k.BootID, err = ParseBootID(b)
		if err != nil {
			errs = append(errs, err)
		}
	} else {
		errs = append(errs, err)
	}
	if b, err := h.read("/proc/uptime"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			k.Uptime = strings.SplitN(f[0], ".", 2)[0] + "s"
		}
	}
	return k, errors.Join(errs...)
}

// Units is the failed units and the state of the units the plan names.
type Units struct {
	Failed []UnitState `json:"failed"`
	Named  []UnitState `json:"named,omitempty"`
}

func collectFailedUnits(ctx context.Context, h Host, s Spec) (any, error) {
	out, err := h.Run(ctx, "systemctl", "--failed", "--no-legend", "--plain", "--no-pager")
	if err != nil {
		return nil, tool(err)
	}
	u := Units{Failed: ParseSystemctlFailed(out)}
	if u.Failed == nil {
		u.Failed = []UnitState{}
	}
	for _, unit := range s.Units {
		b, err := h.Run(ctx, "systemctl", "show", "-p", "LoadState,ActiveState,SubState,Result", "--", unit)
		if err != nil {
			u.Named = append(u.Named, UnitState{Unit: unit, Active: "unknown: " + err.Error()})
			continue
		}
		m := ParseSystemctlShow(b)
		u.Named = append(u.Named, UnitState{Unit: unit, Load: m["LoadState"], Active: m["ActiveState"], Sub: m["SubState"], Result: m["Result"]})
	}
	return u, nil
}

// UnitLog is the last log lines of one unit.
type UnitLog struct {
	Unit  string `json:"unit"`
	Lines string `json:"lines"`
	Error string `json:"error,omitempty"`
}

func collectUnitLogs(ctx context.Context, h Host, s Spec) (any, error) {
	if len(s.Units) == 0 {
		return nil, nil
	}
	per := max(512, s.MaxSection/len(s.Units)-256)
	var logs []UnitLog
	for _, unit := range s.Units {
		out, err := h.Run(ctx, "journalctl", "-u", unit, "-n", fmt.Sprint(s.JournalLines), "--no-pager", "-o", "short-iso")
		if err != nil && len(out) == 0 {
			if errors.Is(tool(err), errNoTool) {
				return nil, tool(err)
			}
			logs = append(logs, UnitLog{Unit: unit, Error: err.Error()})
			continue
		}
		logs = append(logs, UnitLog{Unit: unit, Lines: TailBytes(LastLines(out, s.JournalLines), per)})
	}
	return logs, nil
}

// Linkage is the dynamic linkage of a service's binary: a unit's (its
// ExecStart) or one the step's linkage probes name (Spec.Binaries),
// resolved as the dynamic loader would (hostcheck.ResolveLinkage: the
// ELF's DT_NEEDED entries, transitively, in the loader's search path;
// nothing is run).
type Linkage struct {
	Unit   string `json:"unit,omitempty"`
	Binary string `json:"binary,omitempty"`
	// Script is set when the path was a script: Binary is then its
	// interpreter.
	Script string `json:"script,omitempty"`
	// Missing lists what does not resolve: "libz.so.1", or for a
	// library needed by another, "libpcre2-8.so.0 (needed by
	// /lib/x86_64-linux-gnu/libselinux.so.1)".
	Missing []string `json:"missing,omitempty"`
	// Libraries maps each library loaded to the path it resolves to.
	Libraries map[string]string `json:"libraries,omitempty"`
	Static    bool              `json:"static,omitempty"`
	Error     string            `json:"error,omitempty"`
}

func collectLinkage(ctx context.Context, h Host, s Spec) (any, error) {
	if len(s.Units)+len(s.Binaries) == 0 {
		return nil, nil
	}
	root := h.Root
	if root == "" {
		root = "/"
	}
	hc := &hostcheck.Host{FS: os.DirFS(root), Run: hostcheck.Runner(h.Run), GOOS: h.GOOS}
	var out []Linkage
	for _, unit := range s.Units {
		l := Linkage{Unit: unit}
		bin, err := hc.UnitBinary(ctx, unit)
		if err != nil {
			l.Error = err.Error()
			out = append(out, l)
			continue
		}
		out = append(out, linkageOf(hc, l, bin))
	}
	for _, bin := range s.Binaries {
		out = append(out, linkageOf(hc, Linkage{}, bin))
	}
	return out, nil
}

func linkageOf(hc *hostcheck.Host, l Linkage, bin string) Linkage {
	l.Binary = bin
	r, err := hc.LinkageOf(bin)
	if err != nil {
		l.Error = err.Error()
		return l
	}
	if r.Script != "" {
		l.Script, l.Binary = r.Script, r.Binary
	}
	l.Libraries, l.Static = r.Libraries, r.Static
	for _, m := range r.Missing {
		if m.NeededBy == r.Binary {
			l.Missing = append(l.Missing, m.Name)
		} else {
			l.Missing = append(l.Missing, m.String())
		}
	}
	return l
}

// Resolver is the resolver configuration and the answers it gives.
type Resolver struct {
	Conf    *ResolvConf `json:"conf,omitempty"`
	Answers []Answer    `json:"answers,omitempty"`
}

// Answer is what the resolver answered for one name.
type Answer struct {
	Name  string   `json:"name"`
	Addrs []string `json:"addrs,omitempty"`
	Error string   `json:"error,omitempty"`
	Took  string   `json:"took"`
}

func collectResolver(ctx context.Context, h Host, s Spec) (any, error) {
	var r Resolver
	var err error
	if b, e := h.read("/etc/resolv.conf"); e == nil {
		c := ParseResolvConf(b)
		r.Conf = &c
	} else if h.GOOS != "windows" {
		err = e
	}
	lookup := h.LookupHost
	if lookup == nil {
		lookup = defaultLookup
	}
	for i, name := range s.Names {
		// Each name gets its share of the collector's time (at most
		// lookupTimeout): a resolver that answers nothing (a server
		// pointing nowhere) must leave an answer that says so, not a
		// section cut off at the collector's timeout.
		per := lookupTimeout
		if d, ok := ctx.Deadline(); ok {
			per = min(per, time.Until(d)/time.Duration(len(s.Names)-i+1))
		}
		lctx, cancel := context.WithTimeout(ctx, per)
		t0 := time.Now()
		addrs, e := lookup(lctx, name)
		cancel()
		a := Answer{Name: name, Addrs: addrs, Took: time.Since(t0).Round(time.Millisecond).String()}
		if e != nil {
			a.Error = e.Error()
		}
		slices.Sort(a.Addrs)
		r.Answers = append(r.Answers, a)
	}
	return r, err
}

// lookupTimeout bounds one name's lookup in the resolver section.
const lookupTimeout = 2 * time.Second

func defaultLookup(ctx context.Context, name string) ([]string, error) {
	return net.DefaultResolver.LookupHost(ctx, name)
}

func collectRoutes(_ context.Context, h Host, _ Spec) (any, error) {
	b, err := h.read("/proc/net/route")
	if err != nil {
		return nil, err
	}
	return ParseProcNetRoute(b)
}

// Interface is a network interface's MTU and state.
type Interface struct {
	Name  string `json:"name"`
	MTU   int    `json:"mtu"`
	State string `json:"state,omitempty"`
}

func collectInterfaces(_ context.Context, h Host, _ Spec) (any, error) {
	dir := h.path("/sys/class/net")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Interface
	for _, e := range ents {
		i := Interface{Name: e.Name()}
		if b, err := os.ReadFile(filepath.Join(dir, e.Name(), "mtu")); err == nil {
			fmt.Sscan(strings.TrimSpace(string(b)), &i.MTU)
		}
		if b, err := os.ReadFile(filepath.Join(dir, e.Name(), "operstate")); err == nil {
			i.State = strings.TrimSpace(string(b))
		}
		out = append(out, i)
	}
	return out, nil
}

func collectMounts(_ context.Context, h Host, _ Spec) (any, error) {
	b, err := h.read("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return hostcheck.ParseMountinfo(b)
}

func collectTime(ctx context.Context, h Host, _ Spec) (any, error) {
	if b, err := h.Run(ctx, "chronyc", "-n", "tracking"); err == nil {
		return ParseChronyTracking(b)
	}
	b, err := h.Run(ctx, "timedatectl", "show")
	if err != nil {
		return nil, fmt.Errorf("neither chronyc nor timedatectl answered: %w", tool(err))
	}
	return ParseTimedatectlShow(b), nil
}

func collectFirewall(ctx context.Context, h Host, _ Spec) (any, error) {
	b, err := h.Run(ctx, "iptables", "-V")
	if err != nil {
		return nil, tool(err)
	}
	return ParseIptablesVersion(b)
}

func collectIO(ctx context.Context, h Host, s Spec) (any, error) {
	a, err := h.read("/proc/diskstats")
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := h.sleep(ctx, s.DiskSample); err != nil {
		return nil, err
	}
	b, err := h.read("/proc/diskstats")
	if err != nil {
		return nil, err
	}
	dt := time.Since(t0)
	if h.Sleep != nil {
		dt = s.DiskSample
	}
	return DiskIOBetween(ParseDiskstats(a), ParseDiskstats(b), dt), nil
}

// TLSResult is a TLS handshake with one endpoint.
type TLSResult struct {
	Endpoint string `json:"endpoint"`
	Version  string `json:"version,omitempty"`
	Cipher   string `json:"cipher,omitempty"`
	// Verified: the chain verified against the node's trust store for
	// the endpoint's name; VerifyError says why not.
	Verified    bool     `json:"verified"`
	VerifyError string   `json:"verifyError,omitempty"`
	Chain       []Cert   `json:"chain,omitempty"`
	Error       string   `json:"error,omitempty"`
	ALPN        string   `json:"alpn,omitempty"`
	Names       []string `json:"names,omitempty"` // leaf DNS names
	// CAFile is the CA bundle the chain was verified with (a tls
	// probe's caFile; empty: the system's roots).
	CAFile string `json:"caFile,omitempty"`
	// raw is the served chain (DER), to verify it again with CAFile.
	raw [][]byte
}

// Cert is one certificate of a served chain.
type Cert struct {
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"notAfter"`
	// ExpiresInDays is negative for an expired certificate.
	ExpiresInDays int `json:"expiresInDays"`
}

// TLSHandshake handshakes with addr, without trusting the answer, then
// verifies the served chain against the system roots for the host name,
// so that an untrusted or expired chain is described, not just refused.
func TLSHandshake(ctx context.Context, addr string) (TLSResult, error) {
	r := TLSResult{Endpoint: addr}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return r, err
	}
	d := tls.Dialer{Config: &tls.Config{ServerName: host, InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}} //nolint:gosec // verified below, to describe a bad chain
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return r, err
	}
	defer c.Close()
	cs := c.(*tls.Conn).ConnectionState()
	r.Version, r.Cipher, r.ALPN = tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), cs.NegotiatedProtocol
	now := time.Now()
	for _, crt := range cs.PeerCertificates {
		r.raw = append(r.raw, crt.Raw)
		r.Chain = append(r.Chain, Cert{Subject: crt.Subject.String(), Issuer: crt.Issuer.String(), NotAfter: crt.NotAfter.UTC(),
			ExpiresInDays: int(crt.NotAfter.Sub(now).Hours() / 24)})
	}
	if len(cs.PeerCertificates) > 0 {
		leaf := cs.PeerCertificates[0]
		r.Names = leaf.DNSNames
		inter := x509.NewCertPool()
		for _, crt := range cs.PeerCertificates[1:] {
			inter.AddCert(crt)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Intermediates: inter}); err != nil {
			r.VerifyError = err.Error()
		} else {
			r.Verified = true
		}
	}
	return r, nil
}

func collectTLS(ctx context.Context, h Host, s Spec) (any, error) {
	if len(s.Endpoints) == 0 {
		return nil, nil
	}
	hs := h.Handshake
	if hs == nil {
		hs = TLSHandshake
	}
	var out []TLSResult
	for _, ep := range s.Endpoints {
		r, err := hs(ctx, ep)
		r.Endpoint = ep
		if err != nil {
			r.Error = err.Error()
		}
		if ca := s.CAFiles[ep]; ca != "" && err == nil {
			r.CAFile = ca
			r.Verified, r.VerifyError = false, ""
			if e := verifyWith(h, ca, ep, r.raw); e != nil {
				r.VerifyError = e.Error()
			} else {
				r.Verified = true
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// verifyWith verifies the chain raw served by ep against the CA bundle
// in file, as a tls probe with caFile does.
func verifyWith(h Host, file, ep string, raw [][]byte) error {
	b, err := h.read(file)
	if err != nil {
		return fmt.Errorf("read the CA bundle: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b) {
		return fmt.Errorf("no certificate in the CA bundle %s", file)
	}
	if len(raw) == 0 {
		return errors.New("no chain served")
	}
	certs := make([]*x509.Certificate, 0, len(raw))
	for _, d := range raw {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return fmt.Errorf("parse the served chain: %w", err)
		}
		certs = append(certs, c)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	host, _, _ := net.SplitHostPort(ep)
	if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter}); err != nil {
		return fmt.Errorf("not verified with %s: %w", file, err)
	}
	return nil
}

func collectConnections(_ context.Context, h Host, _ Spec) (any, error) {
	counts := map[string]int{}
	var errs []error
	for _, p := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := h.read(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ParseProcNetTCP(b, counts)
	}
	if len(errs) == 2 {
		return nil, errors.Join(errs...)
	}
	return counts, nil
}

func collectKernelErrors(ctx context.Context, h Host, s Spec) (any, error) {
	n := fmt.Sprint(s.JournalLines)
	out, err := h.Run(ctx, "journalctl", "-k", "-p", "err", "-n", n, "--no-pager", "-o", "short-iso")
	if err == nil {
		return LastLines(out, s.JournalLines), nil
	}
	out, err2 := h.Run(ctx, "dmesg", "--level=emerg,alert,crit,err", "--time-format=iso")
	if err2 != nil {
		return nil, fmt.Errorf("journalctl: %w; dmesg: %w", tool(err), err2)
	}
	return LastLines(out, s.JournalLines), nil
}

func collectKernelWindows(ctx context.Context, h Host, _ Spec) (any, error) {
	out, err := h.Run(ctx, "cmd", "/c", "ver")
	if err != nil {
		return nil, tool(err)
	}
	return Kernel{Release: strings.TrimSpace(string(out))}, nil
}

func collectServicesWindows(ctx context.Context, h Host, s Spec) (any, error) {
	script := "Get-Service | Where-Object {$_.StartType -eq 'Automatic' -and $_.Status -ne 'Running'} | Select-Object Name,Status | ConvertTo-Json -Compress"
	out, err := h.Run(ctx, "powershell", "-NoProfile", "-NonInteractive", "-Command", script)
	if err != nil {
		return nil, tool(err)
	}
	return string(out), nil
}

func collectEventLogWindows(ctx context.Context, h Host, s Spec) (any, error) {
	out, err := h.Run(ctx, "wevtutil", "qe", "System", "/q:*[System[(Level=1 or Level=2)]]", fmt.Sprintf("/c:%d", s.JournalLines), "/rd:true", "/f:text")
	if err != nil {
		return nil, tool(err)
	}
	return string(out), nil
}

func collectKernelDarwin(ctx context.Context, h Host, _ Spec) (any, error) {
	out, err := h.Run(ctx, "uname", "-rv")
	if err != nil {
		return nil, tool(err)
	}
	k := Kernel{Release: strings.TrimSpace(string(out))}
	if b, err := h.Run(ctx, "sysctl", "-n", "kern.bootsessionuuid"); err == nil {
		k.BootID = strings.TrimSpace(string(b))
	}
	return k, nil
}

func collectUnifiedLogDarwin(ctx context.Context, h Host, s Spec) (any, error) {
	args := []string{"show", "--last", "5m", "--style", "compact", "--predicate", "messageType == error OR messageType == fault"}
	out, err := h.Run(ctx, "log", args...)
	if err != nil {
		return nil, tool(err)
	}
	return LastLines(out, s.JournalLines), nil
}
