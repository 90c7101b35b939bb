package hostcheck

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// The build host is Linux: its own /dev/kmsg, adjtimex, mountinfo and
// /sys/class/net are read for real.
func TestRealLinuxReaders(t *testing.T) {
	ls, err := readKmsg()
	if err != nil || len(ls) == 0 {
		t.Errorf("readKmsg: %d records, %v", len(ls), err)
	}
	if _, err := readAdjtimex(); err != nil {
		t.Errorf("adjtimex: %v", err)
	}
	h := &Host{}
	ms, err := h.Mounts()
	if _, ok := MountOf(ms, "/"); err != nil || !ok {
		t.Errorf("mounts: %v", err)
	}
	mtus, err := ReadMTUs(os.DirFS("/"))
	if err != nil || mtus["lo"] == 0 {
		t.Errorf("MTUs %v, %v", mtus, err)
	}
}

// TestAdjtimexConstants: the constants adjtimexState uses are the
// kernel's.
func TestAdjtimexConstants(t *testing.T) {
	if timeError != unix.TIME_ERROR || staUnsync != unix.STA_UNSYNC || staNano != unix.STA_NANO {
		t.Errorf("adjtimex constants differ from golang.org/x/sys/unix")
	}
}
