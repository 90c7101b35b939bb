//go:build unix

package driver

import (
	"os/exec"
	"syscall"
)

// ownGroup runs cmd in a process group of its own and makes cancellation
// kill the whole group: a hung maintainer script that apt-get or dpkg
// started would otherwise outlive them and keep the package lock.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
