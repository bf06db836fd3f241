#!/usr/bin/env bash
# The deploy path: installs the AWS SAM CLI and cargo-lambda (with zig) into .venv/deploy,
# lints the template (`sam validate --lint`) and builds every function for arm64 with
# `sam build` (BuildMethod: rust-cargolambda, each from its own directory), then checks that
# no bootstrap links an AWS SDK its function does not use. Deployable artifacts land in
# .aws-sam/build; deploy them with `sam deploy --guided` (see the README).
#   scripts/package.sh            validate, build and check
#   scripts/package.sh --validate only validate
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
sam build --template-file template.yaml
echo "==> built in $(( $(date +%s) - start )) s"

# Each function links only the SDKs of its own features. The panic locations a release binary
# keeps name each crate it compiled in (".../aws-sdk-sesv2-1.x/src/..."), so a bootstrap that
# names an SDK links it. DynamoDB is in every function: finding it proves the probe works.
ALL_SDKS="dynamodb sqs secretsmanager sesv2 sns eventbridge cloudformation cloudwatch"
declare -A USES=(
  [webhook-intake]="dynamodb sqs secretsmanager"
  [pull-fetcher]="dynamodb sqs secretsmanager"
  [reconnect-notifier]="dynamodb sqs secretsmanager sesv2 sns"
  [reconnect-reminder]="dynamodb sqs"
  [monitoring-api]="dynamodb sqs secretsmanager"
  [monitoring-sync]="dynamodb sqs secretsmanager"
  [reconnect-api]="dynamodb secretsmanager"
  [event-publisher]="dynamodb eventbridge"
)
echo "==> each bootstrap: its size and the AWS SDKs it links"
failed=0
for function in "${!USES[@]}"; do
  resource="$(awk -v b="Binary: $function" '
    /^  [A-Za-z0-9]+:$/ { name = substr($1, 1, length($1) - 1) }
    index($0, b) { print name; exit }' template.yaml)"
  bootstrap=".aws-sam/build/$resource/bootstrap"
  [ -f "$bootstrap" ] || { echo "   $function: no $bootstrap"; failed=1; continue; }
  linked="$( (grep -aoE 'aws-sdk-[a-z0-9]+-[0-9]' "$bootstrap" || true) | sed -E 's/^aws-sdk-//; s/-[0-9]$//' | sort -u | tr '\n' ' ')"
  printf '   %-20s %6.2f MB  links: %s\n' "$function" "$(stat -c '%s' "$bootstrap" | awk '{ print $1 / 1e6 }')" "$linked"
  case " $linked " in *" dynamodb "*) ;; *) echo "     the probe found no DynamoDB SDK: cannot judge this binary"; failed=1 ;; esac
  for sdk in $ALL_SDKS; do
    case " ${USES[$function]} " in *" $sdk "*) continue ;; esac
    case " $linked " in *" $sdk "*) echo "     links aws-sdk-$sdk, which $function does not use"; failed=1 ;; esac
  done
done
[ "$failed" -eq 0 ] || { echo "a function links what it does not use (see above)"; exit 1; }
echo "    every function links only the SDKs it uses"
