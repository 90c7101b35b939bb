package hostcheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/plan"
)

// checkDNS resolves p.Lookup with the node's resolver (or p.Server) and,
// when p.Expect is given, fails unless every expected address is among
// the answers.
func checkDNS(ctx context.Context, p plan.Probe) error {
	r := net.DefaultResolver
	via := "the node's resolver"
	if p.Server != "" {
		addr := p.Server
		if ap, err := netip.ParseAddr(addr); err == nil {
			addr = netip.AddrPortFrom(ap, 53).String()
		}
		via = addr
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
	}
	got, err := r.LookupHost(ctx, p.Lookup)
	if err != nil {
		var de *net.DNSError
		switch {
		case errors.As(err, &de) && de.IsNotFound:
			return fmt.Errorf("%s does not resolve via %s: no such name", p.Lookup, via)
		case errors.As(err, &de) && de.IsTimeout, ctx.Err() != nil:
			return fmt.Errorf("%s does not resolve via %s: no answer in time", p.Lookup, via)
		case errors.As(err, &de):
			return fmt.Errorf("%s does not resolve via %s: %s", p.Lookup, via, de.Err)
		}
		return fmt.Errorf("%s does not resolve via %s: %w", p.Lookup, via, err)
	}
	var have []netip.Addr
	for _, a := range got {
		if ip, err := netip.ParseAddr(a); err == nil {
			have = append(have, ip.Unmap())
		}
	}
	var missing []string
	for _, e := range p.Expect {
		ip, err := netip.ParseAddr(e)
		if err != nil || !slices.Contains(have, ip.Unmap()) {
			missing = append(missing, e)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s resolves to %s via %s, missing %s", p.Lookup, strings.Join(got, ", "), via, strings.Join(missing, ", "))
	}
	return nil
}

// TLS versions a tls probe may ask for.
var tlsVersions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// checkTLS completes a handshake with p.Address: the chain must verify
// against p.CAFile (or the system's roots) for p.ServerName (or the
// address's host) at TLS p.MinVersion or later, and every certificate
// of the verified chain must stay valid for p.MinValidity.
func (h *Host) checkTLS(ctx context.Context, p plan.Probe) error {
	host, _, err := net.SplitHostPort(p.Address)
	if err != nil {
		return fmt.Errorf("address: %w", err)
	}
	cfg := &tls.Config{ServerName: p.ServerName, Time: h.now}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	ver := p.MinVersion
	if ver == "" {
		ver = plan.DefaultTLSMinVersion
	}
	v, ok := tlsVersions[ver]
	if !ok {
		return fmt.Errorf("unknown minVersion %q (want 1.2 or 1.3)", ver)
	}
	cfg.MinVersion = v
	roots := "the system's CA bundle"
	if p.CAFile != "" {
		var b []byte
		if h.FS != nil {
			b, err = fs.ReadFile(h.FS, strings.TrimPrefix(p.CAFile, "/"))
		} else {
			b, err = os.ReadFile(p.CAFile)
		}
		if err != nil {
			return fmt.Errorf("CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return fmt.Errorf("CA bundle %s holds no PEM certificate", p.CAFile)
		}
		cfg.RootCAs = pool
		roots = p.CAFile
	}
	d := &tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", p.Address)
	if err != nil {
		return tlsError(ctx, err, cfg.ServerName, roots, ver)
	}
	defer c.Close()
	st := c.(*tls.Conn).ConnectionState()
	if len(st.VerifiedChains) == 0 {
		return errors.New("handshake done but no verified chain")
	}
	return ChainValidFor(st.VerifiedChains[0], h.now(), p.MinValidity.D())
}

// ChainValidFor fails when a certificate of chain expires within d of
// now, naming the first to expire.
func ChainValidFor(chain []*x509.Certificate, now time.Time, d time.Duration) error {
	var first *x509.Certificate
	for _, c := range chain {
		if first == nil || c.NotAfter.Before(first.NotAfter) {
			first = c
		}
	}
	if first == nil || !first.NotAfter.Before(now.Add(d)) {
		return nil
	}
	return fmt.Errorf("certificate %q expires %s, within the %s minValidity", first.Subject.CommonName,
		first.NotAfter.UTC().Format(time.RFC3339), d)
}

// tlsError says why a handshake failed in the operator's terms.
func tlsError(ctx context.Context, err error, name, roots, ver string) error {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var hn x509.HostnameError
	var alert tls.AlertError
	switch {
	case ctx.Err() != nil:
		return errors.New("no handshake in time")
	case errors.As(err, &ua):
		return fmt.Errorf("certificate of %s not signed by a CA in %s", name, roots)
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return fmt.Errorf("certificate of %s expired or not yet valid: %s", name, ci.Detail)
	case errors.As(err, &ci):
		return fmt.Errorf("certificate of %s invalid: %w", name, ci)
	case errors.As(err, &hn):
		return fmt.Errorf("certificate not valid for %s", name)
	case errors.As(err, &alert) && alert == 70: // protocol_version
		return fmt.Errorf("server does not speak TLS %s or later", ver)
	case strings.Contains(err.Error(), "protocol version"):
		return fmt.Errorf("server does not speak TLS %s or later", ver)
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return fmt.Errorf("connect: %w", oe.Err)
	}
	return fmt.Errorf("handshake: %w", err)
}
