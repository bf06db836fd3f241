#!/usr/bin/env bash
# Runs the benchmarks (release build) with a moto server for the storage figures.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_venv
use_local_aws
start_moto
CANOPY_MONITOR_TEST_ENDPOINT="$MOTO_ENDPOINT" cargo bench --locked -p integration-tests --bench pull_store
