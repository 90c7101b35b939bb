#!/usr/bin/env bash
# Cross-compiles the static binary for every released platform.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for target in linux/amd64 linux/arm64 windows/amd64 darwin/arm64; do
	echo "build: $target"
	CGO_ENABLED=0 GOOS="${target%/*}" GOARCH="${target#*/}" go build -trimpath -o "$out/drover-${target%/*}-${target#*/}" ./cmd/drover
done
