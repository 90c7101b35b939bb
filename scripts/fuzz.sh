#!/usr/bin/env bash
# Runs every Fuzz* target in the module briefly. Targets are discovered
# with grep, so new ones are picked up without editing this file.
# Usage: scripts/fuzz.sh [FUZZTIME]   (default 10s)
#
# A target that fails with a bare "context deadline exceeded" and writes
# no failing input to testdata/fuzz/NAME is Go's fuzz coordinator racing
# its own -fuzztime deadline (golang/go#75804, fixed in Go 1.27), not a
# finding: it is reported and passed. Every other failure fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-10s}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
found=0
while IFS=: read -r file name; do
	pkg="./$(dirname "$file")"
	corpus="$(dirname "$file")/testdata/fuzz/$name"
	found=$((found + 1))
	echo "fuzz: $pkg $name ($fuzztime)"
	before="$(ls "$corpus" 2>/dev/null || true)"
	if go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg" 2>&1 | tee "$log"; then
		continue
	fi
	after="$(ls "$corpus" 2>/dev/null || true)"
	if [ "$before" = "$after" ] && grep -qx '    context deadline exceeded' "$log"; then
		echo "fuzz: $name: no failing input written; Go's -fuzztime deadline race (golang/go#75804), not a finding"
		continue
	fi
	exit 1
done < <(grep -rHoE --include='*_test.go' '^func (Fuzz[A-Za-z0-9_]+)\(' . | sed -E 's/^\.\/(.*):func (Fuzz[A-Za-z0-9_]+)\($/\1:\2/' | sort -u)
echo "fuzz: $found target(s)"
