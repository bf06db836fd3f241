#!/usr/bin/env bash
# The rehearsal account: the README's deploy section walked as a new user types it, against an
# AWS account played by moto, with the bundled fake Canopy. Prints each command and its outcome;
# exits non-zero if any step fails. The test command runs it (scripts/test.sh).
#
# What differs from a real account, and nothing else:
# - AWS_ENDPOINT_URL points the AWS CLI, canopy-ops and the functions at moto, and Canopy is the
#   fake (CanopyBaseUrl);
# - `scripts/package.sh` (sam build for arm64) is replaced by building the functions for this
#   machine from the same code, and `sam deploy` by scripts/rehearsal_stack.py, which creates
#   the stack on moto from template.yaml itself (translated by the SAM translator, Conditions
#   resolved) and fills what moto's CloudFormation does not create (it says what);
# - the functions run under tools/lambda-host: each its own binary, started as Lambda starts it,
#   with the Environment the stack gave it; lambda-host also plays the HTTP APIs and the SQS
#   event source mappings;
# - `cargo install` gets `--debug` (the test build's profile, so no second optimised build).
#   scripts/rehearse.sh            the whole rehearsal
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

WORK="$ROOT/.local/rehearsal"
rm -rf "$WORK"
mkdir -p "$WORK/logs" "$WORK/home"
AWSCLI_VENV="$VENV/awscli"
FAILED=()
STARTED=$(date +%s)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  stop_moto
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# A step: the command as typed, then its exit code ("0", or alternatives "0|1") and time. Output goes to the log and the
# screen; a step whose exit code is not the expected one fails the rehearsal.
step() {
  local want="$1" line="$2" start code
  printf '\n$ %s\n' "$line"
  start=$(date +%s%N)
  ( eval "$line" ) 2>&1 | tee -a "$WORK/steps.log" | sed 's/^/  /'
  code=${PIPESTATUS[0]}
  printf '  -> exit %s in %s ms' "$code" "$(( ($(date +%s%N) - start) / 1000000 ))"
  if grep -q "panicked at" <(tail -n 50 "$WORK/steps.log"); then
    printf ' PANIC\n'
    FAILED+=("$line (panicked)")
  elif [[ "|$want|" != *"|$code|"* ]]; then
    printf ' (expected %s) FAILED\n' "$want"
    FAILED+=("$line (exit $code, expected $want)")
  else
    printf ' ok\n'
  fi
}
# A step whose variables the next steps use (the README's STACK=..., secret=$(...)).
step_here() {
  local line="$1"
  printf '\n$ %s\n' "$line"
  if eval "$line"; then printf '  -> ok\n'; else FAILED+=("$line"); printf '  -> FAILED\n'; fi
}
wait_for_url() {
  local url="$1" i
  for i in $(seq 1 150); do
    curl -s -o /dev/null "$url" && return 0
    sleep 0.2
  done
  echo "nothing answers at $url" >&2
  return 1
}

echo "==> tools: moto, the SAM translator (.venv), the AWS CLI (.venv/awscli)"
ensure_venv
install_venv "$AWSCLI_VENV" "$ROOT/scripts/requirements-awscli.txt" aws

echo "==> building the functions, canopy-sim and lambda-host for this machine"
# The functions are the template's (each function's BuildProperties Binary).
build_args=()
for f in $(awk '$1 == "Binary:" { print $2 }' template.yaml); do build_args+=(-p "$f"); done
cargo build --locked --quiet "${build_args[@]}" -p canopy-sim -p lambda-host || exit 1

# The account: moto, with the credentials a user keeps in a profile.
use_local_aws
start_moto
# start_moto set its own traps: ours stop moto too.
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
export AWS_ENDPOINT_URL="$MOTO_ENDPOINT"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
export AWS_CONFIG_FILE="$WORK/home/config" AWS_SHARED_CREDENTIALS_FILE="$WORK/home/credentials"
printf '[profile rehearsal]\nregion = us-east-1\noutput = json\n' >"$AWS_CONFIG_FILE"
printf '[rehearsal]\naws_access_key_id = testing\naws_secret_access_key = testing\n' >"$AWS_SHARED_CREDENTIALS_FILE"
export AWS_PROFILE=rehearsal AWS_EC2_METADATA_DISABLED=true
unset AWS_REGION AWS_DEFAULT_REGION

# Canopy: the fake, with its production team.
TEAM_ID=394661bc-6361-46f0-8b11-4106d6146cb4
CANOPY_PORT="$(free_port)"
target/debug/canopy-sim serve --port "$CANOPY_PORT" --team-id "$TEAM_ID" >"$WORK/logs/canopy-sim.log" 2>&1 &
PIDS+=($!)
CANOPY="http://127.0.0.1:$CANOPY_PORT/api/v1.0.0"
wait_for_url "http://127.0.0.1:$CANOPY_PORT/" || exit 1
export CANOPY_CLIENT_ID=sim-client-id CANOPY_CLIENT_SECRET=sim-client-secret

