#!/usr/bin/env bash
# Builds the Docker images the Debian fleet test (internal/fleettest) runs
# its agents in: drover-fleet:bullseye, drover-fleet:bookworm and
# drover-fleet:trixie, and drover-fleet-boot:bookworm for the boot-loader
# tests (kernel fallback). Images are never pulled: each one is a minimal
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
# The boot-loader image (drover-fleet-boot:bookworm): the fleet's bookworm
# plus the boot loaders' own tools, which the kernel fallback drives:
# grub2-common (grub-reboot, grub-set-default; grub-editenv comes with its
# dependency grub-common) and systemd-boot (bootctl, in its own package on
# bookworm). Kept apart from the fleet images, which the other fleet
# scenarios use unchanged. Bump BOOT_VERSION when this list changes.
BOOT_SUITE=bookworm
BOOT_INCLUDE=grub2-common,systemd-boot
BOOT_VERSION=1

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

# image_ok IMAGE VERSION: the image exists and was built from VERSION.
image_ok() {
	local v
	v=$(docker image inspect -f '{{index .Config.Labels "drover.rootfs"}}' "$1" 2>/dev/null) || return 1
	[[ $v == "v$2" ]]
}

# build SUITE MIRROR TAR INCLUDE: debootstrap into a temporary directory,
# trim it, and write the tarball TAR atomically.
build() {
	local suite=$1 url=$2 tar=$3 include=$4 dir
	dir=$(mktemp -d "$CACHE/.$suite.XXXXXX")
	local args=(--variant=minbase --components=main)
	[[ -n $include ]] && args+=("--include=$include")
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

# import TAR IMAGE VERSION
import() {
	local tar=$1 image=$2 version=$3
	log "docker import $tar as $image"
	docker import --change "LABEL drover.rootfs=v$version" \
		--change 'CMD ["/bin/bash"]' "$tar" "$image" >/dev/null
}

main() {
	need_tools
	mkdir -p "$CACHE"
	local url pids=() todo=()
	url=$(mirror)
	for s in "${SUITES[@]}"; do
		image_ok "drover-fleet:$s" "$ROOTFS_VERSION" && continue
		todo+=("$s")
		if [[ ! -s "$CACHE/$s-v$ROOTFS_VERSION.tar" ]]; then
			build "$s" "$url" "$CACHE/$s-v$ROOTFS_VERSION.tar" "$INCLUDE" &
			pids+=($!)
		fi
	done
	local boot_tar="$CACHE/$BOOT_SUITE-boot-v$BOOT_VERSION.tar" boot_todo=0
	if ! image_ok "drover-fleet-boot:$BOOT_SUITE" "$BOOT_VERSION"; then
		boot_todo=1
		if [[ ! -s $boot_tar ]]; then
			build "$BOOT_SUITE" "$url" "$boot_tar" "$BOOT_INCLUDE" &
			pids+=($!)
		fi
	fi
	local failed=0
	for p in "${pids[@]}"; do wait "$p" || failed=1; done
	((failed == 0)) || { log "building a root filesystem failed"; exit 1; }
	for s in "${todo[@]}"; do import "$CACHE/$s-v$ROOTFS_VERSION.tar" "drover-fleet:$s" "$ROOTFS_VERSION"; done
	((boot_todo == 0)) || import "$boot_tar" "drover-fleet-boot:$BOOT_SUITE" "$BOOT_VERSION"
	log "images ready: $(printf 'drover-fleet:%s ' "${SUITES[@]}")drover-fleet-boot:$BOOT_SUITE"
}

main "$@"
