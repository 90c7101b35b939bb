package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// AuditCheckpoint is the latest signed checkpoint of the audit log's
// Merkle tree: Note is a signed note (golang.org/x/mod/sumdb/note) whose
// text is tlog.FormatTree(size, root); Size and Root repeat it for
// display, and a client trusts only what the note says once its
// signature checks out with the key it pinned.
type AuditCheckpoint struct {
	Size int64     `json:"size"`
	Root string    `json:"root"` // base64 tlog hash
	Note string    `json:"note"`
	At   time.Time `json:"at"`
}

// AuditTreeProof proves that the tree of size New extends the one of
// size Old (tlog.CheckTree): base64 hashes.
type AuditTreeProof struct {
	Old   int64    `json:"old"`
	New   int64    `json:"new"`
	Proof []string `json:"proof"`
}

// AuditRecordProof proves that entry Seq is leaf Seq-1 of the tree of
// size Size (tlog.CheckRecord, on the entry's canonical record): base64
// hashes.
type AuditRecordProof struct {
	Seq   int64    `json:"seq"`
	Size  int64    `json:"size"`
	Proof []string `json:"proof"`
}

// AuditKey is the server's public audit key: a note verifier key
// ("name+hash+base64") that checks the checkpoints' signatures.
type AuditKey struct {
	Key string `json:"key"`
}

// AuditCheckpoint returns the latest signed checkpoint (a StatusError
// with CodeNotFound before the first entry).
func (c *Client) AuditCheckpoint(ctx context.Context) (AuditCheckpoint, error) {
	var out AuditCheckpoint
	err := c.do(ctx, http.MethodGet, "/v1/audit/checkpoint", 0, nil, &out)
	return out, err
}

// AuditTreeProof asks for the proof that the tree of size newSize
// extends the one of size oldSize.
func (c *Client) AuditTreeProof(ctx context.Context, oldSize, newSize int64) (AuditTreeProof, error) {
	q := url.Values{"old": {strconv.FormatInt(oldSize, 10)}, "new": {strconv.FormatInt(newSize, 10)}}
	var out AuditTreeProof
	err := c.do(ctx, http.MethodGet, "/v1/audit/proof?"+q.Encode(), 0, nil, &out)
	return out, err
}

// AuditRecordProof asks for the proof that entry seq is in the tree of
// size size.
func (c *Client) AuditRecordProof(ctx context.Context, seq, size int64) (AuditRecordProof, error) {
	var out AuditRecordProof
	err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/audit/proof/%d?size=%d", seq, size), 0, nil, &out)
	return out, err
}

// AuditKey returns the server's public audit key.
func (c *Client) AuditKey(ctx context.Context) (AuditKey, error) {
	var out AuditKey
	err := c.do(ctx, http.MethodGet, "/v1/audit/key", 0, nil, &out)
	return out, err
}