GATEWAY_PORT="$(free_port)"
RECONNECT_PORT="$(free_port)"
export PATH="$AWSCLI_VENV/bin:$WORK/cargo/bin:$PATH"

# The README's deploy block, as written.
mapfile -t README_STEPS < <(awk '/<!-- rehearsed: scripts\/rehearse.sh/ { armed = 1; next }
  armed && /^```sh/ { inside = 1; next }
  inside && /^```/ { exit }
  inside { print }' README.md)
[ "${#README_STEPS[@]}" -gt 0 ] || { echo "README.md has no rehearsed deploy block" >&2; exit 1; }

echo "==> the README's deploy steps (${#README_STEPS[@]} lines), in the rehearsal account"
cd "$WORK/home"
for line in "${README_STEPS[@]}"; do
  command="${line%%  #*}"
  command="${command%"${command##*[![:space:]]}"}"
  case "$command" in
    "scripts/package.sh"*)
      printf '\n$ %s\n  -> rehearsal: the functions were built for this machine above (sam build for arm64 is scripts/package.sh'"'"'s)\n' "$command"
      ;;
    *"sam deploy"*)
      printf '\n$ %s\n  -> rehearsal: the stack is created on moto from template.yaml:\n' "$command"
      if ! "$VENV/bin/python" "$ROOT/scripts/rehearsal_stack.py" create --endpoint "$MOTO_ENDPOINT" \
        --stack canopy-monitor --out "$WORK/stack.json" --gateway-port "$GATEWAY_PORT" \
        --reconnect-port "$RECONNECT_PORT" \
        CanopyTeamId="$TEAM_ID" CanopyBaseUrl="$CANOPY" \
        EmailFromAddress=reconnect@canopy-monitor.example AlarmEmail=oncall@canopy-monitor.example \
        ConsumerJwtIssuer=https://issuer.canopy-monitor.example ConsumerJwtAudience=canopy-monitor; then
        FAILED+=("$command (the stack)")
        break
      fi
      # The functions, as Lambda would run them, behind the stack's HTTP APIs and queues.
      "$ROOT/target/debug/lambda-host" --config "$WORK/stack.json" --bin-dir "$ROOT/target/debug" \
        --log-dir "$WORK/logs" serve >"$WORK/logs/lambda-host.log" 2>&1 &
      PIDS+=($!)
      wait_for_url "http://127.0.0.1:$GATEWAY_PORT/" || { FAILED+=("lambda-host"); break; }
      ;;
    "cargo install"*)
      step 0 "(cd '$ROOT' && CARGO_TARGET_DIR='$ROOT/target' ${command/cargo install/cargo install --debug --quiet --root '$WORK/cargo'})"
      ;;
    *=*) step_here "$command" ;;
    # On a new stack doctor may find what is left to do (exit 1): its fixes run below.
    *" doctor"*) step "0|1" "$command" ;;
    *) step 0 "$command" ;;
  esac
