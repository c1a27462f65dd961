#!/usr/bin/env bash
# Runs every test of Herald with the race detector, after installing what the tests need and
# the machine lacks (Debian's chromium for the browser tests, redis-server and nats-server for
# the cluster transports; the tests start their own servers on free ports; helm and
# systemd-analyze for the deployment files, pebble for the HTTPS tests). Used by `make test` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x "${HERALD_CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v systemd-analyze >/dev/null || missing+=(systemd) # deploy/: checks the systemd unit

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing: ${missing[*]}; install them (apt-get install -y ${missing[*]})" >&2
    if [ -n "${CI:-}" ]; then exit 1; fi
  fi
fi

# The chart's test (deploy/) needs helm, built from source by the Go toolchain.
if ! command -v helm >/dev/null && [ ! -x "$(go env GOPATH)/bin/helm" ]; then
  echo "installing helm with go install (once; it lands in $(go env GOPATH)/bin)" >&2
  if ! go install helm.sh/helm/v4/cmd/helm@v4.3.2 && [ -n "${CI:-}" ]; then
    echo "could not install helm: go install helm.sh/helm/v4/cmd/helm@v4.3.2 failed" >&2
    exit 1
  fi
fi

# The HTTPS tests (cmd/herald) obtain certificates from Pebble, Let's Encrypt's test CA; its
# module source, which go install leaves in the module cache, holds the root of its own HTTPS.
if ! command -v pebble >/dev/null && [ ! -x "$(go env GOPATH)/bin/pebble" ]; then
  echo "installing pebble with go install (once; it lands in $(go env GOPATH)/bin)" >&2
  if ! go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3 && [ -n "${CI:-}" ]; then
    echo "could not install pebble: go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3 failed" >&2
    exit 1
  fi
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go test -race -count=1 -timeout 12m ./...
# The HTTP suite again on the goroutine-per-stream path (HTTP/2's) instead of the hijacked pool.
HERALD_TEST_NO_HIJACK=1 go test -race -count=1 -timeout 5m ./server
