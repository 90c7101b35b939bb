package driver

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/drover-dev/drover/internal/plan"
)

// efiString is a string EFI variable as efivarfs shows it: four bytes of
// attributes, then UTF-16LE ending in a NUL.
func efiString(s string) string {
	b := []byte{7, 0, 0, 0}
	for _, c := range utf16.Encode([]rune(s + "\x00")) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return string(b)
}

func TestParseGRUBConfig(t *testing.T) {
	entries := parseGRUBConfig(debianGRUBConfig("0"))
	if len(entries) != 5 {
		t.Fatalf("%d entries: %+v", len(entries), entries)
	}
	e := entries[3]
	if e.Path != "gnulinux-advanced-"+testRootUUID+">gnulinux-6.1.0-26-amd64-advanced-"+testRootUUID || e.Linux != "/boot/vmlinuz-6.1.0-26-amd64" || e.Recovery ||
		e.Title != "Debian GNU/Linux, with Linux 6.1.0-26-amd64" {
		t.Fatalf("entry 4: %+v", e)
	}
	if !entries[4].Recovery {
		t.Fatalf("entry 5 is the recovery entry: %+v", entries[4])
	}
	// Entries without ids (older grub-mkconfig, hand-written menus) are
	// named by their titles; a separate /boot partition drops /boot.
	cfg := "menuentry \"Custom \\\"A\\\"\" {\n\tlinux /vmlinuz-5.10.0-30-amd64 root=/dev/sda2\n}\n"
	if got := parseGRUBConfig(cfg); len(got) != 1 || got[0].Path != `Custom "A"` || got[0].Linux != "/vmlinuz-5.10.0-30-amd64" {
		t.Fatalf("%+v", got)
	}
	if w := shellWords(`menuentry 'It'\''s' --id x {`); strings.Join(w, "|") != "menuentry|It's|--id|x|{" {
		t.Fatalf("%q", w)
	}
}

func FuzzParseGRUBConfig(f *testing.F) {
	f.Add(debianGRUBConfig("0"))
	f.Add("submenu 'a' {\nmenuentry 'b' {\n}\n}\n}\n}\nlinux x\n")
	f.Fuzz(func(t *testing.T, s string) {
		_ = parseGRUBConfig(s)
	})
}

func TestParseBootctlList(t *testing.T) {
	seq := `{"id":"a.conf","version":"6.1.0-26-amd64","linux":"/m/6.1.0-26-amd64/linux"}
{"id":"b.conf","version":"6.1.0-27-amd64","options":"ro single"}
`
	arr := `[{"id":"a.conf","version":"6.1.0-26-amd64"},{"id":"b.conf"}]`
	for _, in := range []string{seq, arr} {
		got, err := parseBootctlList([]byte(in))
		if err != nil || len(got) != 2 || got[0].ID != "a.conf" || got[0].Version != "6.1.0-26-amd64" {
			t.Fatalf("%q: %+v %v", in, got, err)
		}
	}
	if _, err := parseBootctlList([]byte("Not booted with UEFI.")); err == nil {
		t.Fatal("text parsed as entries")
	}
}

