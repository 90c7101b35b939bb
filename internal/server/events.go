package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/store"
)

// recheckCredentials is how often an event stream checks that its
// caller's credentials are still valid.
const recheckCredentials = 5 * time.Second

// A stream reads the log in pages of at most streamPageEntries entries
// and streamPageBytes bytes of details: a stream's memory is bounded
// however large the log and its entries are.
const (
	streamPageEntries = 100
	streamPageBytes   = 64 << 10
)

// events streams audit entries as Server-Sent Events: every state
// transition and human action is an audit entry, so the audit log is the
// event stream. A stream starts at the head of the log (new entries
// only) unless the client gives a position, Last-Event-ID or ?after=
// (0 for the beginning); it then replays from there, page by page.
// Streams wake on local changes and re-read the store every second for
// changes made through other servers.
//
// Each identity may hold StreamLimits.PerIdentity streams and the server
// StreamLimits.Total (429 beyond); every write must complete within
// StreamLimits.WriteTimeout, or the stream is dropped: a client that
// does not read costs its socket buffers and nothing more.
func (s *Server) events(w http.ResponseWriter, r *http.Request, id identity) error {
	// Last-Event-ID wins over ?after=: an EventSource reconnecting to the
	// URL it was opened with sends the last ID it received.
	after := int64(-1) // the head
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return badRequest("after %q: want a sequence number", v)
		}
		after = n
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return badRequest("Last-Event-ID %q: want a sequence number", v)
		}
		after = n
	}
	rollout := r.PathValue("id")
	if rollout == "" {
		rollout = r.URL.Query().Get("rollout")
	}
	release, err := s.streams.open(w, id.user)
	if err != nil {
		return err
	}
	defer release()
	ctx := r.Context()
	if after < 0 {
		head, err := s.st.AuditHead(ctx)
		if err != nil {
			return err
		}
		after = head
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{}) // a stream outlives the server's read timeout
	out := &streamWriter{w: w, rc: rc, timeout: s.cfg.StreamLimits.WriteTimeout}
	w.WriteHeader(http.StatusOK)
	if err := out.flush(); err != nil {
		return nil
	}
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
		es, more, err := s.st.AuditPage(ctx, store.AuditQuery{After: after, Limit: streamPageEntries, Rollout: rollout, MaxBytes: streamPageBytes})
		if err != nil {
			return nil // the stream has started: the client reconnects with Last-Event-ID
		}
		for _, e := range es {
			data, _ := json.Marshal(auditView(e))
			if err := out.event(e.Seq, e.Action, data); err != nil {
				s.streams.drop()
				return nil
			}
			after = e.Seq
		}
		if len(es) > 0 {
			if err := out.flush(); err != nil {
				s.streams.drop()
				return nil
			}
		}
		if more {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-tick.C:
		case <-recheck.C:
			if _, err := s.authenticate(r); err != nil {
				_ = out.write("event: error\ndata: {\"error\": \"credentials no longer valid\", \"code\": \"unauthorized\"}\n\n")
				_ = out.flush()
				return nil
			}
		case <-keepalive.C:
			if err := out.write(": keepalive\n\n"); err == nil {
				err = out.flush()
			}
			if err != nil {
				s.streams.drop()
				return nil
			}
		}
	}
}

// streamWriter writes to an event stream, each write and flush within
// timeout: past it the connection's write fails and the stream ends.
type streamWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (s *streamWriter) deadline() {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
}

func (s *streamWriter) write(str string) error {
	s.deadline()
	_, err := fmt.Fprint(s.w, str)
	return err
}

// event writes one event whose data is one line of JSON.
func (s *streamWriter) event(id int64, name string, data []byte) error {
	s.deadline()
	if _, err := fmt.Fprintf(s.w, "id: %d\nevent: %s\ndata: ", id, name); err != nil {
		return err
	}
	if _, err := s.w.Write(data); err != nil {
		return err
	}
	_, err := io.WriteString(s.w, "\n\n")
	return err
}

func (s *streamWriter) flush() error {
	s.deadline()
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// streams counts the open event streams, per identity and in all.
type streams struct {
	cfg     StreamLimits
	mu      sync.Mutex
	by      map[string]int
	total   int
	gauge   prometheus.Gauge
	refused *prometheus.CounterVec // scope: identity, server
	dropped prometheus.Counter
}

func newStreams(cfg StreamLimits, reg prometheus.Registerer) *streams {
	s := &streams{cfg: cfg, by: map[string]int{},
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "drover_event_streams", Help: "Event streams open on this server."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "drover_event_streams_refused_total",
			Help: "Event streams refused, by the cap reached (identity, server)."}, []string{"scope"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "drover_event_streams_dropped_total",
			Help: "Event streams ended because a write failed or did not complete within eventStreamWriteTimeout (a client not reading)."}),
	}
	reg.MustRegister(s.gauge, s.refused, s.dropped)
	return s
}

// open counts a new stream of who, or refuses it (429) when who or the
// server holds as many as allowed. release must be called when the
// stream ends.
func (s *streams) open(w http.ResponseWriter, who string) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.by[who] >= s.cfg.PerIdentity:
		s.refused.WithLabelValues("identity").Inc()
		w.Header().Set("Retry-After", "5")
		return nil, &httpError{status: http.StatusTooManyRequests, code: api.CodeRateLimited,
			msg: fmt.Sprintf("%s already holds %d event streams, the most one identity may (eventStreamsPerIdentity)", who, s.by[who])}
	case s.total >= s.cfg.Total:
		s.refused.WithLabelValues("server").Inc()
		w.Header().Set("Retry-After", "5")
		return nil, &httpError{status: http.StatusTooManyRequests, code: api.CodeRateLimited,
			msg: fmt.Sprintf("the server holds %d event streams, the most it serves (eventStreamsTotal)", s.total)}
	}
	s.by[who]++
	s.total++
	s.gauge.Inc()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.by[who]--; s.by[who] == 0 {
				delete(s.by, who)
			}
			s.total--
			s.gauge.Dec()
		})
	}, nil
}

// drop counts a stream ended by a failed write: a client that went away
// or one that stopped reading (the write deadline passed).
func (s *streams) drop() { s.dropped.Inc() }
