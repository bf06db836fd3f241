# Shared by scripts/test.sh and scripts/run-local.sh: the local virtualenv (moto, cfn-lint)
# and a moto server on a free 127.0.0.1 port that stops when the calling script exits.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

ensure_venv() {
  local stamp="$VENV/.requirements"
  if [ -x "$VENV/bin/moto_server" ] && [ -x "$VENV/bin/cfn-lint" ] \
     && cmp -s "$ROOT/scripts/requirements-dev.txt" "$stamp"; then
    return
  fi
  echo "==> installing moto and cfn-lint into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/scripts/requirements-dev.txt"
  cp "$ROOT/scripts/requirements-dev.txt" "$stamp"
}

DEPLOY_VENV="$VENV/deploy"

# The AWS SAM CLI and cargo-lambda, in their own virtualenv under .venv.
ensure_deploy_tools() {
  local stamp="$DEPLOY_VENV/.requirements"
  if [ -x "$DEPLOY_VENV/bin/sam" ] && [ -x "$DEPLOY_VENV/bin/cargo-lambda" ] \
     && cmp -s "$ROOT/scripts/requirements-deploy.txt" "$stamp"; then
    return
  fi
  echo "==> installing the AWS SAM CLI and cargo-lambda into $DEPLOY_VENV"
  python3 -m venv "$DEPLOY_VENV"
  "$DEPLOY_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/scripts/requirements-deploy.txt"
  cp "$ROOT/scripts/requirements-deploy.txt" "$stamp"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

MOTO_PID=""
stop_moto() {
  if [ -n "$MOTO_PID" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    MOTO_PID=""
  fi
}

# Starts moto and exports MOTO_ENDPOINT; the server is stopped on exit, also on failure.
start_moto() {
  local port log
  port="$(free_port)"
  log="${MOTO_LOG:-$(mktemp -t moto.XXXXXX.log)}"
  # moto with DynamoDB requests serialised: see scripts/moto_serial_dynamodb.py.
  "$VENV/bin/python" "$ROOT/scripts/moto_serial_dynamodb.py" 127.0.0.1 "$port" >"$log" 2>&1 &
  MOTO_PID=$!
  trap stop_moto EXIT
  trap 'stop_moto; exit 130' INT TERM
  export MOTO_ENDPOINT="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if curl -fsS "$MOTO_ENDPOINT/moto-api/" >/dev/null 2>&1; then
      echo "==> moto listening on $MOTO_ENDPOINT (log: $log)"
      return
    fi
    sleep 0.1
  done
  echo "moto did not start; see $log" >&2
  cat "$log" >&2
  exit 1
}

# Dummy credentials and a region for the AWS SDK; nothing here reaches AWS.
use_local_aws() {
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
  unset AWS_PROFILE AWS_SESSION_TOKEN
}