// TestSystemdBootSetReadsBack: bootctl set-oneshot succeeded, and the EFI
// variable it wrote is read back from efivarfs; a variable naming another
// entry is an error. The EFI variables are given here (a container has
// none: see TestSystemdBootRealTools).
func TestSystemdBootSetReadsBack(t *testing.T) {
	ctx := context.Background()
	const oneshot = efiVarDir + "/LoaderEntryOneShot-" + efiLoaderGUID
	r := replayFromText(t, "-- $ bootctl set-oneshot debian-6.1.0-26-amd64.conf --\n-- $ bootctl set-default debian-6.1.0-26-amd64.conf --\n")
	sb := NewSystemdBoot(r, fakeFS{oneshot: efiString("debian-6.1.0-26-amd64.conf")}, "", "")
	what, err := sb.Set(ctx, plan.KernelFallbackOneShot, "debian-6.1.0-26-amd64.conf")
	if err != nil || what != "systemd-boot: EFI variable LoaderEntryOneShot=debian-6.1.0-26-amd64.conf (bootctl set-oneshot)" {
		t.Fatalf("%q %v", what, err)
	}
	sb = NewSystemdBoot(r, fakeFS{oneshot: efiString("other.conf")}, "", "")
	if _, err := sb.Set(ctx, plan.KernelFallbackOneShot, "debian-6.1.0-26-amd64.conf"); err == nil || !strings.Contains(err.Error(), `LoaderEntryOneShot is "other.conf"`) {
		t.Fatalf("mismatch: %v", err)
	}
	if _, err := sb.Set(ctx, plan.KernelFallbackDefault, "debian-6.1.0-26-amd64.conf"); err == nil || !strings.Contains(err.Error(), "LoaderEntryDefault cannot be read back") {
		t.Fatalf("default not written: %v", err)
	}
	if _, err := sb.Set(ctx, plan.KernelFallbackOneShot, "--help"); err == nil || !strings.Contains(err.Error(), "malformed boot entry") {
		t.Fatalf("an entry like an option: %v", err)
	}
}

func TestDetectBootLoader(t *testing.T) {
	for _, tc := range []struct {
		fs   fakeFS
		want string
	}{
		{fakeFS{efiVarDir + "/LoaderInfo-" + efiLoaderGUID: efiString("systemd-boot 252.39-1~deb12u2"), "/boot/grub/grub.cfg": ""}, "systemd-boot"},
		{fakeFS{efiVarDir + "/LoaderInfo-" + efiLoaderGUID: efiString("GRUB 2.06"), "/boot/grub/grub.cfg": ""}, "grub"},
		{fakeFS{"/boot/grub2/grub.cfg": ""}, "grub"},
	} {
		bl, err := DetectBootLoader(nil, tc.fs)
		if err != nil || bl.Name() != tc.want {
			t.Errorf("%v: %v %v, want %s", tc.fs, bl, err, tc.want)
		}
	}
	if g, _ := DetectBootLoader(nil, fakeFS{"/boot/grub2/grub.cfg": ""}); g.(*GRUB).tool != "grub2" {
		t.Errorf("RHEL's GRUB tools are grub2-*: %+v", g)
	}
	if _, err := DetectBootLoader(nil, fakeFS{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("nothing found: %v", err)
	}
}

// TestAptKernelFallback: a kernel action's snapshot records the kernel
// the node ran (uname -r); after the node booted the new kernel,
// Kernels tells them apart and SetFallbackBoot sets GRUB's one-shot entry
// of the recorded kernel (grub-reboot, read back with grub-editenv). A
// hold needs the default set too, which GRUB_DEFAULT=0 cannot do: refused.
// The tools' outputs are written in their formats, not recorded.
func TestAptKernelFallback(t *testing.T) {
	ctx := context.Background()
	entry := "gnulinux-advanced-" + testRootUUID + ">gnulinux-6.1.0-26-amd64-advanced-" + testRootUUID
	r := replayFromText(t, `-- $ apt-mark showhold linux-image-6.1.0-27-amd64 --
-- $ dpkg-query -W '-f=${db:Status-Status} ${Version}\n' linux-image-6.1.0-27-amd64 --
-- stderr --
dpkg-query: no packages found matching linux-image-6.1.0-27-amd64
-- exit --
1
-- $ uname -r --
6.1.0-26-amd64
-- $ dpkg-query -S /boot/vmlinuz-6.1.0-26-amd64 --
linux-image-6.1.0-26-amd64: /boot/vmlinuz-6.1.0-26-amd64
-- $ uname -r --
6.1.0-27-amd64
-- $ dpkg-query -S /boot/vmlinuz-6.1.0-27-amd64 --
linux-image-6.1.0-27-amd64: /boot/vmlinuz-6.1.0-27-amd64
-- $ grub-reboot --boot-directory=/boot '`+entry+`' --
-- $ grub-editenv /boot/grub/grubenv list --
next_entry=`+entry+`
`)
	grub := NewGRUB(r, fakeFS{"/boot/grub/grub.cfg": debianGRUBConfig("0")}, "grub", "/boot/grub")
	d := NewApt(r, AptOptions{FS: fakeFS{}, BootLoader: grub})
	k := &plan.KernelAction{Package: "linux-image-6.1.0-27-amd64", Version: "6.1.115-1", Fallback: plan.KernelFallbackOneShot, OnRollback: plan.KernelRemove}
	a := plan.Action{Name: "kernel", Kernel: k}
	snap, err := d.Snapshot(ctx, a)
	if err != nil || !strings.Contains(string(snap.Data), `"runningKernel":"6.1.0-26-amd64"`) {
		t.Fatalf("snapshot %s %v", snap.Data, err)
	}
	prev, running, err := d.Kernels(ctx, a, snap)
	if err != nil || prev != "6.1.0-26-amd64" || running != "6.1.0-27-amd64" {
		t.Fatalf("kernels %q %q %v", prev, running, err)
	}
	out, err := d.SetFallbackBoot(ctx, a, snap)
	if err != nil || !out.RebootRequired || out.Summary != "boot kernel 6.1.0-26-amd64 next (grub: next_entry="+entry+" in /boot/grub/grubenv (grub-reboot)); reboot required" {
		t.Fatalf("set %+v %v", out, err)
	}
	k.OnRollback = plan.KernelHold
	if _, err := d.SetFallbackBoot(ctx, a, snap); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "GRUB_DEFAULT is not saved") {
		t.Fatalf("hold without GRUB_DEFAULT=saved: %v", err)
	}
	// onRollback: hold on a node still running the new kernel changes
	// nothing.
	if _, err := d.Rollback(ctx, a, snap); !errors.Is(err, ErrRunningKernel) || !strings.Contains(err.Error(), "runs kernel 6.1.0-27-amd64, not 6.1.0-26-amd64") {
		t.Fatalf("hold while running the new kernel: %v", err)
	}
	if got := r.ran("apt-mark hold"); len(got) != 0 {
		t.Fatalf("ran %q", got)
	}
}

