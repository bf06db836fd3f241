#!/usr/bin/env bash
# Cold starts, first invocations and peak memory of the release binaries (see
# tools/lambda-bench): builds each function on its own (as `sam build` does, so each links only
# its own features) and the hello-world baseline with the same profile, starts moto, and runs
# every binary against a local Lambda Runtime API. Prints tables; asserts nothing on time.
# Arguments go to lambda-bench (e.g. --starts 50, --pull-mb 5,20, --only pull-fetcher).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_venv
use_local_aws
for bin in hello-lambda webhook-intake pull-fetcher reconnect-notifier reconnect-reminder; do
  cargo build --quiet --release --locked -p "$bin"
done
# The bench itself needs no optimising: it only serves the Runtime API and waits.
cargo build --quiet --locked -p lambda-bench
start_moto
target/debug/lambda-bench --endpoint "$MOTO_ENDPOINT" --bin-dir target/release "$@"