done
[ ${#FAILED[@]} -eq 0 ] || { printf '\nthe README deploy steps failed:\n'; printf '  %s\n' "${FAILED[@]}"; exit 1; }

echo
echo "==> doctor's fixes, run as printed"
# Each FAIL line ends with the command that fixes it: run the ones that need no choice of
# the user's (a mail address, a redeploy), then doctor again.
canopy-ops --stack "$STACK" doctor --output json >"$WORK/doctor.json" 2>/dev/null
mapfile -t FIXES < <("$VENV/bin/python" -c '
import json, sys
for c in json.load(open(sys.argv[1])):
    if c["verdict"] != "PASS" and c.get("fix") and not c["fix"].startswith("sam deploy") and "$ALARM_EMAIL" not in c["fix"]:
        print(c["fix"])' "$WORK/doctor.json")
for fix in "${FIXES[@]}"; do step 0 "$fix"; done
step 0 "canopy-ops --stack \"\$STACK\" doctor"

echo
echo "==> Canopy sends: a monitoring enabled and refreshed through the stack's Monitoring API"
API=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["outputs"]["MonitoringApiUrl"])' "$WORK/stack.json")
PULL=7f1e6b52-3c0d-4a55-9a8e-2b1f0c9d4e61
step 0 "$ROOT/target/debug/canopy-sim pull --pull-id $PULL | curl -fsS -X POST -H 'content-type: application/json' --data-binary @- http://127.0.0.1:$CANOPY_PORT/_sim/pulls"
step 0 "curl -fsS -X POST -H 'content-type: application/json' -d '{\"pull_id\": \"$PULL\", \"interval\": \"P1M\"}' $API/v1/monitorings -o $WORK/enabled.json"
MONITORING=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["monitoring"]["monitoring_id"])' "$WORK/enabled.json" 2>/dev/null)
step 0 "curl -fsS -X POST $API/v1/monitorings/$MONITORING/refresh"
# Canopy delivers to the registered URL; the fetcher's queue drains.
KEY=""
for _ in $(seq 1 60); do
  KEY=$(canopy-ops --stack "$STACK" tail --output json 2>/dev/null | python3 -c '
import json, sys
for d in json.load(sys.stdin):
    if d.get("event_type") == "COMPLETE":
        print(d["dedupe_key"]); break' 2>/dev/null)
  [ -n "$KEY" ] && break
  sleep 0.5
done
[ -n "$KEY" ] || FAILED+=("no COMPLETE delivery from Canopy reached the stack")

echo
echo "==> every deployed-mode command"
step 0 "canopy-ops --stack \"\$STACK\" status"
step 0 "canopy-ops --stack \"\$STACK\" tail --limit 5"
step 0 "canopy-ops --stack \"\$STACK\" redrive --dry-run"
step 0 "canopy-ops --stack \"\$STACK\" redrive --queue notify --dry-run"
step 0 "canopy-ops --stack \"\$STACK\" replay $KEY"
step 0 "canopy-ops --stack \"\$STACK\" --output json status >/dev/null"
step 0 "canopy-ops --stack \"\$STACK\" setup"
step 0 "canopy-ops --stack \"\$STACK\" ping --source primary"
step 0 "CANOPY_STACK=\"\$STACK\" canopy-ops status >/dev/null"
step 0 "canopy-ops --version"
step 0 "canopy-ops --help >/dev/null"

echo
echo "==> exit codes: 1 when a check or the work failed, 2 when it could not run"
step 2 "canopy-ops status"
step 2 "canopy-ops --stack no-such-stack status"
step 2 "canopy-ops --stack \"\$STACK\" --profile no-such-profile status"
step 2 "env -u AWS_PROFILE AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CONFIG_FILE=/dev/null canopy-ops --stack \"\$STACK\" --region us-east-1 status"
step 2 "env -u AWS_PROFILE AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_CONFIG_FILE=/dev/null AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing canopy-ops --stack \"\$STACK\" status"
step 2 "AWS_ENDPOINT_URL=http://127.0.0.1:9 canopy-ops --stack \"\$STACK\" status"
step 2 "canopy-ops --stack \"\$STACK\" no-such-command"
step 2 "canopy-ops --stack \"\$STACK\" replay not-a-dedupe-key"
step 2 "canopy-ops --stack \"\$STACK\" setup --source no-such-source"
step 2 "canopy-ops --stack \"\$STACK\" tail --limit many"
step 2 "canopy-ops --stack \"\$STACK\" --output yaml status"
step 1 "canopy-ops --stack \"\$STACK\" replay v1:$(printf '0%.0s' $(seq 1 64))"
# A check that fails: a message in the fetch dead-letter queue.
DLQ=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["outputs"]["FetchDeadLetterQueueUrl"])' "$WORK/stack.json")
# (the AWS CLI sends SQS calls to the queue URL's host unless told otherwise)
step 0 "aws sqs send-message --endpoint-url $MOTO_ENDPOINT --queue-url $DLQ --message-body '{\"version\":1}' >/dev/null"
step 1 "canopy-ops --stack \"\$STACK\" doctor"
# Its fix, as printed with the operator's own flags, runs.
canopy-ops --stack "$STACK" --region us-east-1 doctor --output json >"$WORK/doctor-dlq.json" 2>/dev/null
DLQ_FIX=$("$VENV/bin/python" -c '
import json, sys
print(next(c["fix"] for c in json.load(open(sys.argv[1])) if c["name"] == "dead-letter queues"))' "$WORK/doctor-dlq.json")
case "$DLQ_FIX" in *"--region us-east-1"*) ;; *) FAILED+=("doctor's hint lost --region: $DLQ_FIX") ;; esac
step 0 "$DLQ_FIX"

echo
echo "==> the live flow left nothing behind: no failed fetch, no panic in any function's log"
step 0 "canopy-ops --stack \"\$STACK\" status --output json | python3 -c 'import json,sys; s=json.load(sys.stdin); assert not s[\"failed_fetches\"], s[\"failed_fetches\"]'"
step 1 "grep -l 'panicked at' $WORK/logs/*.log"

echo
echo "==> each function, cold, with the stack's Environment, answers its sample events"
step 0 "$ROOT/target/debug/lambda-host --config $WORK/stack.json --bin-dir $ROOT/target/debug --log-dir $WORK/logs samples --events $ROOT/events"

cd "$ROOT"
printf '\n==> rehearsal: %s s\n' "$(( $(date +%s) - STARTED ))"
if [ ${#FAILED[@]} -gt 0 ]; then
  printf 'failed steps:\n'
  printf '  %s\n' "${FAILED[@]}"
  printf 'logs: %s\n' "$WORK/logs"
  exit 1
fi
echo "every step passed"
