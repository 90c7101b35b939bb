package driver

import (
	"context"
	"fmt"
	"strings"
)

// Rebooter reboots the node and reads its boot ID.
//
// The reboot protocol (the agent's job): before Reboot the agent journals
// the current BootID and the step it is in; Reboot only asks the OS to
// reboot and returns (the process is killed soon after). When the agent
// starts again it reads BootID: a different ID confirms the reboot
// happened, and the journalled step resumes (Verify, then gates); the same
// ID after the expected reboot time means the reboot did not happen and
// the step fails. Reboot is therefore not idempotent by itself: the
// journal is what keeps a node from rebooting twice.
type Rebooter struct {
	r    Runner
	goos string
	fs   FileSystem
}

// NewRebooter returns the rebooter for goos ("linux", "windows",
// "darwin"); fs nil means the real files.
func NewRebooter(r Runner, goos string, fs FileSystem) *Rebooter {
	if fs == nil {
		fs = OSFileSystem{}
	}
	return &Rebooter{r: r, goos: goos, fs: fs}
}

// Reboot asks the OS to reboot now: systemctl reboot on Linux,
// shutdown /r /t 0 on Windows, shutdown -r now on macOS.
func (b *Rebooter) Reboot(ctx context.Context) error {
	var name string
	var args []string
	switch b.goos {
	case "linux":
		name, args = "systemctl", []string{"reboot"}
	case "windows":
		name, args = "shutdown", []string{"/r", "/t", "0"}
	case "darwin":
		name, args = "shutdown", []string{"-r", "now"}
	default:
		return fmt.Errorf("reboot on %s: %w", b.goos, ErrUnsupported)
	}
	if _, _, err := b.r.Run(ctx, nil, name, args...); err != nil {
		return fmt.Errorf("reboot: %s: %w", commandLine(name, args...), err)
	}
	return nil
}

// BootID returns an ID that changes on every boot: the kernel's
// /proc/sys/kernel/random/boot_id on Linux. Other systems return an error
// wrapping ErrUnsupported (the agent then compares boot times).
func (b *Rebooter) BootID(context.Context) (string, error) {
	if b.goos != "linux" {
		return "", fmt.Errorf("boot id on %s: %w", b.goos, ErrUnsupported)
	}
	raw, err := b.fs.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("boot id: %w", err)
	}
	id := strings.TrimSpace(string(raw))
	if len(id) != 36 {
		return "", fmt.Errorf("boot id: malformed %q", id)
	}
	return id, nil
}
