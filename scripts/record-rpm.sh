#!/usr/bin/env bash
# Records what the real rpm, dnf and zypper print for the commands the dnf
# and zypper drivers run (internal/driver/dnf.go, zypper.go), as the txtar
# transcripts their tests replay: internal/driver/testdata/dnf/*.txt and
# internal/driver/testdata/zypper/*.txt (each rewritten whole). Run it as
# root on Debian, whose dnf (4.14), zypper (1.14) and rpm (4.18) are the
# upstream tools (scripts/deps.sh installs them, with createrepo-c):
#
#	scripts/record-rpm.sh             # every scenario
#	scripts/record-rpm.sh dnf/lock    # one
#	scripts/record-rpm.sh shell       # a shell on a fresh fake host
#
# (about 60 s for every scenario: the lock ones wait for a slow install).
#
# The packages come from internal/driver/testdata/dnf/rpm/*.spec, built
# with rpmbuild into a file:// repository made by createrepo_c. Each
# scenario runs in a mount namespace of its own (unshare) with overlays on
# /etc, /usr and /var and an empty /run: dnf, zypper and rpm see a host of
# their own, with the rpm database in /var/lib/rpm as on RHEL and SUSE
# (Debian's rpm keeps it in ~/.rpmdb), drover-release standing in for
# redhat-release, the test repository and nothing else, and run exactly
# the command lines the drivers run (no --installroot). Nothing they do
# reaches the machine. dnf's versionlock and needs-restarting come from
# Debian's dnf-plugins-core, which conflicts with zypper: the script fetches
# it with apt-get download and points dnf at it without installing it.
#
# Commands run with LC_ALL=C and stdin from /dev/null, as the drivers'
# ExecRunner runs them. A transcript section is "-- $ COMMAND --" (the
# command line as the driver's commandLine renders it) with its stdout,
# then "-- stderr --" and "-- exit --" when not empty and not 0; "exit"
# says "notfound" for a command that is not installed and "timeout" for
# one killed after a timeout, as the ExecRunner would.
set -euo pipefail

log() { printf 'record-rpm: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

root=$(cd "$(dirname "$0")/.." && pwd)
testdata=$root/internal/driver/testdata
specs=$testdata/dnf/rpm

# ---- recording ------------------------------------------------------------

# cmdline renders a command as the driver's commandLine does: arguments
# that are empty or hold spaces, quotes or shell metacharacters are single
# quoted.
cmdline() {
	local out="" a re=$' |\t|[\'"$%{}*?;&|<>()\\\\]'
	for a in "$@"; do
		if [[ -z $a || $a =~ $re ]]; then
			a="'${a//\'/\'\\\'\'}'"
		fi
		out+=" $a"
	done
	printf '%s' "${out# }"
}

# put FILE appends FILE to the transcript, ending it with a newline.
put() {
	[[ -s $1 ]] || return 0
	cat "$1" >>"$T"
	[[ -z $(tail -c1 "$1") ]] || echo >>"$T"
}

# rec CMD ARG... runs a command as the drivers do and appends what it
# printed and its exit code to the transcript $T.
rec() {
	rec_timeout 0 "$@"
}

# rec_timeout SECONDS CMD ARG... is rec with the command killed after
# SECONDS (0: never), as the ExecRunner kills a command at its timeout.
rec_timeout() {
	local secs=$1 code=0 start=$SECONDS
	shift
	printf -- '-- $ %s --\n' "$(cmdline "$@")" >>"$T"
	if ! command -v "$1" >/dev/null; then
		printf -- '-- exit --\nnotfound\n' >>"$T"
		return 0
	fi
	if ((secs > 0)); then
		# (in a subshell, whose stderr takes bash's "Killed" notice)
		(
			LC_ALL=C timeout -s KILL "$secs" "$@" >"$W/stdout" 2>"$W/stderr" </dev/null
			exit $?
		) 2>/dev/null || code=$?
		((code == 137)) && code=timeout
	else
		LC_ALL=C "$@" >"$W/stdout" 2>"$W/stderr" </dev/null || code=$?
	fi
	put "$W/stdout"
	if [[ -s $W/stderr ]]; then
		printf -- '-- stderr --\n' >>"$T"
		put "$W/stderr"
	fi
	if [[ $code != 0 ]]; then
		printf -- '-- exit --\n%s\n' "$code" >>"$T"
	fi
	log "  $(cmdline "$@"): exit $code, $((SECONDS - start))s"
}

# begin TOOL NAME DESCRIPTION starts the transcript testdata/TOOL/NAME.txt
# with its header: the tool versions, the command, what it records.
begin() {
	T=$testdata/$1/$2.txt
	local versions
	case $1 in
	dnf) versions="dnf $(dnf --version | head -1), $(rpm --version | sed 's/ version//')" ;;
	zypper) versions="$(zypper --version), $(rpm --version | sed 's/ version//')" ;;
	esac
	{
		echo "Recorded by scripts/record-rpm.sh $1/$2 with the real $versions"
		echo "on $(. /etc/os-release && echo "$PRETTY_NAME") (a fake host in a mount namespace; see the script)."
		printf '%s\n\n' "$3" | fold -s -w 74 | sed 's/ *$//'
	} >"$T"
}

