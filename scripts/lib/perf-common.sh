# What the perf scripts (perf.sh, perf-tls.sh) share: waiting for a hub started in the
# background to answer, and stopping it. Sourced; the caller keeps the hub's PID in $PID.

# wait_up NAME URL [CURL_FLAGS...]: returns once URL answers, or fails after 10 s.
wait_up() {
  local name=$1 url=$2
  shift 2
  for _ in $(seq 100); do
    curl -s "$@" -o /dev/null --max-time 1 "$url" && return 0
    sleep 0.1
  done
  echo "$name did not start" >&2
  return 1
}

# stop: stops the hub $PID, if any, and waits for it.
stop() {
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=""
}
