#!/usr/bin/env bash
# Soaks a Herald hub, and with REF_HUB the reference hub beside it at the same time: starts
# each on loopback ports with a bolt store bounded to STORE_SIZE (10 000) updates, runs `herald bench soak`
# against each, draws the samples, and stops everything it started.
#
#   scripts/soak.sh [OUTDIR] [BENCH FLAGS...]        e.g. scripts/soak.sh soak-results --duration 1h
#   REF_HUB=/path/to/mercure scripts/soak.sh ...     also the reference hub (a Caddy build of
#                                                    dunglas/mercure, e.g. v0.24.2)
#
# HERALD=path uses that binary instead of building ./cmd/herald (BENCH=path for the load).
# Defaults: 2 minutes, 300 churning subscribers, 50 publishes/s, a burst of 1 000 connections
# every 30 s; BENCH FLAGS override them. Results in OUTDIR: herald.txt and ref.txt (tables),
# herald.csv and ref.csv (samples), soak.svg (their plot). Exits non-zero if a soak failed.
set -euo pipefail
source "$(dirname "$0")/lib/soak-common.sh"
shift || true
STORE_SIZE=${STORE_SIZE:-10000} # updates the stores keep
PORT=${PORT:-4400} # Herald on PORT (metrics PORT+1), the reference hub on PORT+2 (admin PORT+3)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
up() { for _ in $(seq 100); do curl -s -o /dev/null --max-time 1 "$1" && return 0; sleep 0.1; done; echo "$1 did not answer" >&2; return 1; }

rm -f "$OUT"/herald.db* "$OUT/ref.db"
"$HERALD" serve --listen 127.0.0.1:$PORT --metrics-addr 127.0.0.1:$((PORT + 1)) --jwt-key "$KEY" \
  --transport-url "bolt://$OUT/herald.db?size=$STORE_SIZE" --log-level warn 2>"$OUT/herald.log" &
PIDS+=($!)
up "http://127.0.0.1:$((PORT + 1))/healthz"
if [[ -n ${REF_HUB:-} ]]; then
  cat >"$OUT/Caddyfile" <<CADDY
{
	auto_https off
	admin 127.0.0.1:$((PORT + 3))
	metrics
	log {
		level ERROR
	}
	storage file_system $OUT/caddy-data
}
http://127.0.0.1:$((PORT + 2)) {
	mercure {
		publisher_jwt $KEY
		subscriber_jwt $KEY
		transport bolt {
			path $OUT/ref.db
			size $STORE_SIZE
		}
	}
}
CADDY
  XDG_DATA_HOME=$OUT/caddy-home XDG_CONFIG_HOME=$OUT/caddy-home \
    "$REF_HUB" run --config "$OUT/Caddyfile" --adapter caddyfile >"$OUT/ref.log" 2>&1 &
  PIDS+=($!)
  up "http://127.0.0.1:$((PORT + 3))/metrics"
fi

soak() { # soak NAME HUB_PORT METRICS_URL STORE_FILES [BENCH FLAGS...]
  local name=$1 port=$2 metrics=$3 store=$4
  shift 4
  "$BENCH" bench soak --hub "http://127.0.0.1:$port/.well-known/mercure" --key "$KEY" \
    --metrics "$metrics" --store-file "$store" \
    --duration 2m --subscribers 300 --rate 50 --burst 1000 --burst-every 30s --sample-every 2s \
    --samples "$OUT/$name.csv" "$@" >"$OUT/$name.txt" 2>"$OUT/$name.err"
}
rc=0
soak herald $PORT "http://127.0.0.1:$((PORT + 1))/metrics" "$OUT/herald.db,$OUT/herald.db-wal0,$OUT/herald.db-wal1" "$@" &
HB=$!
if [[ -n ${REF_HUB:-} ]]; then
  soak ref $((PORT + 2)) "http://127.0.0.1:$((PORT + 3))/metrics" "$OUT/ref.db" "$@" &
  RB=$!
  wait $RB || rc=$?
fi
wait $HB || rc=$?
cat "$OUT/herald.txt"
plots=(herald="$OUT/herald.csv")
if [[ -n ${REF_HUB:-} ]]; then
  cat "$OUT/ref.txt"
  plots+=("reference hub=$OUT/ref.csv")
fi
go run ./scripts/soakplot -o "$OUT/soak.svg" "${plots[@]}"
exit $rc