# long is the name of drover-longname.spec's package.
long=drover-testsvc-with-a-package-name-too-long-for-the-columns-of-dnf-list

# q is the driver's rpm query of one package.
q() { rec rpm -q --qf '%{EPOCH}:%{VERSION}-%{RELEASE}\n' "$1"; }

# lk is the option the dnf driver gives the dnf commands that change the
# system: fail at once, not wait, when another process holds the lock.
lk=--setopt=exit_on_lock=True

# kernel is the driver's look for the packages owning the running kernel,
# which Rollback runs before it removes anything.
kernel() {
	local r
	r=$(uname -r)
	rec uname -r
	rec rpm -qf --qf '%{NAME} %{EPOCH}:%{VERSION}-%{RELEASE}\n' "/boot/vmlinuz-$r" "/lib/modules/$r"
}

# quiet CMD... runs a setup command, showing its output only if it fails.
quiet() {
	if ! LC_ALL=C "$@" >"$W/setup.log" 2>&1 </dev/null; then
		cat "$W/setup.log" >&2
		die "setup failed: $*"
	fi
}

# ---- the fake host ----------------------------------------------------------

# fake_host [USR_SIZE] turns this mount namespace into an RPM host: the
# writes to /etc, /usr and /var go to overlays in $W/ns (the one on /usr
# on a tmpfs of USR_SIZE when given: a full disk), /run is empty, and the
# package databases and repositories are reset.
fake_host() {
	local ns=$W/ns d up
	# What follows deletes the package databases of /var and /etc: only
	# ever in a mount namespace of its own, on overlays.
	[[ $(readlink /proc/self/ns/mnt) != "$(readlink /proc/1/ns/mnt)" ]] ||
		die "fake_host outside a mount namespace of its own"
	mkdir -p "$ns"
	mount -t tmpfs tmpfs "$ns"
	for d in etc var usr; do
		up=$ns/$d
		mkdir -p "$up"
		if [[ $d == usr && -n ${1:-} ]]; then
			mount -t tmpfs -o "size=$1" tmpfs "$up"
		fi
		mkdir -p "$up/upper" "$up/work"
		mount -t overlay overlay -o "lowerdir=/$d,upperdir=$up/upper,workdir=$up/work" "/$d"
		[[ $(findmnt -n -o FSTYPE --mountpoint "/$d") == overlay ]] || die "/$d is not an overlay"
	done
	mount -t tmpfs tmpfs /run
	rm -rf /var/lib/rpm /var/lib/dnf /var/cache/dnf /var/log/dnf* /var/log/hawkey.log \
		/var/lib/zypp /var/cache/zypp /var/log/zypp /var/log/zypper.log \
		/etc/zypp/repos.d /etc/zypp/services.d /etc/zypp/locks /etc/yum.repos.d /etc/dnf/plugins
	mkdir -p /etc/rpm /var/lib/rpm /etc/zypp/repos.d /etc/yum.repos.d /etc/dnf/plugins
	echo '%_dbpath /var/lib/rpm' >/etc/rpm/macros.dbpath
	rpm --initdb

	# dnf: RHEL 9's dnf.conf, the test repository, dnf-plugins-core.
	cat >/etc/dnf/dnf.conf <<-EOF
		[main]
		gpgcheck=1
		installonly_limit=3
		clean_requirements_on_remove=True
		best=True
		skip_if_unavailable=False
		pluginpath=$W/plugins
	EOF
	cat >/etc/yum.repos.d/drover-test.repo <<-EOF
		[drover-test]
		name=drover test repository
		baseurl=file://$W/repo
		gpgcheck=0
	EOF
	cp "$W/dpc/etc/dnf/plugins/versionlock.conf" "$W/dpc/etc/dnf/plugins/versionlock.list" /etc/dnf/plugins/
	export PYTHONPATH=$W/dpc/usr/lib/python3/dist-packages
	# On RHEL /usr/bin/needs-restarting is dnf-plugins-core's dnf-utils
	# (it runs dnf needs-restarting); Debian's zypper ships a script of
	# that name that runs zypper needs-rebooting.
	cp "$W/dpc/usr/libexec/dnf-utils-3" /usr/bin/needs-restarting

	# zypper: the test repository. Debian's /etc/zypp/systemCheck asks for
	# glibc, which a SUSE host has in its rpm database and this one does not.
	rm -f /etc/zypp/systemCheck
	quiet zypper --non-interactive addrepo --no-gpgcheck "file://$W/repo" drover-test
	quiet zypper --non-interactive refresh

	# The system release, without which the rpm database is empty: dnf
	# warns on every command that it cannot tell $releasever, and zypper's
	# rpmdb2solv fails (exit 8) when a removal empties it.
	quiet rpm -i "$W"/repo/noarch/drover-release-*.rpm
}

