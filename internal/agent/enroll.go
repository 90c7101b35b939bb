package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/pki"
)

// Files of the agent's TLS identity, in StateDir/tls (0700; files 0600).
const (
	tlsDir       = "tls"
	identityFile = "identity.pem" // the client certificate and its key, written together
	caFile       = "ca.pem"       // the server's CA, learnt at enrolment through the pinned hash
)

// IdentityOptions configure an agent's TLS identity (security.md).
type IdentityOptions struct {
	ServerURL string // https://...
	StateDir  string
	NodeID    string
	// EnrollToken and CAHash are needed only when the state directory
	// holds no identity yet: the agent then enrols, checking the server
	// against CAHash ("sha256:..." of the CA's public key).
	EnrollToken string
	CAHash      string
	Logger      *slog.Logger
	Now         func() time.Time // nil: time.Now
}

// Identity is an enrolled agent's client certificate, renewed before it
// expires. Its HTTPClient presents the current certificate and trusts
// only the server's CA.
type Identity struct {
	o   IdentityOptions
	log *slog.Logger

	mu    sync.Mutex
	cert  tls.Certificate
	roots *x509.CertPool
	tr    *http.Transport // for the current certificate; replaced on renewal
}

// LoadOrEnroll loads the identity kept in StateDir, or enrols with the
// enrolment token when there is none. Enrolment generates the key on the
// node; only a CSR leaves it.
func LoadOrEnroll(ctx context.Context, o IdentityOptions) (*Identity, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(o.ServerURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("agent identity: server URL %q: client certificates need https://HOST:PORT", o.ServerURL)
	}
	id := &Identity{o: o, log: o.Logger}
	dir := filepath.Join(o.StateDir, tlsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("agent identity: %w", err)
	}
	idPEM, err1 := os.ReadFile(filepath.Join(dir, identityFile))
	caPEM, err2 := os.ReadFile(filepath.Join(dir, caFile))
	if err1 == nil && err2 == nil {
		if err := id.set(idPEM, caPEM); err != nil {
			return nil, fmt.Errorf("agent identity in %s: %w", dir, err)
		}
		if cn := id.leaf().Subject.CommonName; cn != o.NodeID {
			return nil, fmt.Errorf("agent identity in %s is node %q's, not %q", dir, cn, o.NodeID)
		}
		if !o.Now().Before(id.leaf().NotAfter) {
			return nil, fmt.Errorf("agent identity in %s expired at %s: an operator must remove node %s (DELETE /v1/nodes/ID) and enrol it again with a new token",
				dir, id.leaf().NotAfter.Format(time.RFC3339), o.NodeID)
		}
		return id, nil
	}
	if !errors.Is(err1, os.ErrNotExist) && err1 != nil {
		return nil, fmt.Errorf("agent identity: %w", err1)
	}
	if o.EnrollToken == "" || o.CAHash == "" {
		return nil, errors.New("agent identity: not enrolled yet: --enroll-token and --ca-hash are required")
	}
	pin, err := pki.ParseHash(o.CAHash)
	if err != nil {
		return nil, fmt.Errorf("agent identity: %w", err)
	}
	key, err := pki.NewKey()
	if err != nil {
		return nil, err
	}
	csr, err := pki.NewCSR(key, o.NodeID)
	if err != nil {
		return nil, err
	}
	// Before enrolment the server is trusted through the pinned CA hash
	// alone; InsecureSkipVerify only hands verification to the pin check.
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12,
		InsecureSkipVerify: true, VerifyPeerCertificate: pki.PinnedVerifier(pin, u.Hostname(), o.Now)}}
	defer tr.CloseIdleConnections()
	var resp api.CertificateResponse
	if err := post(ctx, &http.Client{Transport: tr, Timeout: time.Minute}, o.ServerURL+api.PathEnroll,
		api.EnrollRequest{Token: o.EnrollToken, NodeID: o.NodeID, CSR: string(csr)}, &resp); err != nil {
		return nil, fmt.Errorf("enrol node %s: %w", o.NodeID, err)
	}
	ca, err := pki.ParseCert([]byte(resp.CA))
	if err != nil || pki.SPKIHash(ca) != pin {
		return nil, fmt.Errorf("enrol node %s: the server answered with a CA that does not match the pinned hash", o.NodeID)
	}
	if err := id.store(key, []byte(resp.Certificate), []byte(resp.CA)); err != nil {
		return nil, err
	}
	id.log.Info("enrolled", "node", o.NodeID, "not_after", resp.NotAfter)
	return id, nil
}

