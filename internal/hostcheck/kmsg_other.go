//go:build !linux

package hostcheck

import (
	"fmt"
	"runtime"
)

func readKmsg() ([]KernelLine, error) {
	return nil, fmt.Errorf("kernel log: not supported on %s", runtime.GOOS)
}
