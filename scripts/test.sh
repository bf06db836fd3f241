#!/usr/bin/env bash
# Runs every check and test: formatting, clippy (the workspace, then each function as it is
# deployed), the template lint (cfn-lint, which also runs the SAM translator), and every test:
# unit, property, integration against a moto server started here (and stopped on exit), and
# the log-secrecy run of the whole local demo; then the rehearsal of the README's deploy steps
# (scripts/rehearse.sh). Prints the time of each step at the end.
#   scripts/test.sh              everything
#   scripts/test.sh <filter>     the checks, then only the tests matching <filter>
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

# One clean build, not an incremental cache beside it: on a fresh clone the cache is never
# read, and it doubles the disk the build takes. (`cargo test` by hand stays incremental.)
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

STEP_TIMES=()
step() {
  local name="$1" start
  shift
  echo "==> $name"
  start=$(date +%s)
  "$@"
  STEP_TIMES+=("$(printf '%5d s  %s' "$(( $(date +%s) - start ))" "$name")")
}
report_times() {
  echo "==> time per step"
  printf '    %s\n' "${STEP_TIMES[@]}"
}

clippy_each_function() {
  # `sam build` builds each function from its own directory (template.yaml's CodeUri), so cargo
  # resolves only that function's adapter features: the same build is checked here.
  local function
  for function in webhook-intake pull-fetcher reconnect-notifier reconnect-reminder monitoring-api monitoring-sync reconnect-api event-publisher; do
    (cd "functions/$function" && cargo clippy --quiet --bins --locked -- -D warnings)
  done
}

step "python tools (moto, cfn-lint)" ensure_venv
use_local_aws
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy (workspace, all targets)" cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo clippy (each function as deployed)" clippy_each_function
step "cfn-lint template.yaml (with the SAM translator)" "$VENV/bin/cfn-lint" template.yaml
start_moto
step "cargo test" env CANOPY_MONITOR_TEST_ENDPOINT="$MOTO_ENDPOINT" cargo test --workspace --locked "$@"
stop_moto
# The README's deploy steps, verbatim, against a rehearsal account (its own moto): every
# shipped binary run as a user runs it (scripts/rehearse.sh).
if [ $# -eq 0 ]; then
  step "rehearsal (scripts/rehearse.sh)" scripts/rehearse.sh
fi
report_times
