#!/usr/bin/env bash
# Measures what watching the dashboard costs the hub: the fan-out scenarios A, B and C of
# docs/performance.md, each on a fresh Herald (bolt store, as scripts/perf.sh runs it), without
# and with a watcher of the live stats on the hub's address (`herald top --hub … --json`, which
# reads the same stream as the web UI's dashboard, without a browser's CPU on the same cores).
# Runs alternate without/with, RUNS times (default 3).
#
#   scripts/dashboard-overhead.sh [OUTDIR]
#
# Every process listens on loopback only and every run is bounded (--timeout).
# Results: OUTDIR/{off,on}-SCENARIO-N.json and a summary of events/s and p99 on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:-dashboard-overhead}")
mkdir -p "$OUT"
KEY='!ChangeThisMercureHubJWTSecretKey!'
export MERCURE_PUBLISHER_JWT_KEY=$KEY
HERALD=$OUT/herald
CGO_ENABLED=0 go build -trimpath -o "$HERALD" ./cmd/herald
ulimit -n "$(ulimit -Hn)"
PORT=4210
URL=http://127.0.0.1:$PORT/.well-known/mercure
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap cleanup EXIT

run() { # run MODE NAME FLAGS...
  local mode=$1 name=$2; shift 2
  rm -f "$OUT"/herald.db*
  "$HERALD" serve --listen 127.0.0.1:$PORT --metrics-addr off --anonymous \
    --transport-url "bolt://$OUT/herald.db" --log-level warn 2>>"$OUT/herald.log" &
  PIDS+=($!)
  for _ in $(seq 100); do curl -s -o /dev/null --max-time 1 "$URL" && break; sleep 0.1; done
  if [[ $mode == on ]]; then
    "$HERALD" top --hub "$URL" --key "$KEY" --json >"$OUT/$name.top" 2>>"$OUT/top.log" &
    PIDS+=($!)
    sleep 2 # the watcher is in place, the sampler running
  fi
  "$HERALD" bench fanout "$@" --hub "$URL" --key "$KEY" --json >"$OUT/$name.json" 2>>"$OUT/bench.log" || true
  cleanup
}

for i in $(seq "${RUNS:-3}"); do
  for mode in off on; do
    run $mode "$mode-A-$i" --subscribers 1000 --topics 1 --updates 1000 --publishers 16 --timeout 3m
    run $mode "$mode-B-$i" --subscribers 10000 --topics 1 --updates 200 --publishers 16 --timeout 5m
    run $mode "$mode-C-$i" --subscribers 10000 --topics 1000 --updates 10000 --publishers 16 --timeout 5m
  done
done
printf 'run\tevents/s\tp99 ms\tok\n'
for f in "$OUT"/o*-?-*.json; do
  printf '%s\t' "$(basename "$f" .json)"
  jq -r '[(.events_per_second | floor), .latency.p99_ms, .ok] | @tsv' "$f" 2>/dev/null || echo "?"
done
