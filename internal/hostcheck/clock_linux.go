package hostcheck

import (
	"fmt"

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
