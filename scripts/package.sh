#!/usr/bin/env bash
# The deploy path: installs the AWS SAM CLI and cargo-lambda (with zig) into .venv/deploy,
# lints the template (`sam validate --lint`) and builds every function for arm64 with
# `sam build` (BuildMethod: rust-cargolambda). Deployable artifacts land in .aws-sam/build;
# deploy them with `sam deploy --guided` (see the README).
#   scripts/package.sh            validate and build
#   scripts/package.sh --validate only validate (what CI runs)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_deploy_tools
export PATH="$DEPLOY_VENV/bin:$PATH" SAM_CLI_TELEMETRY=0
# `sam validate` reads a region; nothing here calls AWS.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}"

echo "==> sam validate --lint"
sam validate --lint --template-file template.yaml
[ "${1:-}" = "--validate" ] && exit 0

if command -v rustup >/dev/null; then
  rustup target add aarch64-unknown-linux-gnu >/dev/null
fi
echo "==> sam build (arm64, cargo-lambda)"
start=$(date +%s)
SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 sam build --template-file template.yaml
echo "==> built in $(( $(date +%s) - start )) s:"
for f in .aws-sam/build/*/bootstrap; do
  stat -c '%s %n' "$f" | awk '{ printf "   %-48s %6.2f MB\n", $2, $1 / 1e6 }'
done
