"""moto's server, with each DynamoDB request applied atomically.

DynamoDB evaluates a condition expression and applies the write as one atomic step per item.
moto's server handles requests on parallel threads and its DynamoDB backend takes no lock
between evaluating a condition and writing, so two conditional writes on one item can both
succeed, which DynamoDB never allows. The tests drive concurrent clients against conditional
writes (claims, leases), so the emulator must be faithful there: this server runs every
DynamoDB request under one lock. Other services (SQS, SES, SNS, Secrets Manager) keep moto's
parallel threads.

Usage: python moto_serial_dynamodb.py HOST PORT
"""

import signal
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

DYNAMODB_TARGET_PREFIX = "DynamoDB_"
# moto's state dump walks the DynamoDB tables too: under the same lock it never sees one
# mid-write.
STATE_DUMP_PATH = "/moto-api/data.json"


class SerialDynamoDB:
    """WSGI middleware: DynamoDB requests (X-Amz-Target DynamoDB_*) one at a time."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if (
            environ.get("HTTP_X_AMZ_TARGET", "").startswith(DYNAMODB_TARGET_PREFIX)
            or environ.get("PATH_INFO") == STATE_DUMP_PATH
        ):
            with self.lock:
                # Materialise the whole response inside the lock: the write is done by then.
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        host,
        port,
        SerialDynamoDB(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
