//go:build unix

package server

import (
	"fmt"
	"os"
	"syscall"
)

const failpointsSupported = true

// killSelf announces the failpoint on stderr, then SIGKILLs this process:
// no deferred function, no shutdown, no flush, as in a real crash.
func killSelf(point string, hit int) {
	fmt.Fprintf(os.Stderr, "drover: failpoint %s hit %d: SIGKILL\n", point, hit)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is delivered asynchronously; never go on
}
