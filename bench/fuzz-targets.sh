#!/usr/bin/env bash
# Lists Sluice's fuzz targets as "package Target", one a line, by reading
# the test files, so a new target is run by CI and bench/fuzz.sh at once.
cd "$(dirname "$0")/.."
grep -rHoE '^func (Fuzz[A-Za-z0-9_]+)\(f \*testing\.F\)' --include='*_test.go' internal cmd 2>/dev/null |
  sed -E 's#^(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]+).*#./\1 \2#' | sort -u
