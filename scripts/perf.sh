#!/usr/bin/env bash
# Measures Herald, the reference Mercure hub and the floor hub side by side, in one run on this
# machine, with herald bench; then writes the table and the plot of docs/performance.md.
#
#   scripts/perf.sh [OUTDIR]              Herald and the floor hub
#   REF_HUB=/path/to/mercure scripts/perf.sh   also the reference hub (a Caddy build of
#                                         dunglas/mercure, e.g. v0.24.2): in memory
#                                         (transport local) for every scenario but replay,
#                                         on its bolt store (transport bolt) for replay
#   SCENARIOS="C P" scripts/perf.sh       only these (default: A B C P idle curve replay)
#   DIALECT=draft-08 scripts/perf.sh      Herald in both dialects (herald: 0.x, herald08:
#                                         draft-08, with match= and access tokens) and the
#                                         reference hub (a build of its development branch,
#                                         which speaks draft-08 only) in draft-08; no floor hub
#
# Each scenario runs on every hub in turn before the next scenario starts, so that a machine
# that drifts over minutes moves every hub's figure of a scenario alike.
#
# Every hub listens on loopback only, every run is bounded (--timeout) and stops by itself.
# Results: OUTDIR/*.json (one file per hub and scenario), OUTDIR/report.md, OUTDIR/perf.svg.
# Takes 10 to 20 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/perf-common.sh
OUT=$(realpath -m "${1:-perf-results}")
mkdir -p "$OUT"
KEY='!ChangeThisMercureHubJWTSecretKey!'
export MERCURE_PUBLISHER_JWT_KEY=$KEY
HERALD=$OUT/herald
CGO_ENABLED=0 go build -trimpath -o "$HERALD" ./cmd/herald # as `make build` ships it
ulimit -n "$(ulimit -Hn)"

PORT_HERALD=4200 PORT_REF=4201 PORT_FLOOR=4202 PORT_REF_BOLT=4203
PID=""

start() { # start HUB: starts it, sets PID and URL
  case $1 in
    herald)
      rm -f "$OUT/herald.db" "$OUT/herald.db-wal0" "$OUT/herald.db-wal1"
      "$HERALD" serve --listen 127.0.0.1:$PORT_HERALD --metrics-addr off --anonymous \
        --transport-url "bolt://$OUT/herald.db" --log-level warn 2>>"$OUT/herald.log" &
      PID=$! URL=http://127.0.0.1:$PORT_HERALD/.well-known/mercure ;;
    herald08) # the same hub; the bench speaks draft-08 to it
      start herald; return ;;
    herald-restart) # same file, history kept
      "$HERALD" serve --listen 127.0.0.1:$PORT_HERALD --metrics-addr off --anonymous \
        --transport-url "bolt://$OUT/herald.db" --log-level warn 2>>"$OUT/herald.log" &
      PID=$! URL=http://127.0.0.1:$PORT_HERALD/.well-known/mercure ;;
    ref|ref-bolt|ref-bolt-restart)
      local port=$PORT_REF transport="transport local"
      if [[ $1 != ref ]]; then
        port=$PORT_REF_BOLT transport="transport bolt {
			path $OUT/ref.db
		}"
        [[ $1 == ref-bolt ]] && rm -f "$OUT/ref.db"
      fi
      local keys="publisher_jwt $KEY
		subscriber_jwt $KEY"
      if [[ ${DIALECT:-} == draft-08 ]]; then
        keys="issuer https://localhost {
			publisher {
				jwt $KEY HS256
			}
			subscriber {
				jwt $KEY HS256
			}
		}"
      fi
      cat >"$OUT/Caddyfile.$1" <<CADDY
{
	auto_https off
	admin off
	log {
		level ERROR
	}
	storage file_system $OUT/caddy-data
}
:$port {
	bind 127.0.0.1
	mercure {
		$keys
		anonymous
		$transport
	}
}
CADDY
      XDG_DATA_HOME=$OUT/caddy-home XDG_CONFIG_HOME=$OUT/caddy-home \
        "$REF_HUB" run --config "$OUT/Caddyfile.$1" --adapter caddyfile >>"$OUT/ref.log" 2>&1 &
      PID=$! URL=http://127.0.0.1:$port/.well-known/mercure ;;
    floor)
      "$HERALD" bench floorhub --listen 127.0.0.1:$PORT_FLOOR >>"$OUT/floor.log" 2>&1 &
      PID=$! URL=http://127.0.0.1:$PORT_FLOOR/.well-known/mercure ;;
  esac
  wait_up "$1" "$URL"
}
trap stop EXIT

