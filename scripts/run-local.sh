#!/usr/bin/env bash
# Runs the pipeline locally: a moto server (started here, stopped on exit) stands in for
# DynamoDB, SQS and Secrets Manager, and webhook-intake serves on http://127.0.0.1:3000.
# Arguments go to `canopy-local up` (default: --demo, which sends the sample webhooks).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_venv
use_local_aws
start_moto
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--demo)
cargo run --quiet -p local-runner --bin canopy-local -- --endpoint "$MOTO_ENDPOINT" up "${args[@]}"
