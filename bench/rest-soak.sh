#!/usr/bin/env bash
# One protogate (dist/) under steady wrk load for several rounds, to watch how it behaves over time (GC state,
# V8 flags, warm-up) rather than against a peer: bench.sh is the comparison, this is the microscope.
#
#   npm run build && bench/rest-soak.sh [echo|get] [rounds] [seconds]
#
# Env: GATEWAY_SCRIPT (default bench/peer-gateway-dist.mjs; "--import tsx bench/floor-gateway.ts" for the floor),
# NODE_FLAGS (extra node flags for the gateway, e.g. "--trace-gc-nvp"), RUNS_DIR (default /tmp/rest-soak),
# PEERS (default ../shared/peers), BIN_DIR (default /tmp/peers-bin: its Go backend, built by
# ../shared/peers/grpc-gateway-go/build.sh), CONC (64). The gateway's output (GC traces) goes to $RUNS_DIR/gateway.log.
# Pinning as bench.sh's "pin=on": gateway on core 0, backend and wrk on core 1. Loopback only; every round ends by
# itself (wrk -d). Prints one line per round: req/s, p50, p99 (ms) and the gateway's RSS.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
kind=${1:-echo}; rounds=${2:-6}; secs=${3:-8}
PEERS=${PEERS:-$here/../shared/peers}; RUNS_DIR=${RUNS_DIR:-/tmp/rest-soak}; CONC=${CONC:-64}
BIN=${BIN_DIR:-/tmp/peers-bin}
mkdir -p "$RUNS_DIR"
for t in wrk taskset; do command -v $t >/dev/null || { echo "rest-soak: needs $t (apt-get install wrk util-linux)"; exit 1; }; done
[[ -x $BIN/peer-go-backend ]] || { echo "rest-soak: $BIN/peer-go-backend missing: cd $PEERS/grpc-gateway-go && bash build.sh"; exit 1; }

cat >"$RUNS_DIR/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"message":"hello world","count":"42","tags":["a","b","c"],"meta":{"key":"k1","version":"7","labels":["x","y"]},"kind":"KIND_SMALL","payload":"aGVsbG8gd29ybGQ=","createdAt":"2024-01-01T00:00:00Z","items":[{"key":"i1","version":"1"},{"key":"i2","version":"2","labels":["z"]}],"score":3.5,"enabled":true}'
EOF
cat >"$RUNS_DIR/report.lua" <<'EOF'
done = function(s, lat, req)
  io.write(string.format("%d %.3f %.3f %d\n", s.requests / (s.duration / 1e6), lat:percentile(50) / 1000,
    lat:percentile(99) / 1000, s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout + s.errors.status))
end
EOF
be_port=$((20000 + RANDOM % 10000)); gw_port=$((be_port + 1))
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
taskset -c 1 "$BIN/peer-go-backend" -listen "127.0.0.1:$be_port" >"$RUNS_DIR/backend.log" 2>&1 & pids+=($!)
# shellcheck disable=SC2086
GATEWAY_HOST=127.0.0.1 GATEWAY_PORT=$gw_port BACKEND_ADDR=127.0.0.1:$be_port PROTO_ROOT="$PEERS/proto" \
  PROTO_FILE=bench/v1/bench.proto taskset -c 0 node ${NODE_FLAGS:-} ${GATEWAY_SCRIPT:-"$here/bench/peer-gateway-dist.mjs"} \
  >"$RUNS_DIR/gateway.log" 2>&1 & gw=$!; pids+=($gw)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$gw_port/" && break; sleep 0.1; done
case $kind in
  echo) url=http://127.0.0.1:$gw_port/v1/echo ;;
  get) url=http://127.0.0.1:$gw_port/v1/items/abc123 ;;
  *) echo "rest-soak: kind is echo or get"; exit 1 ;;
esac
echo "# $kind, $rounds x ${secs}s, c$CONC, NODE_FLAGS='${NODE_FLAGS:-}'  (req/s p50 p99 errors rss_MiB)"
# The round's wrk script: the report, after the POST body for echo.
if [[ $kind == echo ]]; then cat "$RUNS_DIR/post.lua" "$RUNS_DIR/report.lua" >"$RUNS_DIR/round.lua"; else cp "$RUNS_DIR/report.lua" "$RUNS_DIR/round.lua"; fi
for r in $(seq "$rounds"); do
  line=$(taskset -c 1 wrk -t1 -c"$CONC" -d"${secs}s" --timeout 5s -s "$RUNS_DIR/round.lua" "$url" | tail -1)
  rss=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$gw/status")
  echo "round $r: $line $rss"
done
