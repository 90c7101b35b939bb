package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// recheckCredentials is how often an event stream checks that its
// caller's credentials are still valid.
const recheckCredentials = 5 * time.Second

// events streams audit entries as Server-Sent Events, oldest first from
// ?after= (or Last-Event-ID), then live: every state transition and human
// action is an audit entry, so the audit log is the event stream. Streams
// wake on local changes and re-read the store every second for changes
// made through other servers.
func (s *Server) events(w http.ResponseWriter, r *http.Request, _ identity) error {
	after := int64(0)
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		after, _ = strconv.ParseInt(v, 10, 64)
	}
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return badRequest("after %q: want a sequence number", v)
		}
		after = n
	}
	rollout := r.PathValue("id")
	if rollout == "" {
		rollout = r.URL.Query().Get("rollout")
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{}) // a stream outlives the server's read timeout
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	ctx := r.Context()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	// A stream outlives the check of the credentials it started with: a
	// token revoked (or expired) since ends it within recheckCredentials.
	recheck := time.NewTicker(recheckCredentials)
	defer recheck.Stop()
	for {
		changed := s.wake.changed()
		es, err := s.st.ListAudit(ctx, after, 500, rollout)
		if err != nil {
			return nil // the stream has started: the client reconnects with Last-Event-ID
		}
		for _, e := range es {
			data, _ := json.Marshal(auditView(e))
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Action, data); err != nil {
				return nil
			}
			after = e.Seq
		}
		if len(es) > 0 {
			_ = rc.Flush()
		}
		if len(es) == 500 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-tick.C:
		case <-recheck.C:
			if _, err := s.authenticate(r); err != nil {
				fmt.Fprint(w, "event: error\ndata: {\"error\": \"credentials no longer valid\", \"code\": \"unauthorized\"}\n\n")
				_ = rc.Flush()
				return nil
			}
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return nil
			}
			_ = rc.Flush()
		}
	}
}
