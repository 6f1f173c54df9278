"""The real ``labelwise serve`` (int8 model, SQLite stores) at RLIMIT_NOFILE=256: 2,000 fresh
connections, no 5xx, open files flat (issue 12 item 1; the integration test runs the same over the
hashing embedder)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import LiveServer, require_models, start_server, stop_server
from tests.integration.test_server_connections import (
    ServerProcess,
    assert_fresh_connections_leak_nothing,
    limit_open_files,
)

pytestmark = [
    pytest.mark.model,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/<pid>/fd (linux)"),
]


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[LiveServer]:
    require_models()
    quotas_off = {
        "LABELWISE_RATE_LIMIT_REQUESTS_PER_MINUTE": "0",
        "LABELWISE_RATE_LIMIT_TOKENS_PER_MINUTE": "0",
    }
    server = start_server(tmp_path / "data", quotas_off, preexec_fn=limit_open_files)
    server.drain()  # its logging never blocks on a full pipe
    try:
        yield server
    finally:
        stop_server(server)


def test_labelwise_serve_at_nofile_256_serves_2000_fresh_connections(limited_server: LiveServer) -> None:
    # Given `labelwise serve` (the real int8 model) at RLIMIT_NOFILE=256
    assert limited_server.key
    server = ServerProcess(limited_server.url, limited_server.key, limited_server.process)
    # When 2,000 clients each open a new connection: list, classify with a classifier, train it
    # Then all are served and the open files stay flat
    assert_fresh_connections_leak_nothing(server, "labelwise serve")
