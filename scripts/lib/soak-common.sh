# Sourced by scripts/soak.sh and scripts/soak-cluster.sh: what both do before starting hubs.
# Takes the script's arguments ([OUTDIR] [BENCH FLAGS...]); sets OUT (created), KEY, HERALD
# (built from ./cmd/herald unless given), BENCH, and lifts the open-file limit. The caller
# then shifts OUTDIR off its own arguments.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=$(realpath -m "${1:-soak-results}")
mkdir -p "$OUT"
KEY='soak-key-that-is-long-enough-for-hs256!'
if [[ -z ${HERALD:-} ]]; then
  HERALD=$OUT/herald
  CGO_ENABLED=0 go build -o "$HERALD" ./cmd/herald
fi
BENCH=${BENCH:-$HERALD} # the binary whose `bench soak` runs the load
ulimit -n "$(ulimit -Hn)"
