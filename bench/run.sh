#!/usr/bin/env bash
# Sluice runtime benchmark: one command, see bench/README.md.
#   bench/run.sh                 # full run (~2 minutes)
#   DURATION=5s ROUNDS=2 bench/run.sh
#   PEER= bench/run.sh           # without the Benthos peer (bench/peers/benthos)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-8s}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-32}
STARTUPS=${STARTUPS:-20}
HEAVY=${HEAVY:-1}   # HEAVY=0 leaves out the heavy scenario (20 KB order, validate, for-each)
PEER=${PEER-benthos}

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk not found; installing it with apt-get (falls back to the Go load generator if that fails)" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk; } >/dev/null 2>&1 || true
fi

# Servers on CPU 0, load on CPU 1, when the machine has two CPUs or more.
SERVER_CPU=""; LOAD_CPU=""
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  SERVER_CPU=${SERVER_CPU_LIST:-0}; LOAD_CPU=${LOAD_CPU_LIST:-1}
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/sluice" ./cmd/sluice
go build -o "$tmp/baseline" ./bench/baseline
go build -o "$tmp/benchctl" ./bench/benchctl
peer=()
if [ "$PEER" = benthos ]; then
  # Its own module (Sluice's does not depend on Benthos): the first build
  # downloads and compiles it, about a minute of CPU.
  (cd bench/peers/benthos && go build -o "$tmp/benthos" .)
  peer=(-benthos "$tmp/benthos" -benthos-config bench/peers/benthos/config.yaml)
elif [ -n "$PEER" ]; then
  echo "PEER=$PEER: the only peer is benthos (or empty for none)" >&2; exit 2
fi
heavy=(-heavy-lua bench/post-heavy.lua -heavy-body bench/heavy.json)
if [ "$HEAVY" = 0 ]; then heavy=(-heavy-lua ""); fi
"$tmp/sluice" bar build bench/project -o "$tmp/bench.bar" >/dev/null
"$tmp/sluice" bar build examples/orders -o "$tmp/orders.bar" >/dev/null

mkdir -p bench/results
out="bench/results/$(date -u +%Y%m%dT%H%M%SZ).txt"
# benchctl itself runs on the load CPU: it is the load generator when wrk
# is missing, and otherwise only waits.
pin=()
if [ -n "$LOAD_CPU" ]; then pin=(taskset -c "$LOAD_CPU"); fi
"${pin[@]}" "$tmp/benchctl" \
  -sluice "$tmp/sluice" -baseline "$tmp/baseline" \
  -bench-bar "$tmp/bench.bar" -orders-bar "$tmp/orders.bar" \
  -lua bench/post.lua -duration "$DURATION" -rounds "$ROUNDS" -conns "$CONNS" -startups "$STARTUPS" \
  -server-cpu "$SERVER_CPU" -load-cpu "$LOAD_CPU" "${peer[@]}" "${heavy[@]}" -o "$out"
echo "report written to $out"
