package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/auditlog"
	"github.com/drover-dev/drover/internal/store"
)

func getJSON[T any](t *testing.T, h http.Handler, path string) T {
	t.Helper()
	status, e, body := call(t, h, "GET", path, vera, nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s = %d %+v", path, status, e)
	}
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return v
}

// TestAuditLogAPI: the published key checks the signed checkpoint, and
// the tree and record proofs served check out against it.
func TestAuditLogAPI(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	if status, e, _ := call(t, h, "GET", "/v1/audit/checkpoint", vera, nil); status != http.StatusNotFound || e.Code != api.CodeNotFound {
		t.Fatalf("checkpoint of an empty log = %d %+v, want 404 not_found", status, e)
	}
	seedNodes(t, s, 5)

	key := getJSON[api.AuditKey](t, h, "/v1/audit/key")
	v, err := note.NewVerifier(key.Key)
	if err != nil {
		t.Fatalf("published key %q: %v", key.Key, err)
	}
	cp := getJSON[api.AuditCheckpoint](t, h, "/v1/audit/checkpoint")
	tree, err := auditlog.OpenCheckpoint([]byte(cp.Note), v)
	if err != nil || tree.N != 5 || tree.Hash.String() != cp.Root || cp.Size != 5 {
		t.Fatalf("checkpoint %+v: tree %+v, %v", cp, tree, err)
	}
	ver := getJSON[api.AuditVerification](t, h, "/v1/audit/verify")
	if !ver.OK || ver.Checkpoint != 5 || ver.Root != cp.Root {
		t.Fatalf("verify = %+v, want OK at the checkpoint %s", ver, cp.Root)
	}

	entries := getJSON[api.AuditList](t, h, "/v1/audit").Entries
	roots := map[int64]tlog.Hash{5: tree.Hash}
	for _, e := range entries {
		p := getJSON[api.AuditRecordProof](t, h, fmt.Sprintf("/v1/audit/proof/%d", e.Seq))
		hs, err := auditlog.DecodeHashes(p.Proof)
		if err != nil || p.Size != 5 {
			t.Fatalf("record proof %+v: %v", p, err)
		}
		rec := store.AuditRecord(store.AuditEntry{Seq: e.Seq, At: e.At, Actor: e.Actor, Action: e.Action, Object: e.Object,
			Rollout: e.Rollout, Detail: e.Detail})
		if err := tlog.CheckRecord(hs, 5, tree.Hash, e.Seq-1, tlog.RecordHash(rec)); err != nil {
			t.Fatalf("entry %d as served is not in the signed tree: %v", e.Seq, err)
		}
	}
	// Grow the log; the new checkpoint extends the old one.
	seedNodes(t, s, 8)
	cp2 := getJSON[api.AuditCheckpoint](t, h, "/v1/audit/checkpoint")
	tree2, err := auditlog.OpenCheckpoint([]byte(cp2.Note), v)
	if err != nil || tree2.N != 8 {
		t.Fatalf("checkpoint %+v: %v", cp2, err)
	}
	roots[8] = tree2.Hash
	p := getJSON[api.AuditTreeProof](t, h, "/v1/audit/proof?old=5&new=8")
	hs, err := auditlog.DecodeHashes(p.Proof)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckTree(hs, 8, roots[8], 5, roots[5]); err != nil {
		t.Fatalf("tree proof 5 -> 8: %v", err)
	}

	for path, want := range map[string]int{
		"/v1/audit/proof?old=0&new=8":  http.StatusBadRequest,
		"/v1/audit/proof?old=6&new=5":  http.StatusBadRequest,
		"/v1/audit/proof?old=x&new=5":  http.StatusBadRequest,
		"/v1/audit/proof?old=5&new=9":  http.StatusNotFound,
		"/v1/audit/proof/0":            http.StatusBadRequest,
		"/v1/audit/proof/abc":          http.StatusBadRequest,
		"/v1/audit/proof/9":            http.StatusNotFound,
		"/v1/audit/proof/3?size=2":     http.StatusNotFound,
		"/v1/audit/proof/3?size=-1":    http.StatusBadRequest,
		"/v1/audit/proof/3?size=99999": http.StatusNotFound,
	} {
		if status, _, _ := call(t, h, "GET", path, vera, nil); status != want {
			t.Errorf("GET %s = %d, want %d", path, status, want)
		}
	}
	if status, _, _ := call(t, h, "GET", "/v1/audit/key", "", nil); status != http.StatusUnauthorized {
		t.Errorf("key without a token = %d, want 401", status)
	}
}

// TestAuditKeyFile: generated at first start with mode 0600, reused by a
// second server on the same file, refused when others may read it.
func TestAuditKeyFile(t *testing.T) {
	s := newTestServer(t)
	path := filepath.Join(s.cfg.DataDir, "audit.key")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit.key has mode %04o, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "PRIVATE+KEY+"+auditlog.KeyName+"+") {
		t.Fatalf("audit.key holds %q, want a note signer key", data)
	}
	cfg := s.cfg
	cfg.AuditKey = path
	cfg.DataDir = t.TempDir()
	s2, err := New(cfg, Deps{Store: s.st})
	if err != nil {
		t.Fatal(err)
	}
	if s2.auditKey.VKey != s.auditKey.VKey {
		t.Fatal("a second server on the same key file has another key")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, Deps{Store: s.st}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("New with a world-readable key = %v", err)
	}
	cfg.AuditKey = filepath.Join(t.TempDir(), "garbage.key")
	if err := os.WriteFile(cfg.AuditKey, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, Deps{Store: s.st}); err == nil || !strings.Contains(err.Error(), "garbage.key") {
		t.Fatalf("New with a garbage key = %v", err)
	}
}

// TestAuditVerifyTampered: /v1/audit/verify reports an entry inserted
// directly in the database, and the server refuses to sign over it.
func TestAuditVerifyTampered(t *testing.T) {
	s := newTestServer(t)
	h := s.Handler()
	seedNodes(t, s, 3)
	raw, ok := s.st.(interface {
		ExecRaw(ctx context.Context, q string, args ...any) (int64, error)
	})
	if !ok {
		t.Fatal("the SQL store lost ExecRaw, which tamper tests need")
	}
	ctx := context.Background()
	if _, err := raw.ExecRaw(ctx, `UPDATE audit SET actor = ? WHERE seq = ?`, "mallory", 2); err != nil {
		t.Fatal(err)
	}
	v := getJSON[api.AuditVerification](t, h, "/v1/audit/verify")
	if v.OK || v.FirstBad != 2 || !strings.Contains(v.Problem, "edited") {
		t.Fatalf("verify after an edit = %+v", v)
	}
}
