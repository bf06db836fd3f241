#!/usr/bin/env bash
# Drives the in-app reconnect demo page in a real (headless) browser: installs Debian's
# Chromium if missing and playwright-core into .local/browser, starts the local stack
# (moto, the fake Canopy, every function) on a free port, walks the page through the user_mfa
# login to "data ready", and saves a screenshot per step in .local/screenshots/.
# Not part of scripts/test.sh (installing a browser is slow); the same flow runs at the HTTP
# level in tests/integration/reconnect.rs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Chromium (Debian package)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
mkdir -p .local/browser .local/screenshots
if [ ! -d .local/browser/node_modules/playwright-core ]; then
  echo "==> installing playwright-core into .local/browser"
  (cd .local/browser && npm init -y >/dev/null && npm install --silent --no-audit --no-fund playwright-core@1)
fi
cp tools/local-runner/demo/browser-check.mjs .local/browser/
rm -f .local/screenshots/*.png

ensure_venv
use_local_aws
start_moto
PORT="$(free_port)"
cargo build --quiet --locked -p local-runner
target/debug/canopy-local --endpoint "$MOTO_ENDPOINT" --prefix "browser-$PORT" up --port "$PORT" >.local/browser-check.log 2>&1 &
RUNNER=$!
trap 'kill $RUNNER 2>/dev/null || true; stop_moto' EXIT
for _ in $(seq 1 60); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/demo/reconnect" && break
  sleep 1
done
echo "==> driving http://127.0.0.1:$PORT/demo/reconnect in headless Chromium"
node .local/browser/browser-check.mjs "http://127.0.0.1:$PORT" "$ROOT/.local/screenshots"
echo "==> screenshots in .local/screenshots/"
ls .local/screenshots
