package fleettest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/engine"
)

// What the kernel fallback scenario runs for real, and what it
// simulates:
//
// Real: the server, a plan with a kernel action (package
// drover-kernel-6.1.0-27-fleet) and reboot: if-required, apt installing
// it, the agent's reboot through its real rebooter, the probe failing on
// the new kernel, the server's rollback step, the agent setting GRUB's
// one-shot entry with Debian 12's own grub-reboot (read back with
// grub-editenv) from the menu entries of /boot/grub/grub.cfg, its journal
// across two reboots, its confirmation by boot ID and uname -r, apt
// removing the new kernel package.
//
// Simulated: the kernel and the firmware. A container runs the host's
// kernel, so a "kernel" here is a package holding /boot/vmlinuz-RELEASE
// (a text file), whose maintainer scripts run update-grub (a stand-in:
// grub-mkconfig needs the root device, which a container hides; it writes
// grub.cfg as Debian's does, an entry per kernel, the newest the default).
// GRUB's part of each boot is grub-boot, run by the entrypoint: it reads
// grubenv as GRUB's grub.cfg does (next_entry once, then cleared; else
// the default), picks the kernel of that entry and writes its release to
// /run/drover-fleettest/kernel-release, which uname -r prints (a stand-in
// uname in /usr/local/bin, ahead of /bin/uname in PATH; every other
// uname call goes to the real one). The node's image is
// drover-fleet-boot:bookworm (GRUB's tools; scripts/fleet-rootfs.sh).

const bootImage = "drover-fleet-boot:bookworm"

// kernelReleases are the kernel packages of the repository
// (drover-kernel-RELEASE 1.0): the node boots the first from its first
// boot; the scenario installs the second.
var kernelReleases = []string{"6.1.0-26-fleet", "6.1.0-27-fleet"}

var baseKernelPackage = "drover-kernel-" + kernelReleases[0]

// buildKernelDebs writes the kernel packages into the repository dir.
func buildKernelDebs(ctx context.Context, dir string) error {
	for _, rel := range kernelReleases {
		root, err := os.MkdirTemp("", "drover-kdeb-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(root)
		name := "drover-kernel-" + rel
		files := map[string]struct {
			data string
			mode os.FileMode
		}{
			"DEBIAN/control": {fmt.Sprintf("Package: %s\nVersion: 1.0\nArchitecture: %s\nMaintainer: drover tests <tests@drover.invalid>\n"+
				"Section: kernel\nPriority: optional\nDescription: drover fleet test kernel %s\n A stand-in kernel: /boot/vmlinuz-%s is a text file.\n", name, debArch(), rel, rel), 0o644},
			"DEBIAN/postinst":     {"#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n\t/opt/drover/update-grub\n\ttouch /var/run/reboot-required\n\techo " + name + " >>/var/run/reboot-required.pkgs\nfi\n", 0o755},
			"DEBIAN/postrm":       {"#!/bin/sh\nset -e\nif [ \"$1\" = remove ] && [ -x /opt/drover/update-grub ]; then\n\t/opt/drover/update-grub\nfi\n", 0o755},
			"boot/vmlinuz-" + rel: {"drover fleet test kernel " + rel + "\n", 0o644},
		}
		for p, f := range files {
			p = filepath.Join(root, p)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
				return err
			}
			if err := os.Chmod(p, f.mode); err != nil {
				return err
			}
		}
		deb := filepath.Join(dir, fmt.Sprintf("%s_1.0_%s.deb", name, debArch()))
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, deb).CombinedOutput(); err != nil {
			return fmt.Errorf("dpkg-deb --build %s: %w\n%s", name, err, out)
		}
	}
	return nil
}

