#!/usr/bin/env bash
# Cross-compiles the static binaries (drover, and drover-agent for the
# managed nodes) for every released platform.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for target in linux/amd64 linux/arm64 windows/amd64 darwin/arm64; do
	echo "build: $target"
	for cmd in drover drover-agent; do
		CGO_ENABLED=0 GOOS="${target%/*}" GOARCH="${target#*/}" go build -trimpath -o "$out/$cmd-${target%/*}-${target#*/}" ./cmd/$cmd
	done
done
