#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, the template lint, unit tests, the
# integration tests against a moto server started here (and stopped on exit), and the
# log-secrecy check of a whole local run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_venv
use_local_aws

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> each function alone, with only its own adapter features (as sam build builds it)"
for function in webhook-intake pull-fetcher reconnect-notifier reconnect-reminder monitoring-api monitoring-sync reconnect-api event-publisher; do
  cargo clippy --quiet -p "$function" --all-targets --locked -- -D warnings
done
echo "==> cfn-lint template.yaml"
"$VENV/bin/cfn-lint" template.yaml
echo "==> sam validate --lint"
scripts/package.sh --validate

start_moto
echo "==> cargo test"
CANOPY_MONITOR_TEST_ENDPOINT="$MOTO_ENDPOINT" cargo test --workspace --locked "$@"
if [ $# -eq 0 ]; then
  # A whole local run's logs hold no secret, token, link or personal value.
  scripts/log-secrecy.sh
fi
