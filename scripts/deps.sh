#!/usr/bin/env bash
# Installs what `make test` needs when it is missing. Idempotent: a
# machine that has everything installs nothing. Each requirement is one
# function; issues that add integration tests add theirs here (PostgreSQL,
# Prometheus, Chromium, debootstrap) and call it from main.
set -euo pipefail

log() { printf 'deps: %s\n' "$*" >&2; }

# apt_install PKG... installs Debian packages not yet installed.
apt_install() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	log "installing ${missing[*]}"
	local sudo=""
	[[ $(id -u) -ne 0 ]] && sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

need_go() {
	if ! command -v go >/dev/null; then
		log "Go is required (go.mod asks for $(awk '/^go /{print $2}' go.mod)); install it from https://go.dev/dl/"
		exit 1
	fi
	log "$(go version)"
}

# PostgreSQL is installed and started by scripts/postgres.sh (make unit).

# Chromium for the dashboard's browser tests (internal/web, driven by
# chromedp); they fail, never skip, when it is missing.
need_chromium() {
	apt_install chromium
}

# Prometheus for the wave-gate integration tests (Debian's package; its
# service is left stopped: the tests start their own).
need_prometheus() {
	scripts/prometheus.sh >/dev/null
}

# The Debian fleet test (internal/fleettest): dpkg-dev to build its apt
# repository, debootstrap and the drover-fleet:SUITE images it runs its
# agents in, plus drover-fleet-boot:bookworm with GRUB's tools and bootctl
# for the kernel fallback's tests (internal/driver, internal/fleettest)
# (built once, cached in ${DROVER_CACHE:-/var/cache/drover}).
need_fleet() {
	apt_install dpkg-dev debootstrap
	scripts/fleet-rootfs.sh
}

# The dnf and zypper drivers' end-to-end tests (internal/driver, as root):
# Debian's real dnf, zypper and rpm (rpmbuild) and createrepo-c for their
# test repository; they fail, never skip, when one is missing.
# scripts/record-rpm.sh, which records the drivers' transcripts, needs
# them too.
need_rpm() {
	apt_install dnf zypper rpm createrepo-c
}

# Ansible for the enrolment test of deploy/ansible (internal/fleettest
# TestAnsibleEnrolment: ansible-playbook over the docker connection,
# whose plugin Debian's ansible package ships).
need_ansible() {
	apt_install ansible
}

# The release's tests (internal/release): openssl checks the manifest's
# signature as users do, systemd-analyze lints the units, rpm (need_rpm)
# installs the .rpm into an installroot, and the Debian fleet images
# (need_fleet) take the .deb.
need_release() {
	apt_install openssl systemd
}

main() {
	cd "$(dirname "$0")/.."
	need_go
	need_prometheus
	need_fleet
	need_rpm
	need_release
	need_chromium
	need_ansible
}

main "$@"
