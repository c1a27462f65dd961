#!/usr/bin/env bash
# Builds Herald's container image with podman and runs it as the reference hub's image is run
# (SERVER_NAME=':80', MERCURE_PUBLISHER_JWT_KEY, MERCURE_SUBSCRIBER_JWT_KEY, -p ...:80), with a
# read-only root filesystem, every capability dropped and no new privileges. It checks: the
# image size and labels, HEALTHCHECK, subscribe and publish through the mapped port, the process
# user, that `podman restart` keeps the history in the named volume (a Last-Event-ID replay
# after it), that SIGTERM (`podman stop`) ends the hub cleanly within the grace period, and
# that SERVER_NAME=localhost serves HTTPS over HTTP/2 with a certificate kept in /data/herald.
#
# Installs podman and runc with apt when missing and run as root; without them it skips, or
# fails when CI is set. Everything it creates is named herald-image-test-PID and removed.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || [ -x /usr/sbin/runc ] || missing+=(runc)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "image test: installing ${missing[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  elif [ -n "${CI:-}" ]; then
    echo "image test: missing ${missing[*]}, and cannot install them (not root or no apt-get)" >&2
    exit 1
  else
    echo "image test: skipped, missing ${missing[*]} (apt-get install -y ${missing[*]})" >&2
    exit 0
  fi
fi

name=herald-image-test-$$
image=localhost/$name:test
work=$(mktemp -d)
# No ulimits for the container (setrlimit fails in some sandboxes) and cgroupfs (no systemd).
printf '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\n' >"$work/containers.conf"
export CONTAINERS_CONF=$work/containers.conf
pm() { podman --runtime runc "$@" 2> >(grep -v 'systemd' >&2); }
cleanup() {
  pm rm -f "$name" >/dev/null 2>&1 || true
  pm volume rm -f "$name" >/dev/null 2>&1 || true
  pm rmi -f "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "image test: FAIL: $*" >&2
  pm logs "$name" 2>&1 | tail -20 >&2 || true
  exit 1
}

version=image-test-$$
start=$SECONDS
make -s image CONTAINER="podman --runtime runc" IMAGE="$image" VERSION="$version" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "make image"; }
echo "image test: built $image in $((SECONDS - start))s" >&2
herald=build/linux-$(go env GOARCH)/herald

size=$(pm image inspect --format '{{.Size}}' "$image")
[ "$size" -le 25000000 ] || fail "image is $size bytes, more than 25 MB"
label=$(pm image inspect --format '{{index .Config.Labels "org.opencontainers.image.version"}}' "$image")
[ "$label" = "$version" ] || fail "version label is '$label', want '$version'"
[ "$(pm image inspect --format '{{.Config.User}}' "$image")" = 65532:65532 ] || fail "image user"
[ "$(pm run --rm --read-only --cap-drop=all "$image" version | cut -d' ' -f1-2)" = "herald $version" ] || fail "herald version in the image"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pubkey='!ChangeThisMercureHubJWTSecretKey!'
subkey='!ChangeThisMercureSubscriberJWTKey!'
# net.ipv4.ip_unprivileged_port_start=0 is Docker's default for a container with its own
# network namespace; podman 4 needs it said. The unprivileged user then binds :80 without
# any capability.
pm run -d --name "$name" --read-only --cap-drop=all --security-opt=no-new-privileges \
  --sysctl net.ipv4.ip_unprivileged_port_start=0 \
  -p "127.0.0.1:$port:80" -v "$name:/data" \
  -e SERVER_NAME=':80' -e MERCURE_PUBLISHER_JWT_KEY="$pubkey" -e MERCURE_SUBSCRIBER_JWT_KEY="$subkey" \
  "$image" >/dev/null || fail "podman run"

# waitHealthy polls the image's HEALTHCHECK (herald healthcheck, asking /readyz inside).
waitHealthy() {
  for _ in $(seq 100); do
    if pm healthcheck run "$name" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  fail "the healthcheck did not pass within 10s"
}
waitHealthy

