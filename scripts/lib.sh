# Shared by scripts/test.sh and scripts/run-local.sh: the local virtualenv (moto, cfn-lint)
# and a moto server on a free 127.0.0.1 port that stops when the calling script exits.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

# Installs a requirements file into a virtualenv, unless the listed commands are there and the
# file has not changed since.
install_venv() {
  local venv="$1" requirements="$2" command missing=""
  shift 2
  for command in "$@"; do
    [ -x "$venv/bin/$command" ] || missing=1
  done
  if [ -z "$missing" ] && cmp -s "$requirements" "$venv/.requirements"; then
    return
  fi
  echo "==> installing $(basename "$requirements") into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/.requirements"
}

# moto and cfn-lint, for the tests and the local run.
ensure_venv() {
  install_venv "$VENV" "$ROOT/scripts/requirements-dev.txt" moto_server cfn-lint
}

DEPLOY_VENV="$VENV/deploy"

# The AWS SAM CLI and cargo-lambda, in their own virtualenv (SAM pins its own cfn-lint).
ensure_deploy_tools() {
  install_venv "$DEPLOY_VENV" "$ROOT/scripts/requirements-deploy.txt" sam cargo-lambda
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
