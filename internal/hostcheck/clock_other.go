//go:build !linux

package hostcheck

import (
	"fmt"
	"runtime"
)

func readAdjtimex() (ClockState, error) {
	return ClockState{}, fmt.Errorf("clock: not supported on %s", runtime.GOOS)
}
