package hostcheck

import (
	"errors"
	"fmt"
	"syscall"
)

// readKmsg reads every record /dev/kmsg still holds, without blocking:
// each read(2) returns one record; EAGAIN means no more, EPIPE that the
// next one was overwritten (reading goes on).
func readKmsg() ([]KernelLine, error) {
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("kernel log: open /dev/kmsg: %w", err)
	}
	defer syscall.Close(fd)
	var out []KernelLine
	buf := make([]byte, 8192)
	for range 1 << 20 {
		n, err := syscall.Read(fd, buf)
		if errors.Is(err, syscall.EAGAIN) {
			return out, nil
		}
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("kernel log: read /dev/kmsg: %w", err)
		}
		if n <= 0 {
			return out, nil
		}
		ls, err := ParseKmsg(buf[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, ls...)
	}
	return out, nil
}