# no_dnf_plugins makes dnf a dnf without dnf-plugins-core: no versionlock,
# no needs-restarting.
no_dnf_plugins() {
	sed -i '/^pluginpath=/d' /etc/dnf/dnf.conf
	rm -rf /etc/dnf/plugins/* /usr/bin/needs-restarting
}

# dnf_reboot_hint makes needs-restarting -r report drover-testsvc as a
# core package (as it does kernel, glibc and systemd).
dnf_reboot_hint() {
	mkdir -p /etc/dnf/plugins/needs-restarting.d
	echo drover-testsvc >/etc/dnf/plugins/needs-restarting.d/drover.conf
}

# zypper_reboot_hint makes zypper flag a reboot when drover-testsvc is
# installed (as it does for kernel, glibc and systemd).
zypper_reboot_hint() {
	mkdir -p /etc/zypp/needreboot.d
	echo drover-testsvc >/etc/zypp/needreboot.d/drover
}

# wait_for FILE waits until FILE is not empty.
wait_for() {
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -s $1 ]] && return 0
		sleep 0.1
	done
	[[ ! -e $W/other.log ]] || cat "$W/other.log" >&2
	die "timed out waiting for $1"
}

# ---- dnf scenarios -----------------------------------------------------------

# Each scenario runs on a fresh fake host and records, in order, every
# command the driver runs in the flow its test replays (the "# Preflight"
# comments name the driver's calls): a command the driver runs twice is
# run, and recorded, twice.

dnf/upgrade() {
	quiet dnf -y install drover-testsvc-1.0-1
	begin dnf upgrade "drover-testsvc 1.0-1 installed, pinned to 1.1-1 (operation upgrade, no hold, update: true): Preflight, Apply, Verify. No reboot needed."
	# Preflight
	rec dnf makecache
	q drover-testsvc
	rec dnf list --showduplicates drover-testsvc
	# Apply
	rec dnf makecache
	q drover-testsvc
	rec dnf versionlock list
	rec dnf $lk install -y drover-testsvc-1.1-1
	q drover-testsvc
	rec needs-restarting -r
	# Verify
	q drover-testsvc
}

dnf/already() {
	quiet dnf -y install drover-testsvc-1.1-1
	begin dnf already "drover-testsvc 1.1-1 installed and pinned: nothing to do (Preflight, Apply). The dnf install is not run by the driver; it shows dnf would do nothing too."
	# Preflight
	q drover-testsvc
	# Apply
	q drover-testsvc
	rec dnf versionlock list
	rec needs-restarting -r
	# (not the driver)
	rec dnf $lk install -y drover-testsvc-1.1-1
}

dnf/install() {
	begin dnf install "drover-testsvc not installed; operation install pins 1.1-1: Snapshot, Preflight, Apply; then Rollback to the snapshot, which recorded it absent (dnf remove, after a look at which package owns the running kernel: none here), and checks it."
	# Snapshot
	rec dnf versionlock list
	q drover-testsvc
	# Preflight
	q drover-testsvc
	rec dnf list --showduplicates drover-testsvc
	# Apply
	q drover-testsvc
	rec dnf versionlock list
	rec dnf $lk install -y drover-testsvc-1.1-1
	q drover-testsvc
	rec needs-restarting -r
	# Rollback
	rec dnf versionlock list
	q drover-testsvc
	kernel
	rec dnf $lk remove -y drover-testsvc
	rec needs-restarting -r
	rec dnf versionlock list
	q drover-testsvc
}

dnf/hold() {
	quiet dnf -y install drover-testsvc-1.0-1
	quiet dnf versionlock add drover-testsvc
	begin dnf hold "drover-testsvc 1.0-1 installed and versionlocked, pinned to 1.1-1 with hold: true: Preflight (versionlock list first: the host can hold; dnf list shows every version: the lock only excludes them from transactions), Apply (unlock, install, lock again), Verify."
	# Preflight
	rec dnf versionlock list
	q drover-testsvc
	rec dnf list --showduplicates drover-testsvc
	# Apply
	rec dnf versionlock list
	q drover-testsvc
	rec dnf $lk versionlock delete drover-testsvc
	rec dnf $lk install -y drover-testsvc-1.1-1
	q drover-testsvc
	rec dnf $lk versionlock add drover-testsvc-1.1-1
	rec needs-restarting -r
	# Verify
	q drover-testsvc
	rec dnf versionlock list
}

dnf/downgrade() {
	dnf_reboot_hint
	quiet dnf -y install drover-testsvc-1.0-1
	quiet dnf -y install drover-testsvc-1.1-1
	quiet dnf versionlock add drover-testsvc-1.1-1
	begin dnf downgrade "Rollback of drover-testsvc from 1.1-1 (versionlocked) to the snapshot's 1.0-1 (not held): unlock, dnf downgrade, check; then a repeated Rollback that finds it restored. needs-restarting.d lists drover-testsvc, so needs-restarting -r reports a reboot."
	# Rollback
	rec dnf versionlock list
	q drover-testsvc
	rec dnf $lk versionlock delete drover-testsvc
	rec dnf $lk downgrade -y drover-testsvc-1.0-1
	rec needs-restarting -r
	rec dnf versionlock list
	q drover-testsvc
	# Rollback again
	rec dnf versionlock list
	q drover-testsvc
	rec needs-restarting -r
	rec dnf versionlock list
	q drover-testsvc
}

dnf/epoch() {
	quiet dnf -y install drover-epochsvc-1:2.0-1.el9
	begin dnf epoch "drover-epochsvc 1:2.0-1.el9 installed (epoch 1, as RHEL's nginx), pinned to 1:2.1-1.el9 with hold: true: Preflight, Apply (versionlock add takes the epoch); then Rollback to the snapshot's 1:2.0-1.el9 (not held), which checks it, and Verify of the snapshot."
	# Preflight
	rec dnf versionlock list
	q drover-epochsvc
	rec dnf list --showduplicates drover-epochsvc
	# Apply
	rec dnf versionlock list
	q drover-epochsvc
	rec dnf $lk install -y drover-epochsvc-1:2.1-1.el9
	q drover-epochsvc
	rec dnf $lk versionlock add drover-epochsvc-1:2.1-1.el9
	rec needs-restarting -r
	# Rollback
	rec dnf versionlock list
	q drover-epochsvc
	rec dnf $lk versionlock delete drover-epochsvc
	rec dnf $lk downgrade -y drover-epochsvc-1:2.0-1.el9
	rec needs-restarting -r
	rec dnf versionlock list
	q drover-epochsvc
	# Verify
	q drover-epochsvc
}

dnf/longname() {
	begin dnf longname "dnf list of a package whose NAME.ARCH is wider than dnf's column: without a terminal dnf does not wrap it onto a line of its own (yum and dnf on a terminal do)."
	rec dnf list --showduplicates "$long"
}

dnf/errors() {
	quiet dnf -y install drover-testsvc-1.0-1
	begin dnf errors "drover-testsvc 1.0-1 installed. A pin no repository has (9.9-1) and a package no repository has (nosuchpkg 2.0-1, operation install), each in Preflight and in Apply (every test replays from the start)."
	q drover-testsvc
	rec dnf list --showduplicates drover-testsvc
	rec dnf versionlock list
	rec dnf $lk install -y drover-testsvc-9.9-1
	q nosuchpkg
	rec dnf list --showduplicates nosuchpkg
	rec dnf $lk install -y nosuchpkg-2.0-1
}

dnf/noplugins() {
	no_dnf_plugins
	quiet dnf -y install drover-testsvc-1.0-1
	begin dnf noplugins "A host without dnf-plugins-core (no versionlock, no needs-restarting): drover-testsvc 1.0-1 installed, pinned to 1.1-1. With hold: true, Preflight and Apply stop at their first command, dnf versionlock list, before anything changes. Without hold: Preflight, then Apply installs 1.1-1 (nothing is held; no reboot)."
	# Preflight and Apply with hold: true; Apply without
	rec dnf versionlock list
	# Preflight without hold
	q drover-testsvc
	rec dnf list --showduplicates drover-testsvc
	# Apply without hold
	q drover-testsvc
	rec dnf $lk install -y drover-testsvc-1.1-1
	q drover-testsvc
	rec needs-restarting -r
}

# other_dnf installs drover-slowsvc in the background, holding dnf's
# rpmdb lock while its scriptlet sleeps; other_wait waits for it.
other_dnf() {
	LC_ALL=C dnf -y install drover-slowsvc >"$W/other.log" 2>&1 </dev/null &
	other=$!
	wait_for /var/lib/dnf/rpmdb_lock.pid
}

other_wait() {
	wait "$other" || {
		cat "$W/other.log" >&2
		die "the other command failed"
	}
}

dnf/lock() {
	quiet dnf -y install drover-testsvc-1.0-1
	begin dnf lock "Another dnf installs drover-slowsvc (its pre-install scriptlet sleeps) and holds dnf's rpmdb lock (/var/lib/dnf/rpmdb_lock.pid) while the driver applies drover-testsvc 1.1-1: the reads run (rpm -q, dnf versionlock list), the install with exit_on_lock fails at once (exit 200), naming the holder. Then what the same install does without exit_on_lock (not the driver's command line): it waits for the lock, printing the other's pid, until the runner's timeout (5 s here) kills it."
	other_dnf
	# Apply
	q drover-testsvc
	rec dnf versionlock list
	rec dnf $lk install -y drover-testsvc-1.1-1
	# (not the driver)
	rec_timeout 5 dnf install -y drover-testsvc-1.1-1
	other_wait
}

dnf/nospace() {
	begin dnf nospace "/usr is a 1 MiB tmpfs; drover-bigsvc installs 4 MiB there (operation install): Preflight passes (dnf checks space in its transaction test), Apply fails."
	# Preflight
	q drover-bigsvc
	rec dnf list --showduplicates drover-bigsvc
	# Apply
	q drover-bigsvc
	rec dnf versionlock list
	rec dnf $lk install -y drover-bigsvc-1.0-1
}

dnf/kernel() {
	quiet dnf -y install drover-kernel-6.1-1
	begin dnf kernel "drover-kernel (provides installonlypkg(kernel): installonly for dnf) 6.1-1 installed; a kernel action installs 6.2-1: Snapshot, Preflight, Apply (dnf installs 6.2-1 beside 6.1-1), Verify; then Rollback (which package owns the running kernel: none here; dnf remove of 6.2-1 alone; the check), and a repeated Rollback that finds the snapshot's versions."
	# Snapshot
	rec dnf versionlock list
	q drover-kernel
	# Preflight
	q drover-kernel
	rec dnf list --showduplicates drover-kernel
	# Apply
	rec dnf versionlock list
	q drover-kernel
	rec dnf $lk install -y drover-kernel-6.2-1
	q drover-kernel
	rec needs-restarting -r
	# Verify
	q drover-kernel
	# Rollback
	rec dnf versionlock list
	q drover-kernel
	kernel
	rec dnf $lk remove -y drover-kernel-6.2-1
	rec needs-restarting -r
	rec dnf versionlock list
	q drover-kernel
	# Rollback again
	rec dnf versionlock list
	q drover-kernel
	rec needs-restarting -r
	rec dnf versionlock list
	q drover-kernel
}

dnf/kernel-limit() {
	quiet dnf -y install drover-kernel-6.1-1
	quiet dnf -y install drover-kernel-6.2-1
	quiet dnf -y install drover-kernel-6.3-1
	begin dnf kernel-limit "drover-kernel 6.1-1, 6.2-1 and 6.3-1 installed, installonly_limit=3 (RHEL's); a kernel action installs 6.4-1: Snapshot, Apply (dnf installs 6.4-1 and removes the oldest, 6.1-1); then Rollback: dnf remove of 6.4-1, then dnf downgrade to 6.1-1 (which installs it beside 6.2-1 and 6.3-1), and the check."
	# Snapshot
	rec dnf versionlock list
	q drover-kernel
	# Apply
	rec dnf versionlock list
	q drover-kernel
	rec dnf $lk install -y drover-kernel-6.4-1
	q drover-kernel
	rec needs-restarting -r
	# Rollback
	rec dnf versionlock list
	q drover-kernel
	kernel
	rec dnf $lk remove -y drover-kernel-6.4-1
	rec dnf $lk downgrade -y drover-kernel-6.1-1
	rec needs-restarting -r
	rec dnf versionlock list
	q drover-kernel
}

dnf/kernel-running() {
	quiet dnf -y install drover-kernel-6.1-1
	begin dnf kernel-running "drover-kernel 6.1-1 installed: Snapshot. Then the step installed 6.2-1 and the node rebooted into it: this 6.2-1's modules are in /lib/modules/\$(uname -r), so rpm -qf finds it owns the running kernel. Rollback refuses before changing anything. Last, not the driver: dnf itself refuses to remove it (protect_running_kernel)."
	# Snapshot
	rec dnf versionlock list
	q drover-kernel
	quiet rpm -i "$W"/running/noarch/drover-kernel-6.2-1.noarch.rpm
	# Rollback
	rec dnf versionlock list
	q drover-kernel
	kernel
	# (not the driver)
	rec dnf $lk remove -y drover-kernel-6.2-1
}

# ---- zypper scenarios ----------------------------------------------------------

zypper/upgrade() {
	zypper_reboot_hint
	quiet zypper --non-interactive install drover-testsvc=1.0-1
	begin zypper upgrade "drover-testsvc 1.0-1 installed, pinned to 1.1-1 with hold: true (update: true): Preflight (locks first: the host can hold), Apply, Verify. /etc/zypp/needreboot.d lists drover-testsvc, so installing it flags a reboot."
	# Preflight
	rec zypper --non-interactive locks
	rec zypper --non-interactive refresh
	q drover-testsvc
	rec zypper --non-interactive search --details --match-exact drover-testsvc
	# Apply
	rec zypper --non-interactive refresh
	q drover-testsvc
	rec zypper --non-interactive locks
	rec zypper --non-interactive install --oldpackage drover-testsvc=1.1-1
	q drover-testsvc
	rec zypper --non-interactive addlock drover-testsvc
	rec zypper --non-interactive needs-rebooting
	# Verify
	q drover-testsvc
	rec zypper --non-interactive locks
}

zypper/already() {
	quiet zypper --non-interactive install drover-testsvc=1.1-1
	begin zypper already "drover-testsvc 1.1-1 installed and pinned: nothing to do (Preflight, Apply). The zypper install is not run by the driver; it shows zypper would do nothing too."
	# Preflight
	q drover-testsvc
	# Apply
	q drover-testsvc
	rec zypper --non-interactive locks
	rec zypper --non-interactive needs-rebooting
	# (not the driver)
	rec zypper --non-interactive install --oldpackage drover-testsvc=1.1-1
}

zypper/install() {
	begin zypper install "drover-testsvc not installed; operation install pins 1.1-1: Snapshot, Preflight, Apply; then Rollback to the snapshot, which recorded it absent (zypper remove, after a look at which package owns the running kernel: none here), and checks it."
	# Snapshot
	rec zypper --non-interactive locks
	q drover-testsvc
	# Preflight
	q drover-testsvc
	rec zypper --non-interactive search --details --match-exact drover-testsvc
	# Apply
	q drover-testsvc
	rec zypper --non-interactive locks
	rec zypper --non-interactive install --oldpackage drover-testsvc=1.1-1
	q drover-testsvc
	rec zypper --non-interactive needs-rebooting
	# Rollback
	rec zypper --non-interactive locks
	q drover-testsvc
	kernel
	rec zypper --non-interactive remove drover-testsvc
	rec zypper --non-interactive needs-rebooting
	rec zypper --non-interactive locks
	q drover-testsvc
}

zypper/downgrade() {
	quiet zypper --non-interactive install drover-testsvc=1.1-1
	quiet zypper --non-interactive addlock drover-testsvc
	begin zypper downgrade "Rollback of drover-testsvc from 1.1-1 (locked) to the snapshot's 1.0-1 (not held): removelock, zypper install --oldpackage, check; then a repeated Rollback that finds it restored. (zypper install --oldpackage of a locked package fails with exit 4, \"Problem: conflicting requests\": the driver removes the lock first.)"
	# Rollback
	rec zypper --non-interactive locks
	q drover-testsvc
	rec zypper --non-interactive removelock drover-testsvc
	rec zypper --non-interactive install --oldpackage drover-testsvc=1.0-1
	rec zypper --non-interactive needs-rebooting
	rec zypper --non-interactive locks
	q drover-testsvc
	# Rollback again
	rec zypper --non-interactive locks
	q drover-testsvc
	rec zypper --non-interactive needs-rebooting
	rec zypper --non-interactive locks
	q drover-testsvc
}

zypper/epoch() {
	quiet zypper --non-interactive install drover-epochsvc=1:2.0-1.el9
	begin zypper epoch "drover-epochsvc 1:2.0-1.el9 installed (epoch 1), pinned to 1:2.1-1.el9: Preflight, Apply; then Rollback to 1:2.0-1.el9, which checks it, and Verify of the snapshot."
	# Preflight
	q drover-epochsvc
	rec zypper --non-interactive search --details --match-exact drover-epochsvc
	# Apply
	q drover-epochsvc
	rec zypper --non-interactive locks
	rec zypper --non-interactive install --oldpackage drover-epochsvc=1:2.1-1.el9
	q drover-epochsvc
	rec zypper --non-interactive needs-rebooting
	# Rollback
	rec zypper --non-interactive locks
	q drover-epochsvc
	rec zypper --non-interactive install --oldpackage drover-epochsvc=1:2.0-1.el9
	rec zypper --non-interactive needs-rebooting
	rec zypper --non-interactive locks
	q drover-epochsvc
	# Verify
	q drover-epochsvc
}

zypper/longname() {
	begin zypper longname "zypper search of a package whose name is wider than its column: zypper widens the table."
	rec zypper --non-interactive search --details --match-exact "$long"
}

zypper/errors() {
	quiet zypper --non-interactive install drover-testsvc=1.0-1
	begin zypper errors "drover-testsvc 1.0-1 installed. A pin no repository has (9.9-1) and a package no repository has (nosuchpkg 2.0-1, operation install), each in Preflight and in Apply (every test replays from the start)."
	q drover-testsvc
	rec zypper --non-interactive search --details --match-exact drover-testsvc
	rec zypper --non-interactive locks
	rec zypper --non-interactive install --oldpackage drover-testsvc=9.9-1
	q nosuchpkg
	rec zypper --non-interactive search --details --match-exact nosuchpkg
	rec zypper --non-interactive install --oldpackage nosuchpkg=2.0-1
}

zypper/lock() {
	quiet zypper --non-interactive install drover-testsvc=1.0-1
	begin zypper lock "Another zypper installs drover-slowsvc (its pre-install scriptlet sleeps) and holds the zypp lock (/run/zypp.pid) while the driver works on drover-testsvc 1.1-1: every zypper command fails at once (exit 7), even search and locks."
	LC_ALL=C zypper --non-interactive install drover-slowsvc >"$W/other.log" 2>&1 </dev/null &
	other=$!
	wait_for /run/zypp.pid
	# Preflight
	q drover-testsvc
	rec zypper --non-interactive search --details --match-exact drover-testsvc
	# Apply
	q drover-testsvc
	rec zypper --non-interactive locks
	# (were locks allowed)
	rec zypper --non-interactive install --oldpackage drover-testsvc=1.1-1
	other_wait
}

zypper/nospace() {
	begin zypper nospace "/usr is a 1 MiB tmpfs; drover-bigsvc installs 4 MiB there (operation install): Preflight passes, Apply fails when rpm checks the space (exit 8)."
	# Preflight
	q drover-bigsvc
	rec zypper --non-interactive search --details --match-exact drover-bigsvc
	# Apply
	q drover-bigsvc
	rec zypper --non-interactive locks
	rec zypper --non-interactive install --oldpackage drover-bigsvc=1.0-1
}

zypper/kernel() {
	quiet zypper --non-interactive install drover-kernel=6.1-1
	begin zypper kernel "drover-kernel (provides multiversion(kernel): multiversion for zypper, whose zypp.conf says multiversion = provides:multiversion(kernel) as SUSE's does) 6.1-1 installed; a kernel action installs 6.2-1: Snapshot, Preflight, Apply (zypper installs 6.2-1 beside 6.1-1), Verify; then Rollback (which package owns the running kernel: none here; zypper remove of 6.2-1 alone; the check), and a repeated Rollback that finds the snapshot's versions."
	# Snapshot
	rec zypper --non-interactive locks
	q drover-kernel
	# Preflight
	q drover-kernel
	rec zypper --non-interactive search --details --match-exact drover-kernel
	# Apply
	rec zypper --non-interactive locks
	q drover-kernel
	rec zypper --non-interactive install --oldpackage drover-kernel=6.2-1
	q drover-kernel
	rec zypper --non-interactive needs-rebooting
	# Verify
	q drover-kernel
	# Rollback
	rec zypper --non-interactive locks
	q drover-kernel
	kernel
	rec zypper --non-interactive remove drover-kernel=6.2-1
	rec zypper --non-interactive needs-rebooting
	rec zypper --non-interactive locks
	q drover-kernel
	# Rollback again
	rec zypper --non-interactive locks
	q drover-kernel
	rec zypper --non-interactive needs-rebooting
	rec zypper --non-interactive locks
	q drover-kernel
}

zypper/kernel-running() {
	quiet zypper --non-interactive install drover-kernel=6.1-1
	begin zypper kernel-running "drover-kernel 6.1-1 installed: Snapshot. Then the step installed 6.2-1 and the node rebooted into it: this 6.2-1's modules are in /lib/modules/\$(uname -r), so rpm -qf finds it owns the running kernel. Rollback refuses before changing anything. Last, not the driver: zypper, unlike dnf, removes it when asked."
	# Snapshot
	rec zypper --non-interactive locks
	q drover-kernel
	quiet rpm -i "$W"/running/noarch/drover-kernel-6.2-1.noarch.rpm
	# Rollback
	rec zypper --non-interactive locks
	q drover-kernel
	kernel
	# (not the driver)
	rec zypper --non-interactive remove drover-kernel=6.2-1
	q drover-kernel
}

scenarios=(
	dnf/upgrade dnf/already dnf/install dnf/hold dnf/downgrade dnf/epoch dnf/longname
	dnf/errors dnf/noplugins dnf/lock dnf/nospace dnf/kernel dnf/kernel-limit dnf/kernel-running
	zypper/upgrade zypper/already zypper/install zypper/downgrade zypper/epoch
	zypper/longname zypper/errors zypper/lock zypper/nospace zypper/kernel zypper/kernel-running
)

# ---- main -----------------------------------------------------------------------

# in_namespace SCENARIO runs one scenario (or a shell) on a fresh fake host;
# the script runs it in a mount namespace of its own.
in_namespace() {
	case $1 in
	*/nospace) fake_host 1m ;;
	*) fake_host ;;
	esac
	if [[ $1 == shell ]]; then
		log "a fake host: exit the shell to drop it"
		bash -i </dev/tty
		return
	fi
	"$1"
}

