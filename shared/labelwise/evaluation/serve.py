"""A server in a process of its own, for scripts and tests that reach it over HTTP (dev only).

:func:`start_serve` runs ``labelwise serve`` on a free loopback port and waits for its
``listening on`` line; :func:`wait_until_listening` reads any such process's output the same way
and scrapes the API key it prints on first start (``lw_...``).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: An API key as ``labelwise serve`` prints it on first start.
KEY_PATTERN = re.compile(r"\b(lw_[A-Za-z0-9_-]{20,})\b")
LISTENING_PATTERN = re.compile(r"listening on (http://\S+)")


@dataclass
class ServerProcess:
    """A running server: its URL, the key it printed (``None`` when it printed none) and its process."""

    url: str
    key: str | None
    process: subprocess.Popen[str]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def drain(self) -> threading.Thread:
        """Keep reading its output in the background, so a full pipe never blocks its logging."""
        stdout = self.process.stdout
        thread = threading.Thread(target=lambda: [None for _ in stdout or ()], daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_listening(process: subprocess.Popen[str], timeout_s: float) -> tuple[str, str | None]:
    """Read ``process``'s output (text, stderr merged) up to its ``listening on <url>`` line; returns
    that URL and the key printed before it. Kills the process and raises ``RuntimeError`` when it
    exits or stays silent past ``timeout_s``, with its output."""
    assert process.stdout is not None
    output: list[str] = []
    key = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                raise RuntimeError("server exited:\n" + "".join(output))
            continue
        output.append(line)
        if found := KEY_PATTERN.search(line):
            key = found.group(1)
        if listening := LISTENING_PATTERN.search(line):
            return listening.group(1), key
    process.kill()
    raise RuntimeError("server did not start:\n" + "".join(output))


def start_serve(
    data_dir: Path,
    extra_env: Mapping[str, str] | None = None,
    *,
    preexec_fn: Callable[[], None] | None = None,
    timeout_s: float = 180,
) -> ServerProcess:
    """``labelwise serve`` on a free loopback port with data in ``data_dir`` (environment: this
    process's, plus ``extra_env``); ``preexec_fn`` runs in the child first (e.g. ``setrlimit``)."""
    port = free_port()
    env = {**os.environ, "LABELWISE_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "labelwise.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=preexec_fn,
    )
    _, key = wait_until_listening(process, timeout_s)
    return ServerProcess(f"http://127.0.0.1:{port}", key, process)
