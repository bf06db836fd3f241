#!/usr/bin/env bash
# Runs the whole local demo (webhooks in, pulls fetched, notices sent, the Monitoring API, the
# in-app reconnect, events out) and greps every log line the functions wrote (stderr; the
# demo's own narration is stdout) for what must never be logged: secrets, reconnect tokens and
# links, JWTs, and the sample pull's personal values. Exits 1 naming what leaked.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

logs="$(mktemp -t canopy-logs.XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# The most verbose level a user can set: the most verbose of template.yaml's
# ApplicationLogLevel AllowedValues. The local tools filter their logs at RUST_LOG exactly as
# the functions filter theirs at Lambda's level (canopy_monitor::observability::log_filter).
allowed="$(awk '/^  ApplicationLogLevel:/ {p = 1} p && /AllowedValues:/ {print; exit}' template.yaml)"
level=""
for candidate in TRACE DEBUG INFO WARN ERROR FATAL; do
  case "$allowed" in *"$candidate"*) level="$candidate"; break ;; esac
done
[ -n "$level" ] || { echo "template.yaml: no ApplicationLogLevel AllowedValues"; exit 1; }
echo "==> log secrecy: the local demo at $level (the most verbose level allowed) on port $port, its logs in $logs"
RUST_LOG="$level" scripts/run-local.sh --demo --exit-after-demo --port "$port" >/dev/null 2>"$logs"
lines=$(wc -l <"$logs")
[ "$lines" -gt 50 ] || { echo "only $lines log lines: the demo did not run"; cat "$logs"; exit 1; }
leaked=0
# Secrets and credentials, reconnect tokens and links, JWTs; the sample pull's holder, contact
# details, VIN and address.
for needle in whsec_ sim-client-secret rt_fresh rt_hook rt_webhook reconnectToken= reconnect_token= \
  eyJ Clark Kent clark.kent 8885550000 '+1888' 'Clinton Street' 1G1FK1R62J; do
  if grep -F -q -- "$needle" "$logs"; then
    echo "LEAK: '$needle' in the logs:"
    grep -F -m 3 -- "$needle" "$logs" | cut -c1-300
    leaked=1
  fi
done
[ "$leaked" -eq 0 ] && echo "    $lines log lines at $level, none with a secret, token, link or personal value"
rm -f "$logs"
exit "$leaked"
