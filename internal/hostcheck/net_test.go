package hostcheck

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/drover-dev/drover/internal/plan"
)

// serveDNS answers A queries for the names in answers over UDP on
// 127.0.0.1, NXDOMAIN for any other name; it returns the address.
func serveDNS(t *testing.T, answers map[string][]netip.Addr) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var m dnsmessage.Message
			if err := m.Unpack(buf[:n]); err != nil || len(m.Questions) != 1 {
				continue
			}
			q := m.Questions[0]
			resp := dnsmessage.Message{Header: dnsmessage.Header{ID: m.ID, Response: true, Authoritative: true, RecursionAvailable: true},
				Questions: m.Questions}
			addrs, ok := answers[strings.TrimSuffix(q.Name.String(), ".")]
			if !ok {
				resp.RCode = dnsmessage.RCodeNameError
			}
			for _, a := range addrs {
				h := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
				switch {
				case a.Is4() && q.Type == dnsmessage.TypeA:
					h.Type = dnsmessage.TypeA
					resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AResource{A: a.As4()}})
				case a.Is6() && q.Type == dnsmessage.TypeAAAA:
					h.Type = dnsmessage.TypeAAAA
					resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: h, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
				}
			}
			out, err := resp.Pack()
			if err == nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

func TestDNS(t *testing.T) {
	srv := serveDNS(t, map[string][]netip.Addr{"db.internal.example": {netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")}})
	ctx := context.Background()
	h := &Host{GOOS: "linux"}
	p := plan.Probe{Kind: plan.ProbeDNS, Lookup: "db.internal.example", Server: srv, Timeout: plan.Duration(2 * time.Second)}
	if err := h.Check(ctx, p, nil); err != nil {
		t.Errorf("resolves: %v", err)
	}
	p.Expect = []string{"10.0.0.5", "fd00::5"}
	if err := h.Check(ctx, p, nil); err != nil {
		t.Errorf("resolves to expected: %v", err)
	}
	p.Expect = []string{"10.0.0.6"}
	if err := h.Check(ctx, p, nil); err == nil || !strings.Contains(err.Error(), "missing 10.0.0.6") {
		t.Errorf("wrong answer: got %v", err)
	}
	p.Expect, p.Lookup = nil, "nope.internal.example"
	if err := h.Check(ctx, p, nil); err == nil || err.Error() != "nope.internal.example does not resolve via "+srv+": no such name" {
		t.Errorf("NXDOMAIN: got %v", err)
	}
	// A resolver pointing nowhere: a UDP port nobody reads.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	p.Lookup, p.Server = "db.internal.example", dead.LocalAddr().String()
	if err := h.Check(tctx, p, nil); err == nil || !strings.Contains(err.Error(), "no answer in time") {
		t.Errorf("dead resolver: got %v", err)
	}
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, cn string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf is a server certificate for 127.0.0.1 and api.internal.example,
// valid from notBefore to notAfter.
func (ca testCA) leaf(t *testing.T, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "api.internal.example"},
		NotBefore: notBefore, NotAfter: notAfter, DNSNames: []string{"api.internal.example"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serveTLS starts an HTTPS server with cert, speaking TLS up to maxVer.
func serveTLS(t *testing.T, cert tls.Certificate, maxVer uint16) string {
	t.Helper()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: maxVer}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

func TestTLS(t *testing.T) {
	ctx := context.Background()
	ca, other := newCA(t, "drover test CA"), newCA(t, "another CA")
	dir := t.TempDir()
	caFile, otherFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "other.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(otherFile, other.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	good := serveTLS(t, ca.leaf(t, now.Add(-time.Hour), now.Add(90*24*time.Hour)), 0)
	soon := serveTLS(t, ca.leaf(t, now.Add(-time.Hour), now.Add(3*24*time.Hour)), 0)
	expired := serveTLS(t, ca.leaf(t, now.Add(-48*time.Hour), now.Add(-time.Hour)), 0)
	tls12 := serveTLS(t, ca.leaf(t, now.Add(-time.Hour), now.Add(90*24*time.Hour)), tls.VersionTLS12)
	h := &Host{GOOS: "linux"}
	week := plan.Duration(7 * 24 * time.Hour)
	for _, c := range []struct {
		name string
		p    plan.Probe
		want string // "" passes; else a part of the reason
	}{
		{"verifies", plan.Probe{Address: good, CAFile: caFile, MinValidity: week}, ""},
		{"SNI name", plan.Probe{Address: good, CAFile: caFile, ServerName: "api.internal.example"}, ""},
		{"wrong name", plan.Probe{Address: good, CAFile: caFile, ServerName: "db.internal.example"}, "certificate not valid for db.internal.example"},
		{"CA bundle replaced", plan.Probe{Address: good, CAFile: otherFile}, "not signed by a CA in " + otherFile},
		{"near expiry", plan.Probe{Address: soon, CAFile: caFile, MinValidity: week}, `certificate "api.internal.example" expires`},
		{"near expiry, no bound", plan.Probe{Address: soon, CAFile: caFile}, ""},
		{"expired", plan.Probe{Address: expired, CAFile: caFile}, "expired or not yet valid"},
		{"1.2 server, 1.2 asked", plan.Probe{Address: tls12, CAFile: caFile, MinVersion: "1.2"}, ""},
		{"1.2 server, 1.3 asked", plan.Probe{Address: tls12, CAFile: caFile, MinVersion: "1.3"}, "server does not speak TLS 1.3 or later"},
		{"no CA file", plan.Probe{Address: good, CAFile: filepath.Join(dir, "gone.pem")}, "CA bundle: open"},
		{"system roots", plan.Probe{Address: good}, "not signed by a CA in the system's CA bundle"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.p.Kind = plan.ProbeTLS
			err := h.Check(ctx, c.p, nil)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("got %v, want pass", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}