// store checks and writes a new certificate and its key (one file, one
// atomic write), then uses them.
func (id *Identity) store(key crypto.Signer, certPEM, caPEM []byte) error {
	kp, err := pki.EncodeKey(key)
	if err != nil {
		return err
	}
	idPEM := append(append([]byte{}, certPEM...), kp...)
	if err := id.set(idPEM, caPEM); err != nil {
		return fmt.Errorf("agent identity: server's answer: %w", err)
	}
	dir := filepath.Join(id.o.StateDir, tlsDir)
	if err := pki.WriteFile(filepath.Join(dir, caFile), caPEM); err != nil {
		return err
	}
	return pki.WriteFile(filepath.Join(dir, identityFile), idPEM)
}

// set parses and uses an identity: a new transport for the new
// certificate, the old one's idle connections closed (connections keep
// the certificate of their handshake, which a renewal makes stale).
func (id *Identity) set(idPEM, caPEM []byte) error {
	cert, err := tls.X509KeyPair(idPEM, idPEM)
	if err != nil {
		return err
	}
	ca, err := pki.ParseCert(caPEM)
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second,
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, Certificates: []tls.Certificate{cert}}}
	id.mu.Lock()
	old := id.tr
	id.cert, id.roots, id.tr = cert, roots, tr
	id.mu.Unlock()
	if old != nil {
		old.CloseIdleConnections()
	}
	return nil
}

func (id *Identity) leaf() *x509.Certificate {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.cert.Leaf
}

// NotAfter is when the current certificate expires.
func (id *Identity) NotAfter() time.Time { return id.leaf().NotAfter }

// HTTPClient is the agent's client: it presents the current certificate
// (switching to a renewed one for new requests) and trusts only the CA.
func (id *Identity) HTTPClient() *http.Client { return &http.Client{Transport: id} }

// RoundTrip sends req on the current certificate's transport.
func (id *Identity) RoundTrip(req *http.Request) (*http.Response, error) {
	id.mu.Lock()
	tr := id.tr
	id.mu.Unlock()
	return tr.RoundTrip(req)
}

// Renew replaces the certificate with a new one, for a new key,
// authenticating with the current one.
func (id *Identity) Renew(ctx context.Context) error {
	key, err := pki.NewKey()
	if err != nil {
		return err
	}
	csr, err := pki.NewCSR(key, id.o.NodeID)
	if err != nil {
		return err
	}
	var resp api.CertificateResponse
	if err := post(ctx, &http.Client{Transport: id, Timeout: time.Minute}, id.o.ServerURL+api.PathRenew,
		api.RenewRequest{CSR: string(csr)}, &resp); err != nil {
		return fmt.Errorf("renew certificate of node %s: %w", id.o.NodeID, err)
	}
	if err := id.store(key, []byte(resp.Certificate), []byte(resp.CA)); err != nil {
		return err
	}
	id.log.Info("certificate renewed", "node", id.o.NodeID, "not_after", resp.NotAfter)
	return nil
}

// RenewLoop renews the certificate when two thirds of its lifetime have
// passed, retrying failures every minute (or sooner near expiry), until
// ctx ends.
func (id *Identity) RenewLoop(ctx context.Context) error {
	for {
		leaf := id.leaf()
		life := leaf.NotAfter.Sub(leaf.NotBefore)
		at := leaf.NotBefore.Add(life * 2 / 3)
		t := time.NewTimer(max(at.Sub(id.o.Now()), 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		for {
			err := id.Renew(ctx)
			if err == nil {
				break
			}
			id.log.Error("certificate renewal failed", "node", id.o.NodeID, "not_after", leaf.NotAfter, "err", err)
			wait := min(time.Minute, max(leaf.NotAfter.Sub(id.o.Now())/10, time.Second))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
	}
}

// post sends in as JSON and decodes a 2xx answer into out.
func post(ctx context.Context, c *http.Client, u string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.HeaderProtocol, strconv.Itoa(api.ProtocolVersion))
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		se := &ServerError{Path: req.URL.Path, Status: resp.StatusCode}
		var eb api.Error
		if json.Unmarshal(b, &eb) == nil {
			se.Message, se.Code = eb.Error, eb.Code
		}
		return se
	}
	return json.Unmarshal(b, out)
}
