"""The local server under a low open-file limit: thousands of fresh connections, no leak (issue 12 item 1).

``ThreadingHTTPServer`` starts a thread per client connection; the local store once opened SQLite
connections per thread and closed none, so a server under ``ulimit -n 1024`` answered 503 to every
request after about 250 connections. Here the server runs in a process of its own at
``RLIMIT_NOFILE=256`` and is watched from outside through ``/proc/<pid>/fd``.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import labelwise
from labelwise.evaluation import serve

REPO = Path(__file__).resolve().parents[2]
NOFILE = 256
CONNECTIONS = 2_000
#: Sockets of connections that were just answered may not be closed yet when the fds are counted.
FD_MARGIN = 8

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/<pid>/fd (linux)"),
]


class ServerProcess(serve.ServerProcess):
    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request on a fresh TCP connection, closed afterwards."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            headers = {"Authorization": f"Bearer {self.key}", "Connection": "close"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
        finally:
            conn.close()


def limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    shared = str(Path(labelwise.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), shared]), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.local_server_process", str(tmp_path)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=limit_open_files,
    )
    try:
        url, key = serve.wait_until_listening(process, timeout_s=60)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    if key is None:
        process.kill()
        pytest.fail("server printed no key")
    server = ServerProcess(url, key, process)
    drain = server.drain()  # its logging (a warning per 503) never blocks on a full pipe
    try:
        yield server
    finally:
        server.stop()
        drain.join(timeout=5)
        process.stdout.close()


def train_one(server: ServerProcess) -> str:
    status, trained = server.request(
        "POST",
        "/v1/train",
        {"input": [{"text": "refund my order", "label": "refund"}, {"text": "late", "label": "delay"}]},
    )
    assert status == 200, trained
    return str(trained["classifier_id"])


def fresh_connections(
    server: ServerProcess, classifier_id: str, count: int = CONNECTIONS
) -> tuple[Counter[int | str], dict[int, int]]:
    """``count`` requests, each on a new TCP connection: their statuses, and the server's open files
    after 100, 1,000 and ``count`` of them (stops early once 20 have failed)."""
    statuses: Counter[int | str] = Counter()
    files: dict[int, int] = {}
    for i in range(1, count + 1):
        status = send(server, i, classifier_id)
        statuses[status] += 1
        if i in (100, 1_000, count):
            time.sleep(0.3)  # let the last connections' threads finish
            files[i] = server.open_files()
        if sum(n for s, n in statuses.items() if s != 200) >= 20:
            files[i] = server.open_files()
            break  # the server is failing: no need to wait out 2,000 time-outs
    return statuses, files


def assert_fresh_connections_leak_nothing(server: ServerProcess, name: str) -> None:
    """Given ``server`` at RLIMIT_NOFILE=256 and a classifier trained on it; when 2,000 clients each
    open a new TCP connection and make one request that reads (and some that write) the store:
    listing, classifying with the classifier, training it further; then every request was served,
    and the process holds no more files after 2,000 connections than after 100."""
    limits = Path(f"/proc/{server.process.pid}/limits").read_text()
    assert re.search(rf"Max open files\s+{NOFILE}\s+{NOFILE}", limits), limits
    classifier_id = train_one(server)
    statuses, files = fresh_connections(server, classifier_id)
    assert statuses == Counter({200: CONNECTIONS}), (statuses, files)
    assert files[CONNECTIONS] <= files[100] + FD_MARGIN, files
    print(
        f"\n{name}, {CONNECTIONS} connections at RLIMIT_NOFILE={NOFILE}: {dict(statuses)}, open files {files}"
    )


def test_thousands_of_fresh_connections_at_nofile_256_leak_no_files(server: ServerProcess) -> None:
    # Given the local server (SQLite stores, hashing embedder) at RLIMIT_NOFILE=256
    # When 2,000 clients each open a new connection; Then all are served, open files flat
    assert_fresh_connections_leak_nothing(server, "local server")


def send(server: ServerProcess, i: int, classifier_id: str) -> int | str:
    """Request ``i`` of the run: its status, or ``"no answer"`` when the connection failed."""
    try:
        if i % 50 == 0:
            status, _ = server.request(
                "POST",
                "/v1/train",
                {"classifier_id": classifier_id, "input": [{"text": f"refund {i}", "label": "refund"}]},
            )
        elif i % 4 == 0:
            status, _ = server.request(
                "POST", "/v1/classify", {"classifier_id": classifier_id, "input": ["refund please"]}
            )
        else:
            status, _ = server.request("GET", "/v1/classifiers")
    except (OSError, http.client.HTTPException):
        return "no answer"
    return status
