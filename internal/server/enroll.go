package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/pki"
	"github.com/drover-dev/drover/internal/store"
)

// Agents' identity (security.md): an agent enrols once with a
// single-use, expiring enrolment token, sending a CSR for a key it
// generated itself, over TLS whose server certificate it checks against
// the CA hash it was given. It gets a short-lived client certificate
// whose CN is its node ID, renews it with the certificate itself before
// it expires, and from then on is identified by it alone. A certificate
// is accepted only if the CA issued it, it is valid now, and its serial
// is the node's current one in the store (a removed node's, or one
// replaced by a renewal, is refused within certCacheTTL).

// certCacheTTL is how long a node's current serial is trusted without
// asking the store again.
const certCacheTTL = 5 * time.Second

// DefaultClientCertTTL is the lifetime of agents' client certificates.
const DefaultClientCertTTL = 24 * time.Hour

// security is the server's authentication state.
type security struct {
	ca      *pki.CA // nil without TLS
	creds   store.Credentials
	tlsCert tls.Certificate
	limit   *limiter
	proxies []netip.Prefix // Config.TrustedProxies
	floor   []floorRule    // Config.ApprovalFloor, compiled

	mu    sync.Mutex
	certs map[string]cachedCert // node -> current serial
}

type cachedCert struct {
	serial string
	until  time.Time
}

func (s *Server) initSecurity() error {
	sec := &security{certs: map[string]cachedCert{}, limit: newLimiter(authLimit, authLimitWindow)}
	sec.creds, _ = store.AsCredentials(s.st)
	var err error
	if sec.proxies, err = parseTrustedProxies(s.cfg.TrustedProxies); err != nil {
		return err
	}
	if sec.floor, err = compileFloor(s.cfg.ApprovalFloor); err != nil {
		return err
	}
	s.sec = sec
	if s.cfg.AgentToken != "" {
		s.log.Warn("agentToken set: any holder of the shared agent token may act as any node (insecure; for tests and migrations only)")
	}
	if !s.cfg.TLS {
		return nil
	}
	if sec.creds == nil {
		return errors.New("server: TLS and enrolment need a store that keeps credentials")
	}
	ca, created, err := pki.LoadOrCreate(s.cfg.DataDir, s.cfg.CACert, s.cfg.CAKey, s.now())
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if created {
		s.log.Info("created the drover CA", "dir", s.cfg.DataDir, "ca_hash", ca.Hash())
	}
	cert, err := ca.ServerCert(s.serverHosts(), s.now())
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	sec.ca, sec.tlsCert = ca, cert
	return nil
}

// serverHosts are the names of the server certificate: the listen host,
// loopback, this host's name and Config.TLSHosts.
func (s *Server) serverHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(s.cfg.Listen); err == nil && h != "" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
			hosts = append(hosts, h)
		}
	}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	return append(hosts, s.cfg.TLSHosts...)
}

// CAHash is the pin agents pass as --ca-hash; "" without TLS.
func (s *Server) CAHash() string {
	if s.sec.ca == nil {
		return ""
	}
	return s.sec.ca.Hash()
}

// CACertPEM is the CA certificate clients trust; nil without TLS.
func (s *Server) CACertPEM() []byte {
	if s.sec.ca == nil {
		return nil
	}
	return s.sec.ca.CertPEM
}

// TLSConfig is the listener's TLS configuration: the server certificate
// and client certificates requested, not required (users and enrolling
// agents have none). authenticate verifies them against the CA with the
// server's clock. nil without TLS.
func (s *Server) TLSConfig() *tls.Config {
	if s.sec.ca == nil {
		return nil
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{s.sec.tlsCert},
		ClientAuth:   tls.RequestClientCert,
	}
}

func certRefused(format string, args ...any) error {
	return &httpError{status: http.StatusUnauthorized, code: api.CodeUnauthorized, msg: fmt.Sprintf(format, args...)}
}

// authenticateCert identifies an agent by its client certificate.
func (s *Server) authenticateCert(r *http.Request) (identity, error) {
	if s.sec.ca == nil {
		return identity{}, certRefused("client certificates are not accepted: the server runs without its CA")
	}
	cert := r.TLS.PeerCertificates[0]
	node := cert.Subject.CommonName
	if err := s.sec.ca.VerifyClient(cert, s.now()); err != nil {
		return identity{}, certRefused("client certificate of %q refused: %v", node, err)
	}
	if err := fleet.ValidID(node); err != nil {
		return identity{}, certRefused("client certificate names no valid node: %v", err)
	}
	serial := cert.SerialNumber.Text(16)
	cur, err := s.currentSerial(r.Context(), node)
	if errors.Is(err, store.ErrNotFound) {
		return identity{}, certRefused("node %s is not enrolled (removed?); enrol it again with a new token", node)
	}
	if err != nil {
		return identity{}, err
	}
	if cur != serial {
		return identity{}, certRefused("client certificate %s of node %s is not its current one (replaced by a renewal or a new enrolment)", serial, node)
	}
	return identity{user: "agent:" + node, agent: node}, nil
}

// currentSerial returns node's current certificate serial, cached for
// certCacheTTL.
func (s *Server) currentSerial(ctx context.Context, node string) (string, error) {
	now := s.now()
	s.sec.mu.Lock()
	c, ok := s.sec.certs[node]
	s.sec.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.serial, nil
	}
	nc, err := s.sec.creds.NodeCert(ctx, node)
	if err != nil {
		s.forgetCert(node)
		return "", err
	}
	s.sec.mu.Lock()
	s.sec.certs[node] = cachedCert{serial: nc.Serial, until: now.Add(certCacheTTL)}
	s.sec.mu.Unlock()
	return nc.Serial, nil
}

