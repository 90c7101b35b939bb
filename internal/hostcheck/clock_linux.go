package hostcheck

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// readAdjtimex reads the kernel's clock discipline: unsynchronised when
// STA_UNSYNC is set or the state is TIME_ERROR; the offset is the
// kernel's current offset plus its estimated error.
func readAdjtimex() (ClockState, error) {
	var tx unix.Timex // modes 0: read only, no privilege needed
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return ClockState{}, fmt.Errorf("adjtimex: %w", err)
	}
	return adjtimexState(state, tx.Status, int64(tx.Offset), int64(tx.Esterror)), nil
}

// adjtimexState interprets adjtimex(2)'s answer. offset is in
// microseconds, or nanoseconds when STA_NANO is set; esterror in
// microseconds.
func adjtimexState(state int, status int32, offset, esterror int64) ClockState {
	st := ClockState{Source: "adjtimex"}
	st.Synced = state != unix.TIME_ERROR && status&unix.STA_UNSYNC == 0
	off := time.Duration(offset) * time.Microsecond
	if status&unix.STA_NANO != 0 {
		off = time.Duration(offset)
	}
	st.Offset = max(off, -off) + time.Duration(esterror)*time.Microsecond
	return st
}
