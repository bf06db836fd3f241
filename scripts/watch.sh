#!/usr/bin/env bash
# The `cargo lambda watch` loop against the local moto stack, in one command: starts moto and
# the fake Canopy, creates the resources, writes the functions' environment to
# .local/lambda.env, serves every function with `cargo lambda watch` (rebuilt on each change),
# and invokes webhook-intake with a freshly signed sample event twice (accepted, then
# duplicate). Then it keeps watching; invoke again with the line it prints. Ctrl-C stops all.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_venv
ensure_deploy_tools
export PATH="$DEPLOY_VENV/bin:$PATH"
use_local_aws
start_moto
mkdir -p .local
cargo build --quiet --locked -p canopy-sim -p local-runner
target/debug/canopy-sim serve --port 4010 >.local/canopy-sim.log 2>&1 &
SIM_PID=$!
WATCH_PID=""
cleanup() {
  [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null || true
  kill "$SIM_PID" 2>/dev/null || true
  stop_moto
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
target/debug/canopy-local --endpoint "$MOTO_ENDPOINT" env >.local/lambda.env
echo "==> environment in .local/lambda.env; cargo lambda watch on http://127.0.0.1:9000"
cargo lambda watch --env-file .local/lambda.env &
WATCH_PID=$!
for _ in $(seq 1 600); do
  curl -s -o /dev/null http://127.0.0.1:9000/ && break
  sleep 1
done
event=.local/webhook-complete.signed.json
target/debug/canopy-sim sign events/webhook-complete.json --out "$event"
for attempt in first redelivery; do
  echo "==> cargo lambda invoke webhook-intake ($attempt)"
  cargo lambda invoke webhook-intake --data-file "$event"
  echo
done
echo "==> watching; invoke again with:"
echo "    target/debug/canopy-sim sign events/webhook-complete.json --out $event && cargo lambda invoke webhook-intake --data-file $event"
wait "$WATCH_PID"
