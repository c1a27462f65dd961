#!/usr/bin/env bash
# Measures Herald and the reference Mercure hub side by side over HTTPS, in one run on this
# machine, with herald bench: the TLS and HTTP/2 rows of docs/performance.md. Each hub serves
# HTTPS itself, from the same self-signed certificate (made here with openssl).
#
#   REF_HUB=/path/to/mercure scripts/perf-tls.sh [OUTDIR]   both hubs (without REF_HUB, Herald only)
#   REF_DIRECTIVES='protocol_version_compatibility 8'      extra lines of the reference's mercure block
#   SCENARIOS="idle-h1-5000 fan-h2" scripts/perf-tls.sh     only these
#
# Scenarios: idle-h1-N (N idle HTTP/1.1 streams over TLS), idle-h2-N (N HTTP/2 connections,
# one stream each), idle-h2s-N (N streams, 10 per HTTP/2 connection), fan-h1 and fan-h2
# (10 000 subscribers of one topic, 200 updates from 16 publishers, over TLS and over HTTP/2),
# conn-full and conn-resume (5 000 connections opened with full handshakes, then resuming
# sessions from tickets). Each scenario runs on every hub in turn before the next one.
# Results: OUTDIR/HUB-SCENARIO.json and a summary line per run on standard output.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/perf-common.sh
OUT=$(realpath -m "${1:-perf-tls-results}")
mkdir -p "$OUT"
KEY='!ChangeThisMercureHubJWTSecretKey!'
HERALD=$OUT/herald
CGO_ENABLED=0 go build -trimpath -o "$HERALD" ./cmd/herald
ulimit -n "$(ulimit -Hn)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null

PORT_HERALD=4300 PORT_REF=4301
PID=""

start() { # start HUB: starts it, sets PID and URL
  case $1 in
    herald)
      rm -f "$OUT"/herald.db*
      "$HERALD" serve --listen 127.0.0.1:$PORT_HERALD --tls "$OUT/cert.pem $OUT/key.pem" --anonymous \
        --jwt-key "$KEY" --metrics-addr off --transport-url "bolt://$OUT/herald.db" --log-level warn 2>>"$OUT/herald.log" &
      PID=$! URL=https://127.0.0.1:$PORT_HERALD/.well-known/mercure ;;
    ref)
      cat >"$OUT/Caddyfile" <<CADDY
{
	auto_https disable_redirects
	admin off
	log {
		level ERROR
	}
	storage file_system $OUT/caddy-data
}
https://127.0.0.1:$PORT_REF {
	bind 127.0.0.1
	tls $OUT/cert.pem $OUT/key.pem
	mercure {
		publisher_jwt $KEY
		subscriber_jwt $KEY
		anonymous
		transport local
		${REF_DIRECTIVES:-}
	}
}
CADDY
      XDG_DATA_HOME=$OUT/caddy-home XDG_CONFIG_HOME=$OUT/caddy-home \
        "$REF_HUB" run --config "$OUT/Caddyfile" --adapter caddyfile >>"$OUT/ref.log" 2>&1 &
      PID=$! URL=https://127.0.0.1:$PORT_REF/.well-known/mercure ;;
  esac
  wait_up "$1" "$URL" -k && sleep 1
}
trap stop EXIT

bench() { # bench NAME SCENARIO FLAGS...: one run, its JSON saved as OUT/HUB-NAME.json
  local name=$1; shift
  "$HERALD" bench "$@" --hub "$URL" --insecure --key "$KEY" --json >"$OUT/$HUB-$name.json" 2>>"$OUT/bench.log" || true
  python3 - "$OUT/$HUB-$name.json" "$HUB $name" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
keys = ['connected', 'connections_per_second', 'kib_per_connection', 'rss_before_kib', 'rss_open_kib',
        'events_per_second', 'reconnects', 'ok', 'problems']
print(sys.argv[2], {k: d[k] for k in keys if k in d}, d.get('check', ''))
PY
}

hubs=(herald)
[[ -n ${REF_HUB:-} ]] && hubs+=(ref)
SCENARIOS=${SCENARIOS:-idle-h1-5000 idle-h1-19000 idle-h2-5000 idle-h2-19000 idle-h2s-5000 idle-h2s-19000 fan-h1 fan-h2 conn-full conn-resume}
for sc in $SCENARIOS; do
  for HUB in "${hubs[@]}"; do
    start "$HUB"
    case $sc in
      idle-h1-*) bench "$sc" idle --connections "${sc#idle-h1-}" --procs 2 --hold 3s --settle 5s --pid "$PID" --timeout 3m ;;
      idle-h2-*) bench "$sc" idle --http2 --connections "${sc#idle-h2-}" --procs 2 --hold 3s --settle 5s --pid "$PID" --timeout 4m ;;
      idle-h2s-*) bench "$sc" idle --http2 --streams 10 --connections "${sc#idle-h2s-}" --procs 2 --hold 3s --settle 5s --pid "$PID" --timeout 4m ;;
      fan-h1) bench "$sc" fanout --subscribers 10000 --topics 1 --updates 200 --publishers 16 --procs 2 --timeout 4m ;;
      fan-h2) bench "$sc" fanout --http2 --subscribers 10000 --topics 1 --updates 200 --publishers 16 --procs 2 --timeout 4m ;;
      conn-full) bench "$sc" idle --connections 5000 --hold 1s --settle 1s --pid "$PID" --timeout 3m ;;
      conn-resume) bench "$sc" idle --resume --connections 5000 --hold 1s --settle 1s --pid "$PID" --timeout 3m ;;
      *) echo "unknown scenario $sc" >&2; exit 2 ;;
    esac
    stop
    sleep 1
  done
done
