package artifact

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Roles are the four top-level TUF roles, each with its own key.
var roles = [...]string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP}

// keyFile is where role's private key is kept in the keys directory.
func keyFile(dir, role string) string { return filepath.Join(dir, role+".key") }

// generateKey creates role's ed25519 key in dir (0600, dir 0700). It
// refuses to overwrite an existing key: losing the root key loses the
// repository.
func generateKey(dir, role string) (ed25519.PrivateKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keys directory: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", role, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode %s key: %w", role, err)
	}
	f, err := os.OpenFile(keyFile(dir, role), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s key: %w", role, err)
	}
	werr := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("write %s key: %w", role, werr)
	}
	return priv, nil
}

// loadKey reads role's private key from dir. A key file that group or
// others may read is refused, as ssh does.
func loadKey(dir, role string) (ed25519.PrivateKey, error) {
	path := keyFile(dir, role)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s key %s not found (is --keys the offline keys directory?): %w", role, path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s key: %w", role, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s key %s is accessible by group or others (%v): chmod 600 it", role, path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s key: %w", role, err)
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s key %s: not a PEM PRIVATE KEY", role, path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s key %s: %w", role, path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s key %s: want an ed25519 key, got %T", role, path, k)
	}
	return priv, nil
}

// publicKey is priv's public half as TUF key metadata.
func publicKey(priv ed25519.PrivateKey) (*metadata.Key, error) {
	return metadata.KeyFromPublicKey(priv.Public())
}

// sign replaces m's signatures with one by priv.
func sign[T metadata.Roles](m *metadata.Metadata[T], priv ed25519.PrivateKey) error {
	s, err := signature.LoadED25519Signer(priv)
	if err != nil {
		return err
	}
	m.ClearSignatures()
	_, err = m.Sign(s)
	return err
}
