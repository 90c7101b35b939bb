package release

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// File names of a release's checks, in its output directory.
const (
	SumsFile      = "SHA256SUMS"
	ManifestFile  = "manifest.json"
	SignatureFile = "manifest.json.sig" // raw 64-byte ed25519 signature of manifest.json
	PublicKeyFile = "release.pub"       // PEM PUBLIC KEY (PKIX) of the signing key
)

// Manifest lists a release's artifacts. manifest.json is signed as is:
// the verifier checks the signature over the file's bytes, then each
// artifact's size and SHA-256.
type Manifest struct {
	Version   string     `json:"version"`
	Artifacts []Artifact `json:"artifacts"`
}

// Artifact is one file of a release, named relative to its directory.
type Artifact struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Digest is the size and SHA-256 of the file at path.
func Digest(path string) (Artifact, error) {
	f, err := os.Open(path)
	if err != nil {
		return Artifact{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Artifact{}, fmt.Errorf("%s: %w", path, err)
	}
	return Artifact{Name: filepath.Base(path), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Seal writes SHA256SUMS (sha256sum's format: `sha256sum -c SHA256SUMS`
// checks it), manifest.json, its signature by key and the public key
// into dir, for the artifacts in dir named by paths.
func Seal(dir, version string, paths []string, key ed25519.PrivateKey) error {
	m := Manifest{Version: version}
	var sums bytes.Buffer
	for _, p := range paths {
		if filepath.Dir(p) != filepath.Clean(dir) {
			return fmt.Errorf("release: artifact %s is not in %s", p, dir)
		}
		a, err := Digest(p)
		if err != nil {
			return fmt.Errorf("release: %w", err)
		}
		m.Artifacts = append(m.Artifacts, a)
	}
	slices.SortFunc(m.Artifacts, func(a, b Artifact) int { return strings.Compare(a.Name, b.Name) })
	for _, a := range m.Artifacts {
		fmt.Fprintf(&sums, "%s  %s\n", a.SHA256, a.Name)
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	body = append(body, '\n')
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("release: public key: %w", err)
	}
	for name, data := range map[string][]byte{
		SumsFile: sums.Bytes(), ManifestFile: body, SignatureFile: ed25519.Sign(key, body),
		PublicKeyFile: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("release: %w", err)
		}
	}
	return nil
}

// Verify checks dir's manifest.json against its signature by pub (the
// release's public key, obtained apart from the release: a key shipped
// beside the files proves nothing), then every artifact's size and
// SHA-256. It returns the manifest, or an error naming the first
// artifact or check that failed.
func Verify(dir string, pub ed25519.PublicKey) (Manifest, error) {
	body, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return Manifest{}, fmt.Errorf("verify: %w", err)
	}
	sig, err := os.ReadFile(filepath.Join(dir, SignatureFile))
	if err != nil {
		return Manifest{}, fmt.Errorf("verify: %w", err)
	}
	if !ed25519.Verify(pub, body, sig) {
		return Manifest{}, fmt.Errorf("verify: %s: the signature is not the release key's", ManifestFile)
	}
	var m Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return Manifest{}, fmt.Errorf("verify: %s: %w", ManifestFile, err)
	}
	for _, a := range m.Artifacts {
		if a.Name != filepath.Base(a.Name) || a.Name == "." || a.Name == ".." {
			return m, fmt.Errorf("verify: artifact name %q is not a plain file name", a.Name)
		}
		got, err := Digest(filepath.Join(dir, a.Name))
		if err != nil {
			return m, fmt.Errorf("verify: %w", err)
		}
		if got.Size != a.Size || got.SHA256 != a.SHA256 {
			return m, fmt.Errorf("verify: %s: size %d sha256 %s, the manifest says size %d sha256 %s", a.Name, got.Size, got.SHA256, a.Size, a.SHA256)
		}
	}
	return m, nil
}

// LoadKey reads an ed25519 private key (PEM "PRIVATE KEY", PKCS #8: the
// format of drover artifact's keys and `openssl genpkey -algorithm
// ed25519`). A key file group or others may read is refused.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("release key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("release key %s is accessible by group or others (%v): chmod 600 it", path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("release key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("release key %s: not a PEM PRIVATE KEY", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("release key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("release key %s: want an ed25519 key, got %T", path, k)
	}
	return priv, nil
}

// GenerateKey writes a new ed25519 key to path (0600); it refuses to
// overwrite one.
func GenerateKey(path string) (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("release key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("release key: %w", err)
	}
	werr := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("release key %s: %w", path, werr)
	}
	return priv, nil
}

// LoadPublicKey reads a PEM PUBLIC KEY (release.pub).
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("public key %s: not a PEM PUBLIC KEY", path)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key %s: want an ed25519 key, got %T", path, k)
	}
	return pub, nil
}

// keyOrNew loads the key at path, or makes one there when it does not
// exist and generate is set.
func keyOrNew(path string, generate bool) (ed25519.PrivateKey, bool, error) {
	k, err := LoadKey(path)
	if errors.Is(err, fs.ErrNotExist) && generate {
		k, err = GenerateKey(path)
		return k, true, err
	}
	return k, false, err
}
