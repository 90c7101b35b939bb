package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/auditlog"
	"github.com/drover-dev/drover/internal/store"
)

// newAuditVerifyCmd is `drover audit verify`: the server's own check of
// its log, then the client's: the signed checkpoint checked with the
// server's audit key (pinned on first use, or with --key), a consistency
// proof from the checkpoint this client remembers to the new one (a
// rewritten history fails it), and inclusion proofs of a few recent
// entries as the server lists them. The checkpoint is remembered per
// server URL in $XDG_STATE_HOME/drover/ (else ~/.config/drover/).
func newAuditVerifyCmd(e *env) *cobra.Command {
	var r remote
	var key string
	var spot int
	cmd := &cobra.Command{Use: "verify", Short: "Verify the audit log: the server's check, the signed checkpoint, and that history was not rewritten since the last run; exit 1 if it was tampered with",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client(e)
			if err != nil {
				return err
			}
			if key != "" {
				if _, err := note.NewVerifier(key); err != nil {
					return usagef("--key %q: not a note verifier key (name+hash+base64): %v", key, err)
				}
			}
			if spot < 0 {
				return usagef("--spot %d: want 0 or more", spot)
			}
			res, err := verifyAudit(cmd.Context(), e, c, key, spot)
			if showErr := r.show(e, res, res.table); showErr != nil {
				return showErr
			}
			if err != nil {
				return exitf(ExitError, "%w", err)
			}
			if !res.OK {
				return &exitError{code: ExitError}
			}
			return nil
		}}
	r.flags(cmd, e, true)
	cmd.Flags().StringVar(&key, "key", "", "pin this audit verifier key (name+hash+base64, from the server's log or GET /v1/audit/key) instead of trusting the server's on first use")
	cmd.Flags().IntVar(&spot, "spot", 3, "prove the inclusion of this many of the most recent entries")
	return cmd
}

// auditResult is what `drover audit verify` found.
type auditResult struct {
	api.AuditVerification
	Key        string  `json:"key,omitempty"`        // the pinned verifier key
	KeyPinned  bool    `json:"keyPinned,omitempty"`  // pinned by this run
	Signed     int64   `json:"signed"`               // entries under the signed checkpoint checked
	SignedRoot string  `json:"signedRoot,omitempty"` // its root
	Previous   int64   `json:"previous,omitempty"`   // size of the checkpoint remembered from the last run
	Included   []int64 `json:"included,omitempty"`   // entries whose inclusion was proven
	StateFile  string  `json:"stateFile,omitempty"`
	Warning    string  `json:"warning,omitempty"`
}

func (a *auditResult) table(w io.Writer) {
	if !a.AuditVerification.OK && a.FirstBad > 0 {
		fmt.Fprintf(w, "audit log TAMPERED at entry %d: %s\n", a.FirstBad, a.Problem)
		return
	}
	if a.AuditVerification.OK {
		fmt.Fprintf(w, "audit log OK: %d entries, head %s\n", a.Entries, a.Head)
	} else {
		fmt.Fprintf(w, "the server's own check passed (%d entries, head %s), but this client's did not:\n", a.Entries, a.Head)
	}
	if a.KeyPinned {
		fmt.Fprintf(w, "pinned the server's audit key %s (first use; pass --key to pin one you got elsewhere)\n", a.Key)
	}
	if a.Signed > 0 {
		fmt.Fprintf(w, "signed checkpoint: %d entries, root %s\n", a.Signed, a.SignedRoot)
	}
	switch {
	case a.Previous > 0 && a.OK:
		fmt.Fprintf(w, "consistent with the checkpoint seen before (%d entries): history not rewritten\n", a.Previous)
	case a.Previous == 0 && a.OK && a.Signed > 0:
		fmt.Fprintln(w, "first checkpoint seen from this server: remembered for the next run")
	}
	if len(a.Included) > 0 {
		fmt.Fprintf(w, "inclusion proven for entries %s\n", joinInts(a.Included))
	}
	if a.Warning != "" {
		fmt.Fprintf(w, "warning: %s\n", a.Warning)
	}
}