func (s *Server) forgetCert(node string) {
	s.sec.mu.Lock()
	delete(s.sec.certs, node)
	s.sec.mu.Unlock()
}

func (s *Server) clientCertTTL() time.Duration {
	if s.cfg.ClientCertTTL > 0 {
		return s.cfg.ClientCertTTL
	}
	return DefaultClientCertTTL
}

func (s *Server) enrollRoutes(mux *http.ServeMux) {
	s.handle(mux, "POST "+api.PathEnroll, func(w http.ResponseWriter, r *http.Request) {
		if err := s.enroll(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
	s.agentRoute(mux, "POST "+api.PathRenew, s.renew)
}

func (s *Server) issue(csrPEM, node string) (*x509.Certificate, store.NodeCert, error) {
	csr, err := pki.ParseCSR([]byte(csrPEM))
	if err != nil {
		return nil, store.NodeCert{}, badRequest("%v", err)
	}
	now := s.now()
	cert, err := s.sec.ca.ClientCert(csr, node, now, s.clientCertTTL())
	if err != nil {
		return nil, store.NodeCert{}, err
	}
	return cert, store.NodeCert{NodeID: node, Serial: cert.SerialNumber.Text(16), SPKI: pki.SPKIHash(cert),
		NotAfter: cert.NotAfter, IssuedAt: now}, nil
}

// enroll issues a node's first certificate in exchange for an enrolment
// token. Failures count against the token and the caller's address like
// failed logins (authlimit.go): a valid token is never refused for
// others' failures.
func (s *Server) enroll(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set(api.HeaderProtocol, fmt.Sprint(api.ProtocolVersion))
	if s.sec.ca == nil || r.TLS == nil {
		return &httpError{status: http.StatusBadRequest, code: api.CodeBadRequest, msg: "enrolment needs TLS: this server runs without it"}
	}
	var req api.EnrollRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := fleet.ValidID(req.NodeID); err != nil {
		return badRequest("node id %q: %v", req.NodeID, err)
	}
	cred := credKey(req.Token)
	if wait := s.sec.limit.over(cred, s.now()); cred != "" && wait > 0 {
		return rateLimited(w, "with this enrolment token", wait)
	}
	refused := func(msg string) error {
		ip := s.clientIP(r)
		if wait := s.failedAuth(r, s.now(), ip, cred); wait > 0 {
			return rateLimited(w, "from "+ip, wait)
		}
		return &httpError{status: http.StatusUnauthorized, code: api.CodeTokenInvalid, msg: msg}
	}
	if req.Token == "" {
		return refused("enrolment refused: no token")
	}
	cert, nc, err := s.issue(req.CSR, req.NodeID)
	if err != nil {
		return err
	}
	labels, err := s.sec.creds.EnrollNode(r.Context(), tokenHash(req.Token), nc, s.now())
	switch {
	case errors.Is(err, store.ErrTokenInvalid):
		s.log.Warn("enrolment refused", "node", req.NodeID, "remote", s.clientIP(r), "err", err)
		return refused("enrolment refused: " + strings.TrimPrefix(err.Error(), "enrol node "+req.NodeID+": "))
	case errors.Is(err, store.ErrConflict):
		return &httpError{status: http.StatusConflict, code: api.CodeConflict, msg: "enrolment refused", err: err}
	case err != nil:
		return err
	}
	s.forgetCert(req.NodeID)
	s.log.Info("node enrolled", "node", req.NodeID, "serial", nc.Serial, "not_after", nc.NotAfter)
	writeJSON(w, http.StatusOK, api.CertificateResponse{NodeID: req.NodeID, Certificate: string(pki.EncodeCert(cert.Raw)),
		CA: string(s.sec.ca.CertPEM), NotAfter: cert.NotAfter, Labels: labels})
	return nil
}

// renew issues a node a new certificate in exchange for its current one.
func (s *Server) renew(w http.ResponseWriter, r *http.Request, node string) error {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return &httpError{status: http.StatusForbidden, code: api.CodeForbidden, msg: "renewal needs the node's current client certificate"}
	}
	var req api.RenewRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	cert, nc, err := s.issue(req.CSR, node)
	if err != nil {
		return err
	}
	old := r.TLS.PeerCertificates[0].SerialNumber.Text(16)
	if err := s.sec.creds.RenewNodeCert(r.Context(), old, nc); err != nil {
		s.forgetCert(node)
		return err
	}
	s.forgetCert(node)
	s.log.Info("node certificate renewed", "node", node, "serial", nc.Serial, "not_after", nc.NotAfter)
	writeJSON(w, http.StatusOK, api.CertificateResponse{NodeID: node, Certificate: string(pki.EncodeCert(cert.Raw)),
		CA: string(s.sec.ca.CertPEM), NotAfter: cert.NotAfter})
	return nil
}

// enrolledLabels limits an enrolled node's labels to its enrolment
// token's: those keys take the token's values.
func (s *Server) enrolledLabels(ctx context.Context, node string, labels map[string]string) map[string]string {
	if s.sec.creds == nil {
		return labels
	}
	nc, err := s.sec.creds.NodeCert(ctx, node)
	if err != nil || len(nc.Labels) == 0 {
		return labels
	}
	out := map[string]string{}
	for k, v := range labels {
		out[k] = v
	}
	for k, v := range nc.Labels {
		out[k] = v
	}
	return out
}

// removeNode removes a node and revokes its certificate (operator).
func (s *Server) removeNode(w http.ResponseWriter, r *http.Request, id identity) error {
	node := r.PathValue("id")
	if err := s.st.DeleteNode(r.Context(), node, id.user); err != nil {
		return err
	}
	s.forgetCert(node)
	s.beats.forget(node)
	s.wake.forget(node)
	s.wake.broadcast()
	w.WriteHeader(http.StatusNoContent)
	return nil
}
