#!/usr/bin/env bash
# Soaks a three-node Herald cluster on a Redis transport while nodes are killed and restarted
# and Redis itself is restarted once. Subscribers are spread over the three nodes
# (--subscribe-hubs), publishers use the first one, which stays up; its resources are sampled.
#
#   scripts/soak-cluster.sh [OUTDIR] [BENCH FLAGS...]
#
# HERALD=path uses that binary instead of building ./cmd/herald (BENCH=path for the load).
# REDIS_PORT (default 4500) is the loopback port of the redis-server it starts (appendonly,
# appendfsync always); nodes 1-3 listen on BASE..BASE+2 (default 4510), metrics on BASE+10...
# Defaults: 10 minutes, 300 subscribers, 20 publishes/s, a burst of 1 000 connections every
# 2 minutes. Every CHAOS_STEP (60) seconds in turn: node 2 is killed (SIGKILL) and restarted
# 10 s later; node 3 is stopped (SIGTERM) and restarted 5 s later; the first time, Redis is
# shut down and restarted 3 s later. Publishes that fail while Redis is down are counted, not failed
# (--tolerate-unavailable): their updates may arrive, once at most. Results: OUTDIR/cluster.txt,
# OUTDIR/cluster.csv, OUTDIR/chaos.log (what was killed when).
set -euo pipefail
source "$(dirname "$0")/lib/soak-common.sh"
shift || true
REDIS_PORT=${REDIS_PORT:-4500}
BASE=${BASE:-4510}
TRANSPORT="redis://127.0.0.1:$REDIS_PORT/0?stream=soak&size=10000"
rm -rf "$OUT/redis-data"
mkdir -p "$OUT/redis-data"
: >"$OUT/chaos.log"
log() { echo "$(date -u +%T) $*" | tee -a "$OUT/chaos.log" >&2; }

REDIS=""
NODE=("" "" "")
cleanup() {
  for p in "${NODE[@]}" "$REDIS" "${CHAOS:-}"; do [[ -n $p ]] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

start_redis() {
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$OUT/redis-data" --appendonly yes \
    --appendfsync always --save "" >>"$OUT/redis.log" 2>&1 &
  REDIS=$!
  for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
}
start_node() { # start_node I
  "$HERALD" serve --listen 127.0.0.1:$((BASE + $1)) --metrics-addr 127.0.0.1:$((BASE + 10 + $1)) \
    --jwt-key "$KEY" --transport-url "$TRANSPORT" --log-level warn 2>>"$OUT/node$1.log" &
  NODE[$1]=$!
  for _ in $(seq 100); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$((BASE + 10 + $1))/healthz" && return 0; sleep 0.1; done
}
url() { echo "http://127.0.0.1:$((BASE + $1))/.well-known/mercure"; }

start_redis
for i in 0 1 2; do start_node $i; done

gone() { while kill -0 "$1" 2>/dev/null; do sleep 0.1; done; }
pause() { sleep "$1" & wait $!; } # a signal interrupts it at once

# The chaos: every step waits, breaks something, and repairs it. It runs in a subshell, which
# owns what it restarts and stops it when told to.
chaos() {
  trap 'for p in "${NODE[@]}" "$REDIS"; do kill "$p" 2>/dev/null || true; done; exit 0' TERM
  local step=${CHAOS_STEP:-60} redis_done=""
  while true; do
    pause "$step"; log "kill -9 node 2"; kill -9 "${NODE[1]}" || true; gone "${NODE[1]}"
    pause 10; log "restart node 2"; start_node 1
    pause "$step"; log "kill -TERM node 3 (graceful)"; kill "${NODE[2]}" || true; gone "${NODE[2]}"
    pause 5; log "restart node 3"; start_node 2
    if [[ -z $redis_done ]]; then
      pause "$step"; log "restart redis: shutdown"; redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true
      gone "$REDIS"
      pause 3; start_redis; log "redis back"; redis_done=1
    fi
  done
}
chaos &
CHAOS=$!

rc=0
"$BENCH" bench soak --hub "$(url 0)" --subscribe-hubs "$(url 0),$(url 1),$(url 2)" --key "$KEY" \
  --metrics "http://127.0.0.1:$((BASE + 10))/metrics" --tolerate-unavailable \
  --duration 10m --subscribers 300 --rate 20 --burst 1000 --burst-every 2m --sample-every 5s \
  --samples "$OUT/cluster.csv" "$@" | tee "$OUT/cluster.txt" || rc=$?
exit $rc
