package cli

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/internal/fleet"
	"github.com/drover-dev/drover/internal/server"
	"github.com/drover-dev/drover/internal/store"
	"github.com/drover-dev/drover/internal/store/storetest"
)

// auditServer is a real server on SQLite, run in-process, and the store
// under it (to write through, and to tamper with).
type auditServer struct {
	url string
	st  storetest.Backend
}

func startAuditServer(t *testing.T) *auditServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := server.DefaultConfig()
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", t.TempDir()
	cfg.AgentToken = "agent-token-0123456789"
	cfg.Users = []server.User{{Name: "vera", Role: server.RoleViewer, Token: "vera-token-0123456789a"}}
	st, err := store.Open(ctx, filepath.Join(cfg.DataDir, "drover.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(cfg, server.Deps{Store: st, Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, func(a string) { addr <- a }) }()
	t.Cleanup(func() {
		cancel()
		<-done
		st.Close()
	})
	a := &auditServer{url: "http://" + <-addr, st: st.(storetest.Backend)}
	// The server's election is its first entry.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if es, _ := st.ListAudit(ctx, 0, 1, ""); len(es) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server wrote no audit entry within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return a
}

// write appends n audit entries through the store (node registrations).
func (a *auditServer) write(t *testing.T, prefix string, n int) {
	t.Helper()
	now := time.Now()
	for i := range n {
		if _, err := a.st.UpsertNode(context.Background(), store.NodeRecord{ID: prefix + string(rune('a'+i)),
			Facts: fleet.Facts{OS: fleet.OS{Family: "debian", Version: "12"}}, LastSeen: now, LeaseUntil: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
}

// verify runs `drover audit verify ARGS` against a with the CLI state in
// stateDir.
func (a *auditServer) verify(t *testing.T, stateDir string, args ...string) (int, string, string) {
	t.Helper()
	env := map[string]string{"DROVER_SERVER": a.url, "DROVER_TOKEN": "vera-token-0123456789a", "XDG_STATE_HOME": stateDir}
	var out, errb bytes.Buffer
	code := Main(context.Background(), append([]string{"audit", "verify"}, args...), func(k string) string { return env[k] },
		strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func wantOutput(t *testing.T, code, wantCode int, out, errOut string, words ...string) {
	t.Helper()
	if code != wantCode {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, wantCode, out, errOut)
	}
	for _, w := range words {
		if !strings.Contains(out+errOut, w) {
			t.Fatalf("output lacks %q\nstdout:\n%s\nstderr:\n%s", w, out, errOut)
		}
	}
}

// TestAuditVerifyRemembers: the first run pins the key and remembers the
// checkpoint; later runs prove the log grew by appending only.
func TestAuditVerifyRemembers(t *testing.T) {
	a := startAuditServer(t)
	state := t.TempDir()
	a.write(t, "n", 3)
	code, out, errOut := a.verify(t, state)
	wantOutput(t, code, ExitOK, out, errOut, "audit log OK", "pinned the server's audit key", "first checkpoint seen", "inclusion proven")
	a.write(t, "m", 4)
	code, out, errOut = a.verify(t, state, "--spot", "2")
	wantOutput(t, code, ExitOK, out, errOut, "audit log OK", "consistent with the checkpoint seen before", "inclusion proven for entries 4")
	if strings.Contains(out, "pinned") {
		t.Fatalf("second run pinned again:\n%s", out)
	}
	code, out, errOut = a.verify(t, state, "-o", "json")
	wantOutput(t, code, ExitOK, out, errOut, `"signed": 8`, `"previous": 8`)

	// Another key pinned explicitly: the server's does not match it.
	other := storetest.NewAuditKey(t)
	code, out, errOut = a.verify(t, t.TempDir(), "--key", other.VKey)
	wantOutput(t, code, ExitError, out, errOut, "is not the pinned key")
	code, _, errOut = a.verify(t, t.TempDir(), "--key", "nonsense")
	wantOutput(t, code, ExitUsage, "", errOut, "not a note verifier key")
}

// TestAuditVerifyTampered: an entry edited in the database is reported by
// the server's check.
func TestAuditVerifyTampered(t *testing.T) {
	a := startAuditServer(t)
	state := t.TempDir()
	a.write(t, "n", 3)
	code, out, errOut := a.verify(t, state)
	wantOutput(t, code, ExitOK, out, errOut, "audit log OK")
	if _, err := a.st.ExecRaw(context.Background(), `UPDATE audit SET detail = ? WHERE seq = ?`, `{"forged":true}`, 2); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = a.verify(t, state)
	wantOutput(t, code, ExitError, out, errOut, "TAMPERED at entry 2", "edited")
}

// TestAuditVerifyRewrittenHistory: the whole log rewritten consistently
// (chain and tree recomputed), the checkpoints deleted, and the server
// made to adopt the forged log: its own check passes, but a client that
// remembers a checkpoint from before sees the history was rewritten.
func TestAuditVerifyRewrittenHistory(t *testing.T) {
	a := startAuditServer(t)
	state := t.TempDir()
	a.write(t, "n", 4)
	code, out, errOut := a.verify(t, state)
	wantOutput(t, code, ExitOK, out, errOut, "audit log OK")

	storetest.RewriteAudit(t, a.st, 2)
	if _, err := a.st.ExecRaw(context.Background(), `DELETE FROM audit_checkpoints`); err != nil {
		t.Fatal(err)
	}
	a.write(t, "m", 1) // the server adopts the log it finds and signs it
	if v, err := a.st.VerifyAudit(context.Background()); err != nil || !v.OK {
		t.Fatalf("server-side VerifyAudit = %+v, %v; want it fooled (OK)", v, err)
	}
	code, out, errOut = a.verify(t, state)
	wantOutput(t, code, ExitError, out, errOut, "history REWRITTEN", "does not extend the log of 5 entries", "remembered from the last run")
	// Still rewritten on the next run: a failed run does not forget.
	code, out, errOut = a.verify(t, state)
	wantOutput(t, code, ExitError, out, errOut, "history REWRITTEN")
}
