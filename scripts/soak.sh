#!/usr/bin/env bash
# Soaks one Herald hub: starts it on loopback ports with a bolt store bounded to 10 000
# updates, runs `herald bench soak` against it, and stops it.
#
#   scripts/soak.sh [OUTDIR] [BENCH FLAGS...]      e.g. scripts/soak.sh soak-results --duration 1h
#
# HERALD=path uses that binary instead of building ./cmd/herald (BENCH=path for the load). Defaults: 2 minutes, 300
# churning subscribers, 50 publishes/s, a burst of 1 000 connections every 30 s. Results:
# OUTDIR/soak.txt (the table), OUTDIR/soak.csv (the samples), OUTDIR/soak.svg (their plot).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:-soak-results}")
shift || true
mkdir -p "$OUT"
KEY='soak-key-that-is-long-enough-for-hs256!'
if [[ -z ${HERALD:-} ]]; then
  HERALD=$OUT/herald
  CGO_ENABLED=0 go build -o "$HERALD" ./cmd/herald
fi
BENCH=${BENCH:-$HERALD} # the binary whose `bench soak` runs the load
ulimit -n "$(ulimit -Hn)"
PORT=${PORT:-4400} METRICS=${METRICS:-4401}
rm -f "$OUT"/herald.db*
"$HERALD" serve --listen 127.0.0.1:$PORT --metrics-addr 127.0.0.1:$METRICS --jwt-key "$KEY" \
  --transport-url "bolt://$OUT/herald.db?size=10000" --log-level warn 2>"$OUT/hub.log" &
HUB=$!
trap 'kill $HUB 2>/dev/null || true; wait $HUB 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$METRICS/healthz" && break; sleep 0.1; done

rc=0
"$BENCH" bench soak --hub "http://127.0.0.1:$PORT/.well-known/mercure" --key "$KEY" \
  --metrics "http://127.0.0.1:$METRICS/metrics" --store-file "$OUT/herald.db,$OUT/herald.db-wal0,$OUT/herald.db-wal1" \
  --duration 2m --subscribers 300 --rate 50 --burst 1000 --burst-every 30s --sample-every 2s \
  --samples "$OUT/soak.csv" "$@" | tee "$OUT/soak.txt" || rc=$?
go run ./scripts/soakplot -o "$OUT/soak.svg" herald="$OUT/soak.csv"
exit $rc