pid=$(pm inspect --format '{{.State.Pid}}' "$name")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
capeff=$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status")
[ "$uid" = 65532 ] || fail "the hub runs as uid $uid, want 65532"
[ "$capeff" = 0000000000000000 ] || fail "the hub has capabilities $capeff"

hub=http://127.0.0.1:$port/.well-known/mercure
topic=https://example.com/books/1
pub=$("$herald" token --key "$pubkey" --publish '*')
sub=$("$herald" token --key "$subkey" --subscribe '*')
publish() {
  curl -sS --max-time 5 -H "Authorization: Bearer $pub" -d "topic=$topic" -d "id=$1" -d "data=$2" "$hub"
}

# Subscribe, then publish: the subscriber gets the update.
curl -sN --max-time 4 -H "Authorization: Bearer $sub" "$hub?topic=$topic" >"$work/live" &
curlpid=$!
for _ in $(seq 50); do [ -s "$work/live" ] && break; sleep 0.1; done
[ "$(publish a1 'first')" = a1 ] || fail "publish a1"
[ "$(publish a2 'second')" = a2 ] || fail "publish a2"
wait $curlpid || true
[ "$(cat "$work/live")" = "$(printf ':\nid: a1\ndata: first\n\nid: a2\ndata: second')" ] || fail "live stream: $(cat "$work/live")"

# podman restart: the history is in the named volume, so a client reconnecting with a1 gets a2.
pm restart "$name" >/dev/null || fail "podman restart"
waitHealthy
[ "$(publish a3 'third')" = a3 ] || fail "publish a3 after the restart"
curl -sN --max-time 2 -H "Authorization: Bearer $sub" -H 'Last-Event-ID: a1' "$hub?topic=$topic" >"$work/replay" || true
[ "$(cat "$work/replay")" = "$(printf ':\nid: a2\ndata: second\n\nid: a3\ndata: third')" ] || fail "replay after the restart: $(cat "$work/replay")"

# SIGTERM with a subscriber connected: the hub ends its stream and exits 0, well within
# podman's 10 s grace period (after which it would be killed, exit 137).
curl -sN --max-time 20 -H "Authorization: Bearer $sub" "$hub?topic=$topic" >/dev/null &
curlpid=$!
sleep 0.5
stopstart=$(date +%s%N)
pm stop --time 10 "$name" >/dev/null || fail "podman stop"
stopms=$((($(date +%s%N) - stopstart) / 1000000))
wait $curlpid || true
code=$(pm inspect --format '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || fail "exit code $code after SIGTERM"
[ "$stopms" -lt 10000 ] || fail "SIGTERM took ${stopms}ms"
pm logs "$name" 2>&1 | grep -q 'herald stopped' || fail "no 'herald stopped' in the log"

# HTTPS as the reference image serves SERVER_NAME=localhost: a certificate from the local CA,
# kept in /data/herald on the volume, served over HTTP/2 on 443; healthy once it exists.
pm rm -f "$name" >/dev/null
sport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pm run -d --name "$name" --read-only --cap-drop=all --security-opt=no-new-privileges \
  --sysctl net.ipv4.ip_unprivileged_port_start=0 \
  -p "127.0.0.1:$sport:443" -v "$name:/data" \
  -e SERVER_NAME=localhost -e MERCURE_PUBLISHER_JWT_KEY="$pubkey" \
  "$image" >/dev/null || fail "podman run with SERVER_NAME=localhost"
waitHealthy
pm cp "$name:/data/herald/pki/local/root.crt" "$work/root.crt" || fail "no local CA root in /data/herald"
got=$(curl -sS --max-time 5 --cacert "$work/root.crt" --resolve "localhost:$sport:127.0.0.1" -o /dev/null \
  -w '%{http_code} %{http_version}' "https://localhost:$sport/.well-known/mercure") || fail "HTTPS to localhost"
[ "$got" = "401 2" ] || fail "HTTPS to localhost: '$got', want '401 2' (status, HTTP version)"

echo "image test: ok ($size bytes; uid 65532, no capabilities, read-only root; restart kept the history; SIGTERM stop in ${stopms}ms; HTTPS with a local certificate over HTTP/2)" >&2