bench() { # bench NAME SCENARIO FLAGS...: one run, its JSON saved as OUT/HUB-NAME.json
  local name=$1; shift
  local dialect=()
  [[ ${DIALECT:-} == draft-08 && $HUB != herald ]] && dialect=(--dialect draft-08)
  echo "  $HUB $name ${dialect[*]}" >&2
  "$HERALD" bench "$@" "${dialect[@]}" --hub "$URL" --key "$KEY" --json >"$OUT/$HUB-$name.json" 2>>"$OUT/bench.log" || true
}

hubs=(herald floor)
[[ ${DIALECT:-} == draft-08 ]] && hubs=(herald herald08)
[[ -n ${REF_HUB:-} ]] && hubs+=(ref)
SCENARIOS=${SCENARIOS:-A B C P idle curve replay}
want() { [[ " $SCENARIOS " == *" $1 "* ]]; }

each() { # each NAME SCENARIO FLAGS...: the run on every hub, each on a fresh hub process
  for HUB in "${hubs[@]}"; do
    start "$HUB"; bench "$@"; stop
  done
}
want A && each A fanout --subscribers 1000 --topics 1 --updates 1000 --publishers 16 --timeout 3m
want B && each B fanout --subscribers 10000 --topics 1 --updates 200 --publishers 16 --timeout 5m
want C && each C fanout --subscribers 10000 --topics 1000 --updates 10000 --publishers 16 --timeout 5m
want P && each P fanout --subscribers 1000 --topics 1 --rate 50 --duration 20s --updates 1000 --timeout 3m
if want idle; then
  for n in 1000 10000 19500; do
    for HUB in "${hubs[@]}"; do
      start "$HUB"; bench idle-$n idle --connections $n --procs 2 --hold 3s --settle 5s --pid "$PID" --timeout 3m; stop
    done
  done
fi
if want curve; then
  for s in 100 1000 5000 10000 19500; do
    each curve-$s fanout --subscribers $s --topics 1 --updates $((2000000 / s < 2000 ? 2000000 / s : 2000)) --publishers 16 --procs 2 --timeout 5m
  done
fi

# Replay of missed updates after a restart, on the persistent stores.
replay() { # replay HUB START RESTART
  HUB=$1
  local prefix="https://bench.herald.invalid/replay-$HUB/" n=20000
  start "$2"; "$HERALD" bench publish --hub "$URL" --key "$KEY" --prefix "$prefix" --updates $n --topics 1 --publishers 32 --json >"$OUT/$HUB-replay-publish.json" 2>>"$OUT/bench.log" || true; stop
  start "$3"
  local t0 t1 got
  t0=$(date +%s.%N)
  got=$("$HERALD" subscribe --hub "$URL" --key "$KEY" --topic "${prefix}publish/0" --last-event-id earliest --count $n --timeout 60s --json 2>/dev/null | wc -l || true)
  t1=$(date +%s.%N)
  stop
  printf '{"scenario":"replay","updates":%d,"received":%d,"seconds":%.3f}\n' $n "$got" "$(echo "$t1 - $t0" | bc -l)" >"$OUT/$HUB-replay.json"
}
if want replay; then
  echo "replay after restart" >&2
  replay herald herald herald-restart
  [[ -n ${REF_HUB:-} ]] && replay ref ref-bolt ref-bolt-restart
fi

go run ./scripts/perfreport "$OUT"
