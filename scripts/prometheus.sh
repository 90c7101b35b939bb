#!/usr/bin/env bash
# Makes a Prometheus server binary available for the wave-gate integration
# tests (internal/gate) and prints its path on stdout. Idempotent: when a
# `prometheus` binary is already on PATH or at /usr/bin/prometheus, it
# installs nothing. Otherwise it installs Debian's `prometheus` package
# with apt-get and makes sure the packaged service is not left running
# (the tests start their own servers on free ports): systemd when it is
# the init system, invoke-rc.d/service otherwise, and finally the pid the
# package's init script recorded. Logs go to stderr.
set -euo pipefail

log() { printf 'prometheus.sh: %s\n' "$*" >&2; }

find_bin() {
	if command -v prometheus >/dev/null 2>&1; then
		command -v prometheus
		return 0
	fi
	if [[ -x /usr/bin/prometheus ]]; then
		echo /usr/bin/prometheus
		return 0
	fi
	return 1
}

# stop_service stops and disables the Debian service, whatever the init
# system of this machine (or container) is. Failures are not fatal: a
# container without an init system has nothing running to stop.
stop_service() {
	local sudo=""
	[[ $(id -u) -ne 0 ]] && sudo="sudo"
	if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
		$sudo systemctl disable --now prometheus >/dev/null 2>&1 || log "systemctl could not stop prometheus (ignored)"
		return 0
	fi
	if command -v invoke-rc.d >/dev/null 2>&1; then
		$sudo invoke-rc.d prometheus stop >/dev/null 2>&1 || true
	elif command -v service >/dev/null 2>&1; then
		$sudo service prometheus stop >/dev/null 2>&1 || true
	fi
	if command -v update-rc.d >/dev/null 2>&1; then
		$sudo update-rc.d prometheus disable >/dev/null 2>&1 || true
	fi
	# Without a running systemd, `systemctl disable` still removes the
	# enablement symlink the package created, so a later boot with
	# systemd does not start it either.
	if command -v systemctl >/dev/null 2>&1; then
		$sudo systemctl disable prometheus >/dev/null 2>&1 || true
	fi
	local pidfile=/run/prometheus/prometheus.pid
	if [[ -s $pidfile ]]; then
		local pid
		pid=$(<"$pidfile")
		# Only the packaged daemon's own pid, never a process by name.
		if [[ $pid =~ ^[0-9]+$ ]] && [[ $(readlink -f "/proc/$pid/exe" 2>/dev/null) == /usr/bin/prometheus ]]; then
			$sudo kill "$pid" 2>/dev/null || true
		fi
	fi
}

main() {
	local bin
	if bin=$(find_bin); then
		echo "$bin"
		return 0
	fi
	log "prometheus not found; installing the Debian package"
	local sudo=""
	[[ $(id -u) -ne 0 ]] && sudo="sudo"
	# policy-rc.d exit 101 keeps dpkg from starting the service during the
	# install where invoke-rc.d honours it; stop_service covers the rest.
	local policy=/usr/sbin/policy-rc.d created_policy=""
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
		$sudo chmod +x "$policy"
		created_policy=1
	fi
	local rc=0
	{
		$sudo apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >&2
	} || rc=$?
	[[ -n $created_policy ]] && $sudo rm -f "$policy"
	if ((rc != 0)); then
		log "apt-get install prometheus failed (exit $rc)"
		return "$rc"
	fi
	stop_service
	if ! bin=$(find_bin); then
		log "the prometheus package is installed but no prometheus binary was found"
		return 1
	fi
	echo "$bin"
}

main "$@"
