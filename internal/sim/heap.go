package sim

// eventKind is what a simulated agent reports.
type eventKind uint8

const (
	evDispatched   eventKind = iota + 1 // queued -> running
	evStepDone                          // running -> verifying | failed
	evRollbackDone                      // rolling-back -> rolled-back | failed
	evPreflight                         // the node's pre-flight answer is received (drawn when asked)
)

// event is one agent report due at a virtual instant. gen is the node's
// generation when the event was scheduled: an event whose generation is no
// longer current (the node was restarted or rolled back meanwhile) is stale
// and dropped.
type event struct {
	at   int64 // nanoseconds since the simulation start
	seq  uint64
	node int32
	gen  uint32
	kind eventKind
}

// eventHeap is a binary min-heap on (at, seq): ties break in scheduling
// order, which keeps runs deterministic. It avoids container/heap's
// interface boxing: a 100,000-node run pushes a few hundred thousand events.
type eventHeap []event

func (h eventHeap) less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}

func (h *eventHeap) push(e event) {
	*h = append(*h, e)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *eventHeap) pop() event {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && s.less(l, m) {
			m = l
		}
		if r < len(s) && s.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}
