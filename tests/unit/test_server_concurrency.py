"""Concurrent requests to the local server each get their own answer (no cross-talk between requests).

Every connection to ``labelwise serve`` gets a thread and a resolver of its own, but Powertools
kept the request being resolved on a class attribute shared by every resolver in the process
(``BaseRouter.current_event``): two requests resolved at the same moment could each read the
other's body, headers (API key) or request id, e.g. be scored with the other's labels.
Here every route with a body is posted by clients that start together, each request with its own
key, labels and number of inputs, and each answer must carry exactly its own: on fresh connections
(fresh threads and resolvers, their lazily built state cold) and on kept-alive ones (warm). The
last test shows the cause without threads: one resolver resolving inside another's route.
"""

from __future__ import annotations

import http.client
import itertools
import json
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from labelwise.embedding.registry import ModelRegistry
from labelwise.server import LocalLambdaContext, http_event, running_server
from labelwise.services import Services
from labelwise.telemetry import OwnRequestResolver
from tests.support.fakes import HashingEmbedder, fake_model_settings

#: Rounds, and concurrent requests per round (two of each route with a body).
ROUNDS = 4
PER_ROUND = 8
#: Switch threads often, so that requests interleave as they would on a busy multi-core host.
SWITCH_INTERVAL_S = 1e-6


@dataclass
class Call:
    """One request and what its answer must carry."""

    key: str
    path: str
    body: dict[str, Any]
    check: Callable[[dict[str, Any]], None]


def classify_jina(i: int, key: str) -> Call:
    labels = [f"alpha{i} label", f"beta{i} label"]
    texts = [f"alpha{i} text {k}" for k in range(i + 1)]

    def check(out: dict[str, Any]) -> None:
        assert [row["index"] for row in out["data"]] == list(range(len(texts)))
        for row in out["data"]:
            assert row["prediction"] in labels
            assert {p["label"] for p in row["predictions"]} == set(labels)

    return Call(key, "/v1/classify", {"labels": labels, "input": texts}, check)


def classify_cohere(i: int, key: str) -> Call:
    labels = [f"spam{i} prize", f"ham{i} meeting"]
    examples = [{"text": f"{label} example {k}", "label": label} for label in labels for k in range(2)]
    texts = [f"{labels[k % 2]} input {k}" for k in range(i + 1)]

    def check(out: dict[str, Any]) -> None:
        assert [row["input"] for row in out["classifications"]] == texts
        for row in out["classifications"]:
            assert row["prediction"] in labels and set(row["labels"]) == set(labels)

    return Call(key, "/v1/classify", {"inputs": texts, "examples": examples}, check)


def train(i: int, key: str) -> Call:
    labels = [f"sports{i} goal", f"politics{i} vote"]
    examples = [{"text": f"{label} example {k}", "label": label} for label in labels for k in range(i + 1)]

    def check(out: dict[str, Any]) -> None:
        assert out["labels"] == labels and out["num_samples"] == len(examples)

    return Call(key, "/v1/train", {"input": examples, "num_iters": 2}, check)


def embeddings(i: int, key: str) -> Call:
    texts = [f"embed{i} text {k}" for k in range(i + 1)]

    def check(out: dict[str, Any]) -> None:
        assert [row["index"] for row in out["data"]] == list(range(len(texts)))

    return Call(key, "/v1/embeddings", {"input": texts}, check)


ROUTES = [classify_jina, classify_cohere, train, embeddings]

Answer = tuple[int, Any]


@pytest.fixture
def fast_switching() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def connect(base_url: str) -> http.client.HTTPConnection:
    parts = urlsplit(base_url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)


