package server

// The verifiable audit log's API: signed checkpoints of the audit log's
// Merkle tree, consistency and inclusion proofs, and the public key that
// checks the signatures.
//
// The key: an ed25519 note signer key (golang.org/x/mod/sumdb/note) in
// the file Config.AuditKey, by default DATADIR/audit.key, generated at
// first start (mode 0600). The server gives it to the store, which signs
// a checkpoint in every transaction that appends audit entries (see
// internal/store/audittree.go). Several servers sharing one PostgreSQL
// must share one key file (copy it, mode 0600, before starting the
// second server): a server whose key did not sign the latest checkpoint
// refuses to append (store.ErrAuditTampered). Rotating the key: stop the
// servers, install the new key everywhere, delete the rows of
// audit_checkpoints and start again; the first append adopts the log
// (an audit.adopt entry says so) and clients must pin the new key
// (drover audit verify --key).

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/auditlog"
)

// auditKeyPath is the audit key file: Config.AuditKey, else
// DATADIR/audit.key; "" when neither is set.
func (c *Config) auditKeyPath() string {
	if c.AuditKey != "" {
		return c.AuditKey
	}
	if c.DataDir != "" {
		return filepath.Join(c.DataDir, "audit.key")
	}
	return ""
}

// initAuditKey loads the audit key (generating it at first start) and
// gives it to the store.
func (s *Server) initAuditKey() error {
	path := s.cfg.auditKeyPath()
	if path == "" {
		return errors.New("invalid configuration: auditKey: no dataDir to keep audit.key in; set auditKey")
	}
	k, created, err := auditlog.LoadOrCreateKey(path, rand.Reader)
	if err != nil {
		return err
	}
	if created {
		s.log.Info("audit key generated; servers sharing this database must share it", "path", path, "key", k.VKey)
	}
	s.auditKey = k
	s.st.SetAuditKey(k)
	return nil
}

func (s *Server) auditLogRoutes(mux *http.ServeMux) {
	s.route(mux, "GET /v1/audit/key", RoleViewer, s.auditPublicKey)
	s.route(mux, "GET /v1/audit/checkpoint", RoleViewer, s.auditCheckpoint)
	s.route(mux, "GET /v1/audit/proof", RoleViewer, s.auditTreeProof)
	s.route(mux, "GET /v1/audit/proof/{seq}", RoleViewer, s.auditRecordProof)
}

func (s *Server) auditPublicKey(w http.ResponseWriter, _ *http.Request, _ identity) error {
	writeJSON(w, http.StatusOK, api.AuditKey{Key: s.auditKey.VKey})
	return nil
}

func (s *Server) auditCheckpoint(w http.ResponseWriter, r *http.Request, _ identity) error {
	c, err := s.st.LatestAuditCheckpoint(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.AuditCheckpoint{Size: c.Size, Root: c.Root.String(), Note: string(c.Note), At: c.At})
	return nil
}

// signedSize is the size of the latest signed checkpoint: proofs are
// served only up to it.
func (s *Server) signedSize(r *http.Request) (int64, error) {
	c, err := s.st.LatestAuditCheckpoint(r.Context())
	if err != nil {
		return 0, err
	}
	return c.Size, nil
}

func (s *Server) auditTreeProof(w http.ResponseWriter, r *http.Request, _ identity) error {
	q := r.URL.Query()
	oldSize, err1 := strconv.ParseInt(q.Get("old"), 10, 64)
	newSize, err2 := strconv.ParseInt(q.Get("new"), 10, 64)
	if err1 != nil || err2 != nil || oldSize < 1 || oldSize > newSize {
		return badRequest("old %q, new %q: want tree sizes 1 <= old <= new", q.Get("old"), q.Get("new"))
	}
	signed, err := s.signedSize(r)
	if err != nil {
		return err
	}
	if newSize > signed {
		return &httpError{status: http.StatusNotFound, code: api.CodeNotFound,
			msg: fmt.Sprintf("new %d: the latest signed checkpoint has %d entries", newSize, signed)}
	}
	p, err := s.st.AuditTreeProof(r.Context(), oldSize, newSize)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.AuditTreeProof{Old: oldSize, New: newSize, Proof: auditlog.EncodeHashes(p)})
	return nil
}

func (s *Server) auditRecordProof(w http.ResponseWriter, r *http.Request, _ identity) error {
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil || seq < 1 {
		return badRequest("entry %q: want a sequence number", r.PathValue("seq"))
	}
	signed, err := s.signedSize(r)
	if err != nil {
		return err
	}
	size := signed
	if v := r.URL.Query().Get("size"); v != "" {
		if size, err = strconv.ParseInt(v, 10, 64); err != nil || size < 1 {
			return badRequest("size %q: want a tree size", v)
		}
	}
	if size > signed || seq > size {
		return &httpError{status: http.StatusNotFound, code: api.CodeNotFound,
			msg: fmt.Sprintf("entry %d in a tree of size %d: the latest signed checkpoint has %d entries", seq, size, signed)}
	}
	p, err := s.st.AuditRecordProof(r.Context(), seq, size)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.AuditRecordProof{Seq: seq, Size: size, Proof: auditlog.EncodeHashes(p)})
	return nil
}
