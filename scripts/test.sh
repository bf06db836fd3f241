#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, the template lint, unit tests and the
# integration tests against a moto server started here (and stopped on exit).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_venv
use_local_aws

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cfn-lint template.yaml"
"$VENV/bin/cfn-lint" template.yaml

start_moto
echo "==> cargo test"
CANOPY_MONITOR_TEST_ENDPOINT="$MOTO_ENDPOINT" cargo test --workspace --locked "$@"