func joinInts(xs []int64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

// auditState is what the CLI remembers of one server's audit log.
type auditState struct {
	Server string `json:"server"`
	Key    string `json:"key"`            // pinned verifier key
	Note   string `json:"note,omitempty"` // last checkpoint seen (signed note)
}

// auditStatePath is the state file for server: per server URL, under
// $XDG_STATE_HOME/drover/, else ~/.config/drover/.
func auditStatePath(e *env, server string) (string, error) {
	dir := e.getenv("XDG_STATE_HOME")
	if dir != "" {
		dir = filepath.Join(dir, "drover")
	} else if home := e.getenv("HOME"); home != "" {
		dir = filepath.Join(home, ".config", "drover")
	} else {
		return "", errors.New("neither XDG_STATE_HOME nor HOME is set")
	}
	sum := sha256.Sum256([]byte(strings.TrimRight(server, "/")))
	return filepath.Join(dir, "audit-"+hex.EncodeToString(sum[:8])+".json"), nil
}

func loadAuditState(path string) (auditState, error) {
	var st auditState
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

func saveAuditState(path string, st auditState) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, _ := json.MarshalIndent(st, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// verifyAudit runs the checks. A rewritten history or a bad signature is
// an error with the evidence; res says how far the checks got.
func verifyAudit(ctx context.Context, e *env, c *api.Client, keyFlag string, spot int) (*auditResult, error) {
	res := &auditResult{}
	v, err := c.VerifyAudit(ctx)
	if err != nil {
		return res, err
	}
	res.AuditVerification = v
	if !v.OK {
		return res, nil
	}
	path, err := auditStatePath(e, c.Base)
	var st auditState
	if err == nil {
		res.StateFile = path
		st, err = loadAuditState(path)
	}
	if err != nil {
		return res, fmt.Errorf("audit state: %w", err)
	}
	st.Server = strings.TrimRight(c.Base, "/")

	served, err := c.AuditKey(ctx)
	if err != nil {
		return res, fmt.Errorf("audit key: %w", err)
	}
	switch {
	case keyFlag != "":
		st.Key = keyFlag
	case st.Key == "":
		st.Key, res.KeyPinned = served.Key, true
	}
	res.Key = st.Key
	verifier, err := note.NewVerifier(st.Key)
	if err != nil {
		return res, fmt.Errorf("pinned audit key %q: %w", st.Key, err)
	}
	if served.Key != st.Key {
		res.OK = false
		return res, fmt.Errorf("the server's audit key %s is not the pinned key %s: if it was replaced on purpose, pin the new one with --key; otherwise this is not the server (or the log) you trusted",
			served.Key, st.Key)
	}

	cp, err := c.AuditCheckpoint(ctx)
	if api.Code(err) == api.CodeNotFound && v.Entries == 0 {
		return res, nil // an empty log: nothing signed yet
	}
	if err != nil {
		return res, fmt.Errorf("audit checkpoint: %w", err)
	}
	tree, err := auditlog.OpenCheckpoint([]byte(cp.Note), verifier)
	if err != nil {
		res.OK = false
		return res, fmt.Errorf("the server's checkpoint: %w", err)
	}
	res.Signed, res.SignedRoot = tree.N, tree.Hash.String()

	if st.Note != "" {
		old, err := auditlog.ParseCheckpoint([]byte(st.Note))
		if err != nil {
			return res, fmt.Errorf("remembered checkpoint in %s: %w", path, err)
		}
		res.Previous = old.N
		if err := checkExtends(ctx, c, old, tree); err != nil {
			res.OK = false
			return res, fmt.Errorf("history REWRITTEN: %w\nthe checkpoint remembered from the last run (%s):\n%s\nthe server's checkpoint now:\n%s",
				err, path, indent(st.Note), indent(cp.Note))
		}
	}

	included, err := spotCheck(ctx, c, tree, spot, res.Previous)
	res.Included = included
	if err != nil {
		res.OK = false
		return res, err
	}

	st.Note = cp.Note
	if err := saveAuditState(path, st); err != nil {
		res.Warning = fmt.Sprintf("cannot remember the checkpoint, so the next run cannot detect a rewritten history: %v", err)
	}
	return res, nil
}

// checkExtends checks that the tree now extends the one seen before.
func checkExtends(ctx context.Context, c *api.Client, old, now tlog.Tree) error {
	switch {
	case now.N < old.N:
		return fmt.Errorf("the signed log has %d entries, fewer than the %d seen before", now.N, old.N)
	case now.N == old.N:
		if now.Hash != old.Hash {
			return fmt.Errorf("the signed log of %d entries has root %s, not %s as seen before", now.N, now.Hash, old.Hash)
		}
		return nil
	case old.N == 0:
		return nil
	}
	p, err := c.AuditTreeProof(ctx, old.N, now.N)
	if err != nil {
		return fmt.Errorf("consistency proof from %d to %d entries: %w", old.N, now.N, err)
	}
	hs, err := auditlog.DecodeHashes(p.Proof)
	if err != nil {
		return fmt.Errorf("consistency proof from %d to %d entries: %w", old.N, now.N, err)
	}
	if err := tlog.CheckTree(hs, now.N, now.Hash, old.N, old.Hash); err != nil {
		return fmt.Errorf("the signed log of %d entries does not extend the log of %d entries seen before (entries up to %d were changed): %v",
			now.N, old.N, old.N, err)
	}
	return nil
}

// spotCheck proves that the n most recent entries, and the last one seen
// before (seq previous), are in the signed tree as the server lists them.
func spotCheck(ctx context.Context, c *api.Client, tree tlog.Tree, n int, previous int64) ([]int64, error) {
	var seqs []int64
	if previous > 0 && previous <= tree.N-int64(n) {
		seqs = append(seqs, previous)
	}
	for seq := max(1, tree.N-int64(n)+1); seq <= tree.N && n > 0; seq++ {
		seqs = append(seqs, seq)
	}
	var done []int64
	for _, seq := range seqs {
		list, err := c.ListAudit(ctx, seq-1, 1, "")
		if err != nil {
			return done, fmt.Errorf("entry %d: %w", seq, err)
		}
		if len(list.Entries) != 1 || list.Entries[0].Seq != seq {
			return done, fmt.Errorf("entry %d is under the signed checkpoint but the server does not list it", seq)
		}
		a := list.Entries[0]
		rec := store.AuditRecord(store.AuditEntry{Seq: a.Seq, At: a.At, Actor: a.Actor, Action: a.Action, Object: a.Object,
			Rollout: a.Rollout, Detail: a.Detail})
		p, err := c.AuditRecordProof(ctx, seq, tree.N)
		if err != nil {
			return done, fmt.Errorf("inclusion proof of entry %d: %w", seq, err)
		}
		hs, err := auditlog.DecodeHashes(p.Proof)
		if err != nil {
			return done, fmt.Errorf("inclusion proof of entry %d: %w", seq, err)
		}
		if err := tlog.CheckRecord(hs, tree.N, tree.Hash, seq-1, tlog.RecordHash(rec)); err != nil {
			return done, fmt.Errorf("entry %d as the server lists it is not the entry %d of the signed log (%v): it was changed", seq, seq, err)
		}
		done = append(done, seq)
	}
	return done, nil
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
