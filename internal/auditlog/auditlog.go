// Package auditlog holds the pieces of drover's verifiable audit log that
// the server and its clients share: the ed25519 note key a server signs
// checkpoints with (its file format and first-start generation), signed
// checkpoints (a golang.org/x/mod/sumdb/tlog tree head in a
// golang.org/x/mod/sumdb/note signed note) and the wire encoding of
// Merkle proofs. The log itself (entries, hash chain, the tree's stored
// hashes and the checkpoints' table) is internal/store's.
package auditlog

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// KeyName is the name of the keys drover generates; it is part of every
// signature line ("— drover-audit ...").
const KeyName = "drover-audit"

// Key is a server's audit signing key: the signer and the matching
// verifier, and the verifier key text clients pin.
type Key struct {
	Signer   note.Signer
	Verifier note.Verifier
	VKey     string // "name+hash+base64", as note.NewVerifier reads it
}

// ParseKey reads a note signer key ("PRIVATE+KEY+name+hash+base64",
// as note.GenerateKey writes it) and derives its verifier.
func ParseKey(skey string) (*Key, error) {
	skey = strings.TrimSpace(skey)
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("not a note signer key: %w", err)
	}
	// PRIVATE+KEY+name+hash+base64(alg || ed25519 seed)
	// (base64 may hold '+': split off the first four fields only).
	parts := strings.SplitN(skey, "+", 5)
	raw, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, errors.New("not an ed25519 note signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return nil, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	if verifier.KeyHash() != signer.KeyHash() {
		return nil, errors.New("signer key hash does not match its public key")
	}
	return &Key{Signer: signer, Verifier: verifier, VKey: vkey}, nil
}

// LoadOrCreateKey reads the signer key file at path. A missing file is
// generated with note.GenerateKey from rand (mode 0600, its directory
// 0700) and created reports it. Creation is atomic (written aside, then
// hard-linked into place), so servers starting together on one shared
// path end up with one key. A key file that others may read or write is
// refused: whoever reads it can sign a rewritten history.
func LoadOrCreateKey(path string, rand io.Reader) (k *Key, created bool, err error) {
	k, err = loadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	skey, _, err := note.GenerateKey(rand, KeyName)
	if err != nil {
		return nil, false, fmt.Errorf("audit key: generate: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("audit key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".audit-key-*")
	if err != nil {
		return nil, false, fmt.Errorf("audit key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(skey + "\n")
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("audit key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another server created it first: use theirs.
			k, err = loadKey(path)
			return k, false, err
		}
		return nil, false, fmt.Errorf("audit key: %w", err)
	}
	k, err = loadKey(path)
	return k, err == nil, err
}

func loadKey(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	defer f.Close()
	if runtime.GOOS != "windows" {
		fi, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("audit key: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("audit key %s: mode %04o lets others read or write it; run chmod 600 %s", path, fi.Mode().Perm(), path)
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	k, err := ParseKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("audit key %s: %w", path, err)
	}
	return k, nil
}

// SignCheckpoint signs the tree head t: the note's text is
// tlog.FormatTree(t).
func SignCheckpoint(s note.Signer, t tlog.Tree) ([]byte, error) {
	msg, err := note.Sign(&note.Note{Text: string(tlog.FormatTree(t))}, s)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint %d: %w", t.N, err)
	}
	return msg, nil
}

// OpenCheckpoint verifies that msg is a checkpoint signed by v and
// returns its tree head. Signatures by other keys are ignored; at least
// one by v is required.
func OpenCheckpoint(msg []byte, v note.Verifier) (tlog.Tree, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			return tlog.Tree{}, fmt.Errorf("not signed by the audit key %s", KeyID(v))
		}
		return tlog.Tree{}, fmt.Errorf("checkpoint: %w", err)
	}
	t, err := tlog.ParseTree([]byte(n.Text))
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("checkpoint: %w", err)
	}
	return t, nil
}

// ParseCheckpoint returns the tree head of msg without checking any
// signature (for display, and for stores holding no key).
func ParseCheckpoint(msg []byte) (tlog.Tree, error) {
	text, _, ok := bytes.Cut(msg, []byte("\n\n"))
	if !ok {
		return tlog.Tree{}, errors.New("checkpoint: not a signed note")
	}
	t, err := tlog.ParseTree(append(text, '\n'))
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("checkpoint: %w", err)
	}
	return t, nil
}

// KeyID names a verifier for messages: "name+hash" (hash in hex, as in
// the verifier key text).
func KeyID(v note.Verifier) string { return fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash()) }

// EncodeHashes encodes a proof (or any hashes) for the wire: standard
// base64, one string per hash.
func EncodeHashes(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

// MaxProofHashes bounds a decoded proof: a proof in a tree of 2^63
// leaves has at most 2*63 hashes.
const MaxProofHashes = 128

// DecodeHashes decodes EncodeHashes's output.
func DecodeHashes(ss []string) ([]tlog.Hash, error) {
	if len(ss) > MaxProofHashes {
		return nil, fmt.Errorf("proof has %d hashes, more than any tree needs", len(ss))
	}
	out := make([]tlog.Hash, len(ss))
	for i, s := range ss {
		h, err := tlog.ParseHash(s)
		if err != nil {
			return nil, fmt.Errorf("proof hash %d: %w", i, err)
		}
		out[i] = h
	}
	return out, nil
}