// updateGRUB stands in for update-grub (see the top of this file).
const updateGRUB = `#!/bin/sh
set -eu
mkdir -p /boot/grub
cfg=/boot/grub/grub.cfg.new
releases=$(ls /boot | sed -n 's/^vmlinuz-//p' | sort -V -r)
default=0
if grep -qx 'GRUB_DEFAULT=saved' /etc/default/grub 2>/dev/null; then
	default='${saved_entry}'
fi
{
	echo '### BEGIN /etc/grub.d/00_header ###'
	echo 'if [ -s $prefix/grubenv ]; then'
	echo '  load_env'
	echo 'fi'
	echo 'if [ "${next_entry}" ] ; then'
	echo '   set default="${next_entry}"'
	echo '   set next_entry='
	echo '   save_env next_entry'
	echo 'else'
	echo "   set default=\"$default\""
	echo 'fi'
	echo '### BEGIN /etc/grub.d/10_linux ###'
	first=1
	for r in $releases; do
		if [ $first = 1 ]; then
			echo "menuentry 'Debian GNU/Linux' --class debian \$menuentry_id_option 'gnulinux-simple-fleet' {"
			echo "	linux	/boot/vmlinuz-$r root=/dev/fleet ro quiet"
			echo "}"
			echo "submenu 'Advanced options for Debian GNU/Linux' \$menuentry_id_option 'gnulinux-advanced-fleet' {"
			first=0
		fi
		echo "	menuentry 'Debian GNU/Linux, with Linux $r' --class debian \$menuentry_id_option 'gnulinux-$r-advanced-fleet' {"
		echo "		linux	/boot/vmlinuz-$r root=/dev/fleet ro quiet"
		echo "	}"
	done
	[ $first = 1 ] || echo "}"
} >$cfg
mv $cfg /boot/grub/grub.cfg
`

// grubBoot is GRUB's part of a boot (see the top of this file).
const grubBoot = `#!/bin/sh
set -eu
cfg=/boot/grub/grub.cfg
env=/boot/grub/grubenv
[ -e $env ] || grub-editenv $env create
next=$(grub-editenv $env list | sed -n 's/^next_entry=//p')
saved=$(grub-editenv $env list | sed -n 's/^saved_entry=//p')
if [ -n "$next" ]; then
	entry=$next
	grub-editenv $env unset next_entry
elif grep -q '"${saved_entry}"' $cfg && [ -n "$saved" ]; then
	entry=$saved
else
	entry=0
fi
newest=$(sed -n 's|^[[:space:]]*linux[[:space:]]*/boot/vmlinuz-\([^ ]*\) .*|\1|p' $cfg | head -n1)
case $entry in
gnulinux-advanced-fleet\>gnulinux-*-advanced-fleet)
	release=${entry#gnulinux-advanced-fleet>gnulinux-}
	release=${release%-advanced-fleet}
	;;
*) release=$newest ;;
esac
[ -e /boot/vmlinuz-$release ] || release=$newest
echo $release >/run/drover-fleettest/kernel-release
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) boot $(cat /proc/sys/kernel/random/boot_id) entry $entry kernel $release" >>/var/log/drover-fleettest-boots.log
`

// uname prints the modelled kernel for -r (see the top of this file).
const uname = `#!/bin/sh
if [ "$*" = -r ] && [ -s /run/drover-fleettest/kernel-release ]; then
	cat /run/drover-fleettest/kernel-release
	exit 0
fi
exec /bin/uname "$@"
`

