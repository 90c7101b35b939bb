// Command setmtu sets an interface's MTU: setmtu IFACE MTU. It does what
// `ip link set IFACE mtu MTU` does (the SIOCSIFMTU ioctl; ip uses
// netlink for the same change) for the fleet test's containers, whose
// images have no iproute2. It needs CAP_NET_ADMIN.
package main

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: setmtu IFACE MTU")
		os.Exit(2)
	}
	mtu, err := strconv.Atoi(os.Args[2])
	if err != nil || mtu <= 0 {
		fmt.Fprintf(os.Stderr, "setmtu: MTU %q is not a positive number\n", os.Args[2])
		os.Exit(2)
	}
	if err := set(os.Args[1], mtu); err != nil {
		fmt.Fprintf(os.Stderr, "setmtu: %v\n", err)
		os.Exit(1)
	}
}

func set(iface string, mtu int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	req, err := unix.NewIfreq(iface)
	if err != nil {
		return err
	}
	req.SetUint32(uint32(mtu))
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFMTU, req); err != nil {
		return fmt.Errorf("SIOCSIFMTU %s %d: %w", iface, mtu, err)
	}
	return nil
}
