#!/usr/bin/env bash
# Measures Herald as a cluster: 3 nodes sharing one transport (Redis or NATS), 45 000
# subscribers spread over them (15 000 per node) by 3 load-generator processes, publishers on
# the first node; then 1 node with 15 000 subscribers, for comparison.
#
#   scripts/cluster-bench.sh [OUTDIR]
#
# Starts its own redis-server and nats-server on loopback ports, and stops everything it
# started. Results: OUTDIR/cluster-*.json. Takes about 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:-perf-results}")
mkdir -p "$OUT"
KEY='cluster-bench-key-that-is-long-enough!'
export MERCURE_PUBLISHER_JWT_KEY=$KEY
HERALD=$OUT/herald
go build -o "$HERALD" ./cmd/herald
ulimit -n "$(ulimit -Hn)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

REDIS_PORT=4300 NATS_PORT=4301
rm -rf "$OUT/redis-data" "$OUT/nats-data"; mkdir -p "$OUT/redis-data" "$OUT/nats-data"
redis-server --bind 127.0.0.1 --port $REDIS_PORT --dir "$OUT/redis-data" --appendonly yes --appendfsync everysec --save "" >"$OUT/redis.log" 2>&1 &
PIDS+=($!)
nats-server -a 127.0.0.1 -p $NATS_PORT -js -sd "$OUT/nats-data" >"$OUT/nats.log" 2>&1 &
PIDS+=($!)
sleep 1

wait_up() { for _ in $(seq 100); do curl -s -o /dev/null --max-time 1 "$1" && return 0; sleep 0.1; done; return 1; }

run() { # run NAME TRANSPORT_URL NODES SUBSCRIBERS UPDATES [BENCH FLAGS...]
  local name=$1 tr=$2 nodes=$3 subs=$4 updates=$5 urls=() nodepids=()
  shift 5
  for i in $(seq 0 $((nodes - 1))); do
    "$HERALD" serve --listen 127.0.0.1:$((4310 + i)) --metrics-addr off --anonymous --transport-url "$tr" \
      --log-level warn 2>>"$OUT/cluster-nodes.log" &
    nodepids+=($!)
    urls+=("http://127.0.0.1:$((4310 + i))/.well-known/mercure")
  done
  for u in "${urls[@]}"; do wait_up "$u"; done
  echo "  $name" >&2
  "$HERALD" bench fanout --hub "${urls[0]}" --subscribe-hubs "$(IFS=,; echo "${urls[*]}")" --key "$KEY" \
    --subscribers "$subs" --topics 1 --updates "$updates" --publishers 4 --procs 3 --concurrency 256 \
    --timeout 10m --json "$@" >"$OUT/cluster-$name.json" 2>>"$OUT/bench.log" || true
  for p in "${nodepids[@]}"; do kill "$p"; done
  for p in "${nodepids[@]}"; do wait "$p" 2>/dev/null || true; done
}

stream() { if [[ $1 == redis ]]; then echo "redis://127.0.0.1:$REDIS_PORT/0?stream=bench-$RANDOM"; else echo "nats://127.0.0.1:$NATS_PORT?stream=bench$RANDOM"; fi; }
for t in redis nats; do
  # Burst: the updates are published as fast as the hub takes them; p99 is the time to drain.
  if [[ ${ONLY:-} != paced ]]; then
    run "$t-3nodes-45000" "$(stream $t)" 3 45000 50
    run "$t-1node-15000" "$(stream $t)" 1 15000 150
  fi
  # Paced: one update a second (45 000 and 15 000 events/s), below capacity: p99 is latency.
  run "$t-3nodes-45000-paced" "$(stream $t)" 3 45000 20 --rate 1
  run "$t-1node-15000-paced" "$(stream $t)" 1 15000 20 --rate 1
done
for f in "$OUT"/cluster-*.json; do
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[1].split('/')[-1], 'ok' if d.get('ok') else 'FAILED', round(d.get('events_per_second',0)), 'events/s, p99', d.get('latency',{}).get('p99_ms'), 'ms, p50', d.get('latency',{}).get('p50_ms'), 'ms')" "$f" 2>/dev/null || echo "$f: no result"
done