def send(conn: http.client.HTTPConnection, call: Call, method: str = "POST") -> Answer:
    """``call`` on ``conn`` (kept alive): status and JSON answer."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {call.key}"}
    data = json.dumps(call.body).encode() if method == "POST" else None
    conn.request(method, call.path, body=data, headers=headers)
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def send_fresh(base_url: str, call: Call, method: str = "POST") -> Answer:
    """``call`` on a fresh connection (a fresh server thread and resolver), closed afterwards."""
    conn = connect(base_url)
    try:
        return send(conn, call, method)
    finally:
        conn.close()


def concurrently(calls: list[Call], client: Callable[[int, Call], Answer]) -> list[Answer]:
    """``client(n, calls[n])`` for every call, each from its own thread, all released together."""
    start = threading.Barrier(len(calls))
    answers: list[Answer] = [(0, None)] * len(calls)

    def worker(n: int) -> None:
        start.wait(timeout=30)
        try:
            answers[n] = client(n, calls[n])
        except Exception as exc:  # reported with the request it belongs to
            answers[n] = (0, {"exception": repr(exc)})

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a request did not finish"
    return answers


def fault(call: Call, answer: Answer) -> str | None:
    """What is wrong with ``answer`` as the answer to ``call`` (None: nothing)."""
    status, out = answer
    try:
        assert status == 200, out
        call.check(out)
    except (AssertionError, KeyError, TypeError) as exc:  # an answer of another shape too
        return f"{call.path}: {exc!r}"[:300]
    return None


def faults(base_url: str, calls: list[Call], answers: list[Answer]) -> list[str]:
    """The answers that are not their request's; a classifier trained must also belong to the
    key that trained it and hold its labels and examples."""
    found = []
    for n, (call, answer) in enumerate(zip(calls, answers, strict=True)):
        problem = fault(call, answer)
        if problem is None and call.path == "/v1/train":
            info = Call(call.key, f"/v1/classifiers/{answer[1]['classifier_id']}", {}, call.check)
            problem = fault(info, send_fresh(base_url, info, method="GET"))
        if problem is not None:
            found.append(f"request {n} {problem}")
    return found


def fresh_services(root: Path) -> tuple[Services, list[str]]:
    """Services over the hashing embedder, quotas off, and one key (tenant) per request of a round."""
    services = Services(
        settings=fake_model_settings(root, quotas_off=True),
        registry=ModelRegistry.from_embedders([HashingEmbedder()]),
    )
    return services, [services.keys.create(f"tenant-{n}", f"key {n}")[0] for n in range(PER_ROUND)]


def round_calls(round_: int, keys: list[str]) -> list[Call]:
    """A round's requests: every route with a body, each request its own key, labels and inputs."""
    return [ROUTES[(n + round_) % len(ROUTES)](n, keys[n]) for n in range(PER_ROUND)]


def report(wrong: list[str]) -> str:
    return f"{len(wrong)} of {ROUNDS * PER_ROUND} answers were not their request's:\n" + "\n".join(wrong)


def test_concurrent_requests_on_fresh_connections_each_get_their_own_answer(
    tmp_path: Path, fast_switching: None
) -> None:
    wrong: list[str] = []
    for round_ in range(ROUNDS):
        # Given a fresh server (fresh resolvers: their lazily built state cold)
        services, keys = fresh_services(tmp_path / str(round_))
        calls = round_calls(round_, keys)
        with running_server(services) as url:
            # When every route with a body is posted at the same moment, each on a fresh connection
            answers = concurrently(calls, lambda _, call: send_fresh(url, call))
            # Then each answer is the answer to its own request
            wrong += [f"round {round_} {problem}" for problem in faults(url, calls, answers)]
    assert not wrong, report(wrong)


def test_concurrent_requests_on_kept_alive_connections_each_get_their_own_answer(
    tmp_path: Path, fast_switching: None
) -> None:
    # Given a server and one client connection per request, each already served every route (warm)
    services, keys = fresh_services(tmp_path)
    with running_server(services) as url:
        conns = [connect(url) for _ in range(PER_ROUND)]
        try:
            for (n, conn), route in itertools.product(enumerate(conns), ROUTES):
                assert fault(route(n, keys[n]), send(conn, route(n, keys[n]))) is None
            wrong: list[str] = []
            for round_ in range(ROUNDS):
                # When every route with a body is posted at the same moment on those connections
                calls = round_calls(round_, keys)
                answers = concurrently(calls, lambda n, call: send(conns[n], call))
                # Then each answer is the answer to its own request
                wrong += [f"round {round_} {problem}" for problem in faults(url, calls, answers)]
        finally:
            for conn in conns:
                conn.close()
    assert not wrong, report(wrong)


def test_a_resolver_keeps_its_own_request_while_another_resolves() -> None:
    # Given two resolvers, the first of which lets the second resolve a request inside its route
    first, second = OwnRequestResolver(), OwnRequestResolver()

    @second.get("/who")
    def second_who() -> dict[str, str]:
        return {"id": second.current_event.request_context.request_id}

    @first.get("/who")
    def first_who() -> dict[str, str]:
        before = first.current_event.request_context.request_id
        inner = second.resolve(http_event("GET", "/who", {}, b"", "127.0.0.2", "b"), LocalLambdaContext("b"))
        return {
            "before": before,
            "inner": json.loads(inner["body"])["id"],
            "after": first.current_event.request_context.request_id,
            "context": first.lambda_context.function_name,
        }

    # When the first resolves its request, the second resolving another one meanwhile
    answer = first.resolve(http_event("GET", "/who", {}, b"", "127.0.0.1", "a"), LocalLambdaContext("a"))
    # Then each read its own request and context throughout
    assert json.loads(answer["body"]) == {"before": "a", "inner": "b", "after": "a", "context": "a"}