// TestKernelFallbackFleet is the kernel fallback on a real agent: the
// node installs kernel 6.1.0-27-fleet, reboots into it, and its probe
// fails on it; the server rolls the node back; the agent sets GRUB's
// one-shot entry to 6.1.0-26-fleet (the kernel it ran before the step),
// reboots, confirms the boot by a new boot ID and uname -r, removes the
// new kernel with apt, and the node ends rolled back on its old kernel,
// the rollback verified: the node's probe runs again on the old kernel
// and passes ("a kernel-like change that fails after reboot is undone by
// the boot-loader fallback and verified"). Then the same with fallback: default and onRollback: hold on a GRUB
// with GRUB_DEFAULT=saved: grub-set-default, the new kernel kept and held
// (apt-mark), and the next reboot still starts the old kernel.
func TestKernelFallbackFleet(t *testing.T) {
	if d, ok := t.Deadline(); ok && time.Until(d) < 6*time.Minute {
		t.Fatalf("the kernel fallback fleet test needs up to 6 minutes; go test's -timeout leaves %s", time.Until(d).Round(time.Second))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := docker(ctx, "image", "inspect", "--format", "{{.Id}}", bootImage); err != nil {
		t.Fatalf("the kernel fallback fleet test needs the image %s: build it with scripts/fleet-rootfs.sh (make deps runs it)", bootImage)
	}
	n := &node{name: "k1", suite: "bookworm", zone: "a", role: "kernel", image: bootImage}
	f := setup(t, []*node{n})
	oldK, newK := kernelReleases[0], kernelReleases[1]
	if k := strings.TrimSpace(f.mustSh(t, n, "uname -r")); k != oldK {
		t.Fatalf("k1 runs kernel %q, want %s", k, oldK)
	}
	boot0 := f.bootID(t, n)
	ro, entries := f.kernelRollout(t, "kernel-fallback", "oneshot", "remove")
	rn := rolloutNode(ro, "k1")
	t.Logf("rollout %s: %s\nk1 failed with: %s", ro.State, rn.Reason, strings.Join(reasons(entries, "k1", engine.PhaseFailed), " | "))
	if rn.Phase != engine.PhaseRolledBack {
		t.Fatalf("k1: phase %s, want rolled-back:\n%s", rn.Phase, describeRollout(ro))
	}
	if got := dispatched(entries)["k1"]; strings.Join(got, " ") != "apply rollback" {
		t.Errorf("k1 got steps %v, want apply then rollback", got)
	}
	if failed := strings.Join(reasons(entries, "k1", engine.PhaseFailed), " | "); !strings.Contains(failed, "kernel works") {
		t.Errorf("k1 failed with %q, want its kernel probe", failed)
	}
	// Running the old kernel, the new one removed, the one-shot entry
	// spent, and three boots: the first, the new kernel's, the fallback's.
	if k := strings.TrimSpace(f.mustSh(t, n, "uname -r")); k != oldK {
		t.Errorf("k1 runs kernel %q after the rollback, want %s", k, oldK)
	}
	pkgs := f.mustSh(t, n, "dpkg-query -W -f='${Package} ${db:Status-Status}\\n' 'drover-kernel-*' 2>&1 || true")
	if !strings.Contains(pkgs, "drover-kernel-"+oldK+" installed") || strings.Contains(pkgs, "drover-kernel-"+newK+" installed") {
		t.Errorf("kernel packages after the rollback:\n%s", pkgs)
	}
	if env := f.mustSh(t, n, "grub-editenv /boot/grub/grubenv list"); strings.Contains(env, "next_entry=gnulinux") {
		t.Errorf("grubenv still names a one-shot entry:\n%s", env)
	}
	boots := f.boots(t, n)
	oldEntry := "gnulinux-advanced-fleet>gnulinux-" + oldK + "-advanced-fleet"
	if len(boots) != 3 || !strings.Contains(boots[0], "boot "+boot0+" entry 0 kernel "+oldK) || !strings.HasSuffix(boots[1], "entry 0 kernel "+newK) ||
		!strings.HasSuffix(boots[2], "entry "+oldEntry+" kernel "+oldK) {
		t.Errorf("boots:\n%s\nwant %s on %s, then %s, then the fallback's entry %s on %s", strings.Join(boots, "\n"), boot0, oldK, newK, oldEntry, oldK)
	}
	if got := f.rollbackStages(n, ro.ID); got != "fallback-boot-set rebooting fallback-confirmed rolled-back" {
		t.Errorf("journal of the rollback step: %q", got)
	}
	rolled := strings.Join(reasons(entries, "k1", engine.PhaseRolledBack), " | ")
	if !strings.Contains(rolled, "(booted kernel "+oldK+" (boot ID ") {
		t.Errorf("rolled back with %q, want the confirmed boot", rolled)
	}
	if !strings.HasSuffix(rolled, "; verified healthy: 1 node probes passed") || !strings.HasSuffix(rn.Reason, "; verified healthy: 1 node probes passed") {
		t.Errorf("rolled back with %q (node: %q), want the rollback verified by the kernel probe", rolled, rn.Reason)
	}
	t.Logf("k1 boots:\n%s\nrolled back: %s", strings.Join(boots, "\n"), rolled)

	// Again, with fallback: default and onRollback: hold, on a GRUB that
	// boots its saved entry (GRUB_DEFAULT=saved): grub-set-default makes
	// the old kernel the default, the node boots it, the new kernel stays
	// installed and held, and a later reboot starts the old kernel again.
	f.mustSh(t, n, "echo GRUB_DEFAULT=saved >/etc/default/grub && /opt/drover/update-grub")
	ro, entries = f.kernelRollout(t, "kernel-fallback-hold", "default", "hold")
	if rn := rolloutNode(ro, "k1"); rn.Phase != engine.PhaseRolledBack {
		t.Fatalf("hold: k1 phase %s, want rolled-back:\n%s", rn.Phase, describeRollout(ro))
	}
	if rolled := strings.Join(reasons(entries, "k1", engine.PhaseRolledBack), " | "); !strings.Contains(rolled, "; the new kernel stays installed but held, not booted, as onRollback: hold says") ||
		strings.Contains(rolled, "restored the snapshots") || !strings.HasSuffix(rolled, "; verified healthy: 1 node probes passed") {
		t.Errorf("hold: rolled back with %q, want the kept kernel said and the rollback verified", rolled)
	}
	if k := strings.TrimSpace(f.mustSh(t, n, "uname -r")); k != oldK {
		t.Errorf("hold: k1 runs kernel %q, want %s", k, oldK)
	}
	if pkgs := f.mustSh(t, n, "dpkg-query -W -f='${Package} ${db:Status-Status}\\n' drover-kernel-"+newK+"; apt-mark showhold"); !strings.Contains(pkgs, "drover-kernel-"+newK+" installed\ndrover-kernel-"+newK+"\n") {
		t.Errorf("hold: want the new kernel installed and held:\n%s", pkgs)
	}
	if env := f.mustSh(t, n, "grub-editenv /boot/grub/grubenv list"); !strings.Contains(env, "saved_entry="+oldEntry+"\n") {
		t.Errorf("hold: grubenv:\n%s\nwant saved_entry=%s", env, oldEntry)
	}
	if got := f.rollbackStages(n, ro.ID); got != "fallback-boot-set rebooting fallback-confirmed rolled-back" {
		t.Errorf("hold: journal of the rollback step: %q", got)
	}
	mustDocker(t, "restart", n.container)
	f.waitIn(t, n, "test $(wc -l </var/log/drover-fleettest-boots.log) -ge 6", time.Minute, "the boot after docker restart")
	boots = f.boots(t, n)
	if len(boots) != 6 || !strings.HasSuffix(boots[3], "entry 0 kernel "+newK) || !strings.HasSuffix(boots[4], "entry "+oldEntry+" kernel "+oldK) ||
		!strings.HasSuffix(boots[5], "entry "+oldEntry+" kernel "+oldK) {
		t.Errorf("hold: boots:\n%s\nwant the new kernel, the fallback's default, and the old kernel again on the next boot", strings.Join(boots, "\n"))
	}
	t.Logf("hold: rolled back: %s\nboots:\n%s", strings.Join(reasons(entries, "k1", engine.PhaseRolledBack), " | "), strings.Join(boots, "\n"))
}

// boots are the lines of k1's boot log (grub-boot).
func (f *fleet) boots(t *testing.T, n *node) []string {
	t.Helper()
	return strings.Split(strings.TrimSpace(f.mustSh(t, n, "cat /var/log/drover-fleettest-boots.log")), "\n")
}

// rollbackStages lists the action stages and reboots the journal of n
// holds for the rollback step of rollout.
func (f *fleet) rollbackStages(n *node, rollout string) string {
	var stages []string
	for _, r := range f.journal(n) {
		if id, _ := r["step"].(string); !strings.HasPrefix(id, rollout+"/k1/rollback/") {
			continue
		}
		switch r["type"] {
		case "action":
			stages = append(stages, fmt.Sprint(r["stage"]))
		case "rebooting":
			stages = append(stages, "rebooting")
		}
	}
	return strings.Join(stages, " ")
}

// kernelRollout installs the new kernel on k1 with a probe that fails on
// it, and waits until k1 is rolled back (or failed).
func (f *fleet) kernelRollout(t *testing.T, name, fallback, onRollback string) (api.Rollout, []api.AuditEntry) {
	t.Helper()
	newK := kernelReleases[1]
	plan := fmt.Sprintf(`apiVersion: drover.dev/v1
name: %s
target:
  selector: node.id == "k1"
change:
  actions:
    - name: kernel
      kernel:
        package: drover-kernel-%s
        version: "1.0"
        fallback: %s
        onRollback: %s
  reboot: if-required
waves:
  - name: all
failureBudget:
  maxFailures: 0
  onBreach: rollback-wave
gates:
  bakeTime: 1s
  node:
    probes:
      - name: kernel works
        kind: command
        command: [sh, -c, 'test "$(uname -r)" != %s']
        timeout: 2s
        interval: 1s
    minHealthy: 2s
    healthyDeadline: 8s
`, name, newK, fallback, onRollback, newK)
	ro, err := f.api.CreateRollout(context.Background(), name+".yaml", plan)
	if err != nil {
		t.Fatalf("create: %v\n%s", err, plan)
	}
	done := f.waitRollout(t, ro.ID, 5*time.Minute, "node k1 rolled back or failed", func(r api.Rollout) bool {
		rn := rolloutNode(r, "k1")
		return rn.Phase == engine.PhaseRolledBack || rn.Phase == engine.PhaseFailed && r.State.Terminal()
	})
	return done, f.audit(t, ro.ID)
}
