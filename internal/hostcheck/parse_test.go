package hostcheck

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The mountinfo files are captured from drover-fleet:bookworm (docker
// run --rm [--tmpfs /srv/data] ... cat /proc/self/mountinfo), the -ro
// one after mount -o remount,ro /srv/data in the container.
func TestParseMountinfo(t *testing.T) {
	ms, err := ParseMountinfo(readTestdata(t, "mountinfo-bookworm.txt"))
	if err != nil {
		t.Fatal(err)
	}
	root, ok := MountOf(ms, "/etc/hosts")
	if !ok || root.Point != "/etc/hosts" {
		t.Errorf("MountOf(/etc/hosts) = %+v, %v; docker bind-mounts /etc/hosts", root, ok)
	}
	root, ok = MountOf(ms, "/usr/lib")
	if !ok || root.Point != "/" || root.ReadOnly || root.FSType != "fuse.fuse-overlayfs" {
		t.Errorf("MountOf(/usr/lib) = %+v, %v; want the rw overlay root", root, ok)
	}
	proc, _ := MountOf(ms, "/proc/sys/kernel")
	if proc.Point != "/proc/sys" || !proc.ReadOnly {
		t.Errorf("MountOf(/proc/sys/kernel) = %+v; docker mounts /proc/sys read-only", proc)
	}

	rw, err := ParseMountinfo(readTestdata(t, "mountinfo-bookworm-tmpfs.txt"))
	if err != nil {
		t.Fatal(err)
	}
	ro, err := ParseMountinfo(readTestdata(t, "mountinfo-bookworm-ro.txt"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := MountOf(rw, "/srv/data")
	b, _ := MountOf(ro, "/srv/data")
	if a.Point != "/srv/data" || a.FSType != "tmpfs" || a.ReadOnly || !b.ReadOnly {
		t.Errorf("/srv/data before %+v, after remount %+v; want rw tmpfs then read-only", a, b)
	}

	for _, bad := range []string{"", "1 2 3:4 / /x rw\n", "garbage\n"} {
		if _, err := ParseMountinfo([]byte(bad)); err == nil {
			t.Errorf("ParseMountinfo(%q) did not fail", bad)
		}
	}
	sp, err := ParseMountinfo([]byte(`36 35 98:0 / /mnt/my\040disk rw,noatime - ext4 /dev/sdb1 rw,errors=remount-ro` + "\n"))
	if err != nil || sp[0].Point != "/mnt/my disk" || sp[0].ReadOnly {
		t.Errorf("escaped mount point: %+v, %v", sp, err)
	}
	// An ext4 remounted read-only by errors=remount-ro: the superblock
	// says ro while the mount's own options still say rw.
	sp, _ = ParseMountinfo([]byte(`36 35 98:0 / /var rw,noatime - ext4 /dev/sdb1 ro,errors=remount-ro` + "\n"))
	if !sp[0].ReadOnly {
		t.Errorf("superblock ro not seen: %+v", sp[0])
	}
}

// Captured from drover-fleet:bookworm after apt-get install iptables,
// then update-alternatives --set iptables /usr/sbin/iptables-legacy.
func TestParseFirewall(t *testing.T) {
	for file, want := range map[string]string{"iptables-V-nft.txt": BackendNFTables, "iptables-V-legacy.txt": BackendLegacy} {
		got, err := ParseIptablesVersion(readTestdata(t, file))
		if err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", file, got, err, want)
		}
	}
	if got, err := ParseIptablesVersion([]byte("iptables v1.6.1\n")); err != nil || got != BackendLegacy {
		t.Errorf("iptables 1.6: %q, %v; want legacy", got, err)
	}
	if _, err := ParseIptablesVersion([]byte("sh: iptables: not found")); err == nil {
		t.Error("garbage parsed")
	}
	if got := ParseAlternative(readTestdata(t, "alternatives-iptables-nft.txt")); got != "/usr/sbin/iptables-nft" {
		t.Errorf("alternative: %q", got)
	}
	if got := ParseAlternative(readTestdata(t, "alternatives-iptables-legacy.txt")); got != "/usr/sbin/iptables-legacy" {
		t.Errorf("alternative: %q", got)
	}
}

// No container here boots systemd, so this output is written in the
// format systemctl(1) of systemd 252 documents for list-units --failed,
// with and without --plain.
func TestParseFailedUnits(t *testing.T) {
	plain := "nginx.service loaded failed failed A high performance web server\n" +
		"systemd-networkd-wait-online.service loaded failed failed Wait for Network to be Configured\n"
	got := ParseFailedUnits([]byte(plain))
	if !slices.Equal(got, []string{"nginx.service", "systemd-networkd-wait-online.service"}) {
		t.Errorf("plain: %q", got)
	}
	fancy := "● nginx.service loaded failed failed A high performance web server\n"
	if got := ParseFailedUnits([]byte(fancy)); !slices.Equal(got, []string{"nginx.service"}) {
		t.Errorf("bulleted: %q", got)
	}
	if got := ParseFailedUnits(nil); len(got) != 0 {
		t.Errorf("none: %q", got)
	}
}

// The tracking output is chronyc's from drover-fleet:bookworm with
// chrony installed and chronyd started without sources (so not
// synchronised); the synchronised one is chronyc's documented format.
func TestParseChronyTracking(t *testing.T) {
	synced := `Reference ID    : C0A80101 (192.168.1.1)
Stratum         : 3
Ref time (UTC)  : Mon Dec 07 17:00:00 2026
System time     : 0.000123456 seconds slow of NTP time
Last offset     : -0.000012345 seconds
RMS offset      : 0.000045678 seconds
Frequency       : 12.345 ppm fast
Leap status     : Normal
`
	st, err := ParseChronyTracking([]byte(synced))
	if err != nil || !st.Synced || st.Offset != 123456*time.Nanosecond {
		t.Errorf("synced: %+v, %v", st, err)
	}
	st, err = ParseChronyTracking(readTestdata(t, "chronyc-tracking-unsynced.txt"))
	if err != nil || st.Synced {
		t.Errorf("unsynced capture: %+v, %v", st, err)
	}
	if _, err := ParseChronyTracking([]byte("506 Cannot talk to daemon\n")); err == nil {
		t.Error("chronyc error output parsed")
	}
}

// kmsg-host.txt is records read from /dev/kmsg on the build host.
func TestParseKmsg(t *testing.T) {
	ls, err := ParseKmsg(readTestdata(t, "kmsg-host.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) < 40 || ls[0].Seq != 0 || !ls[0].Kernel || ls[0].Priority != 5 {
		t.Fatalf("parsed %d records, first %+v", len(ls), ls[0])
	}
	for i := 1; i < len(ls); i++ {
		if ls[i].Seq <= ls[i-1].Seq {
			t.Fatalf("sequence not increasing at %d: %d after %d", i, ls[i].Seq, ls[i-1].Seq)
		}
	}
	if err := NewKernelErrors(ls, 0); err != nil {
		t.Errorf("the captured log has no error line, got %v", err)
	}
	// A kernel error (facility 0, level 3) after the snapshot counts; one
	// written by user space (facility 1) and one before do not.
	last := ls[len(ls)-1].Seq
	more, err := ParseKmsg([]byte("3,5,1,-;EXT4-fs error (device sda1): old\n" +
		"11," + u(last+1) + ",2,-;userspace says error\n" +
		"3," + u(last+2) + ",3,-;EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0\n" +
		" SUBSYSTEM=block\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = NewKernelErrors(more, last)
	if err == nil || err.Error() != `new kernel error: "EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0"` {
		t.Errorf("got %v", err)
	}
	if _, err := ParseKmsg([]byte("no header\n")); err == nil {
		t.Error("malformed record parsed")
	}
}

func u(n uint64) string { return strconv.FormatUint(n, 10) }

func TestParseMTU(t *testing.T) {
	if n, err := ParseMTU([]byte("1400\n")); err != nil || n != 1400 {
		t.Errorf("%d, %v", n, err)
	}
	if _, err := ParseMTU([]byte("x\n")); err == nil {
		t.Error("garbage parsed")
	}
}
