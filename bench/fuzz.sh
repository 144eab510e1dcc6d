#!/usr/bin/env bash
# Runs every fuzz target of Sluice for a while and prints, per target, the
# executions, the new corpus entries and whether it found a failure.
#
#   bench/fuzz.sh            # 10 minutes each (what issue 11 asks before a release)
#   bench/fuzz.sh 30s        # any go test -fuzztime value
#   bench/fuzz.sh 2m FuzzJQ  # only targets whose name matches
#
# A failure leaves its input in the package's testdata/fuzz/<Target>/,
# where plain `go test` replays it from then on; new interesting inputs go
# to the Go build cache ($(go env GOCACHE)/fuzz), not the repository.
set -uo pipefail
cd "$(dirname "$0")/.."
time="${1:-10m}"
filter="${2:-}"

# package and target, one a line; .ci/run runs the same list.
targets="$(bash bench/fuzz-targets.sh)"

printf '%-40s %-22s %12s %10s %s\n' package target execs new result
status=0
while read -r pkg target; do
  [ -z "$pkg" ] && continue
  if [ -n "$filter" ] && [[ "$target" != *"$filter"* ]]; then continue; fi
  log="$(mktemp)"
  go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$time" -parallel "${FUZZ_PARALLEL:-2}" >"$log" 2>&1
  rc=$?
  last="$(grep -E '^fuzz: elapsed' "$log" | tail -n 1)"
  execs="$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")"
  new="$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")"
  result=ok
  if [ "$rc" -ne 0 ]; then
    result="FAILED (see testdata/fuzz/$target in $pkg)"
    status=1
    tail -n 30 "$log" >&2
  fi
  printf '%-40s %-22s %12s %10s %s\n' "$pkg" "$target" "${execs:-?}" "${new:-?}" "$result"
  rm -f "$log"
done <<<"$targets"
exit $status
