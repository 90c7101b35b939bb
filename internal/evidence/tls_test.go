package evidence

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTLSWithCAFile: an endpoint a tls probe verifies with its own CA
// bundle is verified with that bundle, against a real TLS server: with
// the server's CA it verifies; with the bundle replaced by a file that
// holds no CA of the chain, the section says so and names the file.
func TestTLSWithCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	ep := strings.TrimPrefix(srv.URL, "https://")
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(der []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, "etc", "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := Host{GOOS: "linux", Root: root}
	spec := Spec{Endpoints: []string{ep}, CAFiles: map[string]string{ep: "/etc/ca.pem"}}
	run := func() TLSResult {
		t.Helper()
		v, err := collectTLS(context.Background(), h, spec)
		if err != nil {
			t.Fatal(err)
		}
		rs := v.([]TLSResult)
		if len(rs) != 1 || rs[0].Endpoint != ep || rs[0].CAFile != "/etc/ca.pem" || rs[0].Error != "" || len(rs[0].Chain) == 0 {
			t.Fatalf("tls %+v", rs)
		}
		return rs[0]
	}
	write(srv.Certificate().Raw)
	if r := run(); !r.Verified || r.VerifyError != "" {
		t.Errorf("with the server's CA: %+v", r)
	}
	write(selfSigned(t))
	if r := run(); r.Verified || !strings.Contains(r.VerifyError, "not verified with /etc/ca.pem") || !strings.Contains(r.VerifyError, "unknown authority") {
		t.Errorf("with the bundle replaced: %+v", r)
	}
}

// selfSigned is the DER of a fresh self-signed CA, not in any chain.
func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
