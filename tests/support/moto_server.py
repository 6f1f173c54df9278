"""Start moto's threaded server on 127.0.0.1 (a free port) for tests that talk HTTP to "AWS"."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

from moto.server import ThreadedMotoServer

#: Credentials and region the test clients use (moto accepts anything).
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class SerializedMotoServer(ThreadedMotoServer):
    """:class:`ThreadedMotoServer` that handles one request at a time.

    moto's backends do not make a conditional check and the write it guards atomic across
    concurrent requests (no locking in its DynamoDB model), so under a threaded server two
    ``UpdateItem ... ConditionExpression version = :v`` calls can both succeed: a lost update that
    real DynamoDB never produces. Serialising requests restores DynamoDB's per-request atomicity;
    concurrency between clients (read, compute, conditional write) is unaffected.
    """

    def _server_entry(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)
        lock = threading.Lock()

        def serialized(environ: Any, start_response: Any) -> Any:
            with lock:
                return list(app(environ, start_response))

        self._server = make_server(
            self._ip_address, self._port, serialized, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Run a (serialised) moto server on 127.0.0.1 for the block; yields its endpoint URL.

    Pair with ``monkeypatch.setenv`` over :data:`FAKE_AWS_ENV` (or explicit client credentials).
    """
    port = free_port()
    server = SerializedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def aws_clients(endpoint: str) -> tuple[Any, Any]:
    """DynamoDB and S3 clients for a moto endpoint, with explicit fake credentials."""
    import boto3
    from botocore.config import Config

    from labelwise.storage.aws import CLIENT_CONFIG

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    s3_config = CLIENT_CONFIG.merge(Config(s3={"addressing_style": "path"}))
    return (
        session.client("dynamodb", endpoint_url=endpoint, config=CLIENT_CONFIG),
        session.client("s3", endpoint_url=endpoint, config=s3_config),
    )


def create_table_and_bucket(dynamodb: Any, s3: Any, table: str, bucket: str) -> None:
    """Create ``template.yaml``'s table and bucket under the given names (via the template's own
    definitions: :mod:`tests.support.template`)."""
    from tests.support.template import create_buckets, create_tables

    create_tables(dynamodb, names={"LabelwiseTable": table})
    create_buckets(s3, names={"LabelwiseBucket": bucket})
