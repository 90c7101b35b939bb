// Package pki owns drover's certificate authority: the CA that the server
// creates at its first start (or loads from the operator's files), the
// server certificate for the listen address, the short-lived client
// certificates issued to enrolled agents (CN = node ID), and the CA pin
// (the SHA-256 of its SubjectPublicKeyInfo, as kubeadm's
// --discovery-token-ca-cert-hash) with which an agent checks the server
// before it has a certificate of its own. It holds no state beyond what
// it is given and reads no clock: every time is an argument.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Default lifetimes.
const (
	CALifetime     = 10 * 365 * 24 * time.Hour
	ServerLifetime = 365 * 24 * time.Hour
	ClientLifetime = 24 * time.Hour
	// clockSkew backdates NotBefore so that a node whose clock is a little
	// behind accepts a fresh certificate.
	clockSkew = 5 * time.Minute
)

// Files of a CA kept in a data directory.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
)

// CA is a certificate authority: its certificate and signing key.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	Key     crypto.Signer
}

// NewKey generates an ECDSA P-256 private key.
func NewKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// NewCA creates a self-signed CA named name, valid from now.
func NewCA(name string, now time.Time) (*CA, error) {
	key, err := NewKey()
	if err != nil {
		return nil, fmt.Errorf("ca key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"drover"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: EncodeCert(der), Key: key}, nil
}

// ParseCA reads a CA from its PEM certificate and PEM private key (PKCS#8,
// EC or PKCS#1).
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("ca certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("ca certificate: not a CA (basic constraints)")
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("ca key: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, errors.New("ca key does not match the ca certificate")
	}
	return &CA{Cert: cert, CertPEM: EncodeCert(cert.Raw), Key: key}, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// LoadOrCreate loads the CA from certFile and keyFile when both are set
// (the operator's own CA), else from dir, creating it there (0600 key) at
// the first start.
func LoadOrCreate(dir, certFile, keyFile string, now time.Time) (ca *CA, created bool, err error) {
	if (certFile == "") != (keyFile == "") {
		return nil, false, errors.New("caCert and caKey go together")
	}
	if certFile == "" {
		certFile, keyFile = filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
		if _, err := os.Stat(keyFile); errors.Is(err, os.ErrNotExist) {
			ca, err := NewCA("drover CA", now)
			if err != nil {
				return nil, false, err
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, false, fmt.Errorf("ca: %w", err)
			}
			kp, err := EncodeKey(ca.Key)
			if err != nil {
				return nil, false, err
			}
			if err := WriteFile(keyFile, kp); err != nil {
				return nil, false, err
			}
			if err := WriteFile(certFile, ca.CertPEM); err != nil {
				return nil, false, err
			}
			return ca, true, nil
		}
	}
	c, err := os.ReadFile(certFile)
	if err != nil {
		return nil, false, fmt.Errorf("ca: %w", err)
	}
	k, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, false, fmt.Errorf("ca: %w", err)
	}
	ca, err = ParseCA(c, k)
	if err != nil {
		return nil, false, fmt.Errorf("ca %s: %w", certFile, err)
	}
	return ca, false, nil
}

// WriteFile writes data to path with mode 0600, atomically (a temporary
// file renamed over it).
func WriteFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Hash is the CA pin: "sha256:" and the hex SHA-256 of the CA
// certificate's SubjectPublicKeyInfo.
func (ca *CA) Hash() string { return SPKIHash(ca.Cert) }

// SPKIHash returns "sha256:HEX" of cert's SubjectPublicKeyInfo.
func SPKIHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseHash normalises a CA pin ("sha256:HEX", case-insensitive).
func ParseHash(h string) (string, error) {
	hexPart, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(h)), "sha256:")
	if !ok {
		return "", fmt.Errorf("ca hash %q: want sha256:<64 hex digits>", h)
	}
	b, err := hex.DecodeString(hexPart)
	if err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("ca hash %q: want sha256:<64 hex digits>", h)
	}
	return "sha256:" + hexPart, nil
}

// Pool is a certificate pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// ServerCert issues a server certificate for hosts (DNS names or IP
// addresses), valid from now for ServerLifetime, with the CA appended to
// the chain so that a client pinning the CA's hash finds it.
func (ca *CA) ServerCert(hosts []string, now time.Time) (tls.Certificate, error) {
	key, err := NewKey()
	if err != nil {
		return tls.Certificate{}, err
	}
	sn, err := serial()
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: "drover server"},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(ServerLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// ParseCSR parses a PEM certificate request and checks its signature.
func ParseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("csr: want a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	return csr, nil
}

// ClientCert issues a client certificate for node (its CN) on the CSR's
// public key, valid from now for ttl. The CSR's other fields are ignored:
// the CA decides what the certificate says.
func (ca *CA) ClientCert(csr *x509.CertificateRequest, node string, now time.Time, ttl time.Duration) (*x509.Certificate, error) {
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: node, Organization: []string{"drover:agents"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// VerifyClient checks that cert was issued by the CA for client
// authentication and is valid at now.
func (ca *CA) VerifyClient(cert *x509.Certificate, now time.Time) error {
	_, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

// NewCSR makes a PEM certificate request for cn signed by key.
func NewCSR(key crypto.Signer, cn string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// EncodeCert PEM-encodes a DER certificate.
func EncodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// ParseCert parses the first PEM certificate of data.
func ParseCert(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// EncodeKey PEM-encodes a private key as PKCS#8.
func EncodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseKey parses a PEM private key (PKCS#8, EC or PKCS#1).
func ParseKey(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM private key")
	}
	var k any
	var err error
	switch b.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", k)
	}
	return s, nil
}

// PinnedVerifier returns a tls.Config.VerifyPeerCertificate function for
// a client that does not yet trust the CA by its certificate but by its
// pin: the chain the server sends must hold a CA certificate whose SPKI
// hash is pin, and the leaf must be a server certificate for host issued
// by it. Use it with InsecureSkipVerify (which only disables the default
// verification this replaces).
func PinnedVerifier(pin, host string, now func() time.Time) func(raw [][]byte, _ [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("server sent no certificate")
		}
		certs := make([]*x509.Certificate, 0, len(raw))
		for _, r := range raw {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				return fmt.Errorf("server certificate: %w", err)
			}
			certs = append(certs, c)
		}
		var ca *x509.Certificate
		for _, c := range certs[1:] {
			if c.IsCA && SPKIHash(c) == pin {
				ca = c
			}
		}
		if ca == nil {
			return fmt.Errorf("server's CA does not match the pinned CA hash %s (wrong --ca-hash, or not the drover server you meant)", pin)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, DNSName: host, CurrentTime: now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			return fmt.Errorf("server certificate: %w", err)
		}
		return nil
	}
}
