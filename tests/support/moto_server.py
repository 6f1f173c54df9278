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


def _tolerant_yaml_loader() -> type:
    """A SafeLoader that reads CloudFormation short tags (!Ref, !GetAtt, !Sub, ...) as plain values."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> object:
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_mapping(node)  # type: ignore[arg-type]

    Loader.add_multi_constructor("!", construct)
    return Loader


def template_table_definition(template_path: str, logical_id: str = "LabelwiseTable") -> dict[str, object]:
    """``create_table`` keyword arguments taken from ``template.yaml``'s own table definition."""
    import yaml

    with open(template_path, encoding="utf-8") as fh:
        template = yaml.load(fh, Loader=_tolerant_yaml_loader())
    props = template["Resources"][logical_id]["Properties"]
    definition: dict[str, object] = {
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        definition["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return definition


def create_table_and_bucket(
    dynamodb: object, s3: object, template_path: str, table: str, bucket: str
) -> None:
    """Create the template's table (under ``table``) and a bucket on a moto endpoint."""
    dynamodb.create_table(TableName=table, **template_table_definition(template_path))  # type: ignore[attr-defined]
    s3.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
