#!/usr/bin/env bash
# Cross-compiles the static binaries (drover, and drover-agent for the
# managed nodes) for every released platform. With a directory argument
# the binaries are kept there as NAME-OS-ARCH (make release packages
# them); without, they are built to check that they compile, then removed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -gt 0 ]]; then
	out="$1"
	mkdir -p "$out"
else
	out="$(mktemp -d)"
	trap 'rm -rf "$out"' EXIT
fi
for target in linux/amd64 linux/arm64 windows/amd64 darwin/arm64; do
	echo "build: $target"
	for cmd in drover drover-agent; do
		ext=""
		[[ ${target%/*} == windows ]] && ext=".exe"
		CGO_ENABLED=0 GOOS="${target%/*}" GOARCH="${target#*/}" go build -trimpath -o "$out/$cmd-${target%/*}-${target#*/}$ext" ./cmd/$cmd
	done
done
