#!/usr/bin/env bash
# Runs every Fuzz* target in the module briefly. Targets are discovered
# with grep, so new ones are picked up without editing this file.
# Usage: scripts/fuzz.sh [FUZZTIME]   (default 10s)
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${1:-10s}"
found=0
while IFS=: read -r file name; do
	pkg="./$(dirname "$file")"
	found=$((found + 1))
	echo "fuzz: $pkg $name ($fuzztime)"
	go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg"
done < <(grep -rHoE --include='*_test.go' '^func (Fuzz[A-Za-z0-9_]+)\(' . | sed -E 's/^\.\/(.*):func (Fuzz[A-Za-z0-9_]+)\($/\1:\2/' | sort -u)
echo "fuzz: $found target(s)"