// TestGRUBBootLoaderSpec: RHEL's grub.cfg reads BootLoaderSpec entries
// (blscfg) and lists no kernel itself; the entry is grubby's id, which
// grub2-reboot takes. grubby's output is written in its format, not
// recorded (Debian has no grubby).
func TestGRUBBootLoaderSpec(t *testing.T) {
	ctx := context.Background()
	const id = "8f3e2d1c0b9a48f7a6e5d4c3b2a19f8e-5.14.0-427.13.1.el9_4.x86_64"
	r := replayFromText(t, `-- $ grubby --info=/boot/vmlinuz-5.14.0-427.13.1.el9_4.x86_64 --
index=1
kernel="/boot/vmlinuz-5.14.0-427.13.1.el9_4.x86_64"
args="ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M resume=/dev/mapper/rhel-swap rd.lvm.lv=rhel/root"
root="/dev/mapper/rhel-root"
initrd="/boot/initramfs-5.14.0-427.13.1.el9_4.x86_64.img $tuned_initrd"
title="Red Hat Enterprise Linux (5.14.0-427.13.1.el9_4.x86_64) 9.4 (Plow)"
id="`+id+`"
-- $ grubby --info=/boot/vmlinuz-5.14.0-1.el9.x86_64 --
-- stderr --
The param /boot/vmlinuz-5.14.0-1.el9.x86_64 is incorrect
-- exit --
1
`)
	cfg := "set default=\"${saved_entry}\"\ninsmod blscfg\nblscfg\n### END /etc/grub.d/10_linux ###\n"
	g := NewGRUB(r, fakeFS{"/boot/grub2/grub.cfg": cfg}, "grub2", "/boot/grub2")
	if e, err := g.Entry(ctx, "5.14.0-427.13.1.el9_4.x86_64"); err != nil || e != id {
		t.Fatalf("entry %q %v", e, err)
	}
	if _, err := g.Entry(ctx, "5.14.0-1.el9.x86_64"); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "is incorrect") {
		t.Fatalf("unknown kernel: %v", err)
	}
}