build_repo() {
	local spec v
	mkdir -p "$W/repo"
	for spec in "$specs"/*.spec; do
		case $(basename "$spec") in
		drover-testsvc.spec) v="1.0 1.1 1.2" ;;
		drover-epochsvc.spec) v="2.0 2.1" ;;
		drover-kernel.spec) v="6.1 6.2 6.3 6.4" ;;
		*) v="-" ;;
		esac
		for v in $v; do
			quiet rpmbuild -bb --quiet --define "_topdir $W/build" --define "_rpmdir $W/repo" \
				--define "ver $v" --define '_buildhost drover' "$spec"
		done
	done
	quiet createrepo_c "$W/repo"
	# The kernel-running scenarios' 6.2-1, outside the repository: its
	# modules directory is named after this machine's kernel, uname -r.
	quiet rpmbuild -bb --quiet --define "_topdir $W/build" --define "_rpmdir $W/running" \
		--define "ver 6.2" --define "kver $(uname -r)" --define '_buildhost drover' "$specs/drover-kernel.spec"
}

fetch_dnf_plugins() {
	(cd "$W" && quiet apt-get download dnf-plugins-core)
	dpkg-deb -x "$W"/dnf-plugins-core_*.deb "$W/dpc"
	# The plugins of RHEL 9's dnf-plugins-core (needs-restarting) and
	# python3-dnf-plugin-versionlock; not local, changelog and the rest.
	mkdir -p "$W/plugins"
	cp "$W"/dpc/usr/lib/python3/dist-packages/dnf-plugins/{needs_restarting,versionlock}.py "$W/plugins/"
}

main() {
	if [[ ${1:-} == --in-namespace ]]; then
		W=$2
		in_namespace "$3"
		return
	fi
	[[ $(id -u) == 0 ]] || die "run as root (it mounts overlays in a mount namespace)"
	local t missing=()
	for t in dnf zypper rpm rpmbuild createrepo_c unshare apt-get; do
		command -v "$t" >/dev/null || missing+=("$t")
	done
	((${#missing[@]} == 0)) || die "missing ${missing[*]}: run scripts/deps.sh (apt-get install dnf zypper rpm createrepo-c)"
	local todo=("$@")
	((${#todo[@]} > 0)) || todo=("${scenarios[@]}")
	W=$(mktemp -d /tmp/drover-record-rpm.XXXXXX)
	trap 'rm -rf "$W"' EXIT
	build_repo
	fetch_dnf_plugins
	local s
	for s in "${todo[@]}"; do
		[[ $s == shell ]] || declare -F "$s" >/dev/null || die "no scenario $s (${scenarios[*]})"
		log "$s"
		unshare --mount --propagation private "$0" --in-namespace "$W" "$s"
	done
}

main "$@"
