#!/usr/bin/env bash
# Builds the Docker images the Debian fleet test (internal/fleettest) runs
# its agents in: drover-fleet:bullseye, drover-fleet:bookworm and
# drover-fleet:trixie. Images are never pulled: each one is a minimal
# debootstrap root filesystem (variant minbase), cached as a tarball in
# ${DROVER_CACHE:-/var/cache/drover}/rootfs/ so later runs only `docker
# import` it (or do nothing when the image is already there).
#
# Idempotent and fast when cached. The three suites are built in parallel.
# The Debian mirror is the one this machine's apt uses (override with
# DROVER_DEBIAN_MIRROR). Bump ROOTFS_VERSION when the contents change:
# cached tarballs and images of another version are rebuilt.
set -euo pipefail

ROOTFS_VERSION=1
SUITES=(${DROVER_FLEET_SUITES:-bullseye bookworm trixie})
CACHE="${DROVER_CACHE:-/var/cache/drover}/rootfs"
# What minbase lacks that the fleet test needs: nothing today (apt, dpkg
# with start-stop-daemon, util-linux's flock and mount(8), which binds each
# boot's boot ID, are all in minbase). Kept as a list so a suite that
# splits a tool out can add its package.
INCLUDE="${DROVER_FLEET_INCLUDE:-}"

log() { printf 'fleet-rootfs: %s\n' "$*" >&2; }

# mirror prints the Debian archive URL this machine's apt is configured
# with (deb822 "URIs:" or one-line "deb URL suite ..."), ignoring the
# security archive.
mirror() {
	if [[ -n ${DROVER_DEBIAN_MIRROR:-} ]]; then
		echo "$DROVER_DEBIAN_MIRROR"
		return
	fi
	local url
	url=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '/^[[:space:]]*#/ {next}
		     /^URIs:/ {for (i = 2; i <= NF; i++) print $i}
		     /^deb[[:space:]]/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' |
		grep -E '/debian/?$' | grep -v -- '-security' | head -n1 || true)
	echo "${url:-http://deb.debian.org/debian}"
}

need_tools() {
	local missing=()
	command -v debootstrap >/dev/null || missing+=(debootstrap)
	command -v docker >/dev/null || { log "docker is required (the Docker engine must be running)"; exit 1; }
	((${#missing[@]} == 0)) && return 0
	log "installing ${missing[*]}"
	local sudo=""
	[[ $(id -u) -ne 0 ]] && sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# image_ok SUITE: the image exists and was built from this ROOTFS_VERSION.
image_ok() {
	local v
	v=$(docker image inspect -f '{{index .Config.Labels "drover.rootfs"}}' "drover-fleet:$1" 2>/dev/null) || return 1
	[[ $v == "v$ROOTFS_VERSION" ]]
}

# build SUITE MIRROR: debootstrap into a temporary directory, trim it, and
# write the tarball atomically.
build() {
	local suite=$1 url=$2 dir tar="$CACHE/$1-v$ROOTFS_VERSION.tar"
	dir=$(mktemp -d "$CACHE/.$suite.XXXXXX")
	local args=(--variant=minbase --components=main)
	[[ -n $INCLUDE ]] && args+=("--include=$INCLUDE")
	local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	[[ -r $keyring ]] && args+=("--keyring=$keyring")
	log "$suite: debootstrap from $url"
	if ! debootstrap "${args[@]}" "$suite" "$dir" "$url" >"$dir.log" 2>&1; then
		log "$suite: debootstrap failed; last lines of $dir.log:"
		tail -n 20 "$dir.log" >&2
		rm -rf "$dir"
		return 1
	fi
	# Point apt at the same mirror, drop downloaded packages and lists, and
	# keep documentation out of later installs.
	echo "deb $url $suite main" >"$dir/etc/apt/sources.list"
	rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/var/log/*.log "$dir"/var/log/apt/*
	mkdir -p "$dir/etc/dpkg/dpkg.cfg.d"
	printf 'path-exclude=/usr/share/doc/*\npath-exclude=/usr/share/man/*\npath-exclude=/usr/share/locale/*\n' \
		>"$dir/etc/dpkg/dpkg.cfg.d/01-drover-nodoc"
	tar -C "$dir" --numeric-owner -cf "$tar.tmp" .
	mv "$tar.tmp" "$tar"
	rm -rf "$dir" "$dir.log"
	log "$suite: cached $tar ($(du -h "$tar" | cut -f1))"
}

import() {
	local suite=$1 tar="$CACHE/$1-v$ROOTFS_VERSION.tar"
	log "$suite: docker import $tar as drover-fleet:$suite"
	docker import --change "LABEL drover.rootfs=v$ROOTFS_VERSION" \
		--change 'CMD ["/bin/bash"]' "$tar" "drover-fleet:$suite" >/dev/null
}

main() {
	need_tools
	mkdir -p "$CACHE"
	local url pids=() todo=()
	url=$(mirror)
	for s in "${SUITES[@]}"; do
		image_ok "$s" && continue
		todo+=("$s")
		if [[ ! -s "$CACHE/$s-v$ROOTFS_VERSION.tar" ]]; then
			build "$s" "$url" &
			pids+=($!)
		fi
	done
	local failed=0
	for p in "${pids[@]}"; do wait "$p" || failed=1; done
	((failed == 0)) || { log "building a root filesystem failed"; exit 1; }
	for s in "${todo[@]}"; do import "$s"; done
	log "images ready: $(printf 'drover-fleet:%s ' "${SUITES[@]}")"
}

main "$@"
