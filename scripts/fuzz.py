"""Fuzz the local server with schemathesis against the committed OpenAPI document.

Starts the real ``labelwise serve`` (real int8 models, a temporary data dir, quotas off) unless
``--url`` is given, then sends schemathesis-generated requests to every operation of
``docs/openapi.json``, with a valid key and with none, in positive (schema-valid) and negative
(schema-violating) generation modes. Every response is checked with ``not_a_server_error``,
``response_schema_conformance``, ``status_code_conformance`` and ``content_type_conformance``.

    .venv/bin/python scripts/fuzz.py --examples 2000 --report fuzz-report.json

Exit status 1 when any check failed (each distinct failure is printed once with a reproducing curl).
Request lists are kept short (at most ``MAX_ITEMS`` items, in the fuzzer's copy of the request schemas
only), so a request costs tens of milliseconds of inference on a laptop core and the response schemas
stay untouched. Strings are not capped: long texts and labels must be handled (truncated or refused),
and ``tests/unit/test_api_fuzz.py`` adds what the document cannot describe (lone surrogate escapes,
4,301-digit integers, 60,000-character strings).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelwise.evaluation.serve import ServerProcess, start_serve

REPO = Path(__file__).resolve().parents[1]
OPENAPI = REPO / "docs" / "openapi.json"
#: Request-side cap in the fuzzer's copy of the document (the API itself allows 1,024 inputs).
MAX_ITEMS = 4
#: Components only ever sent (never answered): capped. Response components are left as they are.
REQUEST_COMPONENTS = (
    "ClassifyRequest",
    "TrainRequest",
    "CohereClassifyRequest",
    "TextInput",
    "ImageInput",
    "TextExample",
    "ImageExample",
    "CohereExample",
)


def capped_document(path: Path = OPENAPI) -> dict[str, Any]:
    """The OpenAPI document with ``maxItems``/``maxProperties`` caps on request schemas (no string cap)."""
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))

    def cap(node: Any) -> None:
        if isinstance(node, dict):
            kind = node.get("type")
            if kind == "array":
                node["maxItems"] = min(int(node.get("maxItems", MAX_ITEMS)), MAX_ITEMS)
            elif kind == "object" and isinstance(node.get("additionalProperties"), dict):
                node["maxProperties"] = min(int(node.get("maxProperties", MAX_ITEMS)), MAX_ITEMS)
            for value in node.values():
                cap(value)
        elif isinstance(node, list):
            for value in node:
                cap(value)

    schemas = document["components"]["schemas"]
    for name in REQUEST_COMPONENTS:
        if name in schemas:
            schemas[name] = copy.deepcopy(schemas[name])
            cap(schemas[name])
    return document


# -- the server -------------------------------------------------------------------------------------


@dataclass
class RemoteServer:
    """A server this script did not start (``--url``)."""

    url: str
    key: str | None


def start_server(data_dir: Path, timeout_s: float = 180) -> ServerProcess:
    """``labelwise serve`` on a free port with quotas off; its URL and the printed key (output drained)."""
    quotas_off = {
        "LABELWISE_RATE_LIMIT_REQUESTS_PER_MINUTE": "0",
        "LABELWISE_RATE_LIMIT_TOKENS_PER_MINUTE": "0",
    }
    server = start_serve(data_dir, quotas_off, timeout_s=timeout_s)
    server.drain()
    return server


# -- fuzzing ----------------------------------------------------------------------------------------


@dataclass
class Report:
    requests: Counter[str] = field(default_factory=Counter)  # "with-key" / "no-key"
    by_operation: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)  # "with-key 200"
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)  # distinct failure -> sample
    failure_count: int = 0
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.total,
            "requests_by_auth": dict(self.requests),
            "requests_by_operation": dict(sorted(self.by_operation.items())),
            "statuses": dict(sorted(self.statuses.items())),
            "server_errors": sum(n for k, n in self.statuses.items() if k.split()[-1].startswith("5")),
            "failed_checks": self.failure_count,
            "distinct_failures": list(self.failures.values()),
            "seconds": round(self.seconds, 1),
        }


def fuzz(server: RemoteServer | ServerProcess, examples: int, seed: int | None = None) -> Report:
    """Send about ``examples`` generated requests (at least that many, unless the space runs out)."""
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import FailureGroup
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
        content_type_conformance,
    ]
    schema = schemathesis.openapi.from_dict(capped_document())
    operations = [result.ok() for result in schema.get_all_operations()]
    auths: dict[str, dict[str, str]] = {"no-key": {}}
    if server.key:
        auths["with-key"] = {"Authorization": f"Bearer {server.key}"}
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    cells = [(op, auth, mode) for op in operations for auth in auths for mode in modes]
    report = Report()
    session = requests.Session()
    started = time.monotonic()
    passes = 0
    while report.total < examples and passes < 20:
        passes += 1
        per_cell = max(1, -(-(examples - report.total) // len(cells)))
        before = report.total
        for operation, auth, mode in cells:
            try:
                strategy = operation.as_strategy(generation_mode=mode)
            except Exception as exc:  # e.g. no negative cases exist for a parameterless route
                report.failures.setdefault(
                    f"{operation.label} {mode.value}: cannot generate",
                    {"operation": operation.label, "mode": mode.value, "error": repr(exc)[:300]},
                )
                continue

            def make_run(operation: Any, auth: str, mode: Any, strategy: Any, per_cell: int) -> Any:
                @settings(
                    max_examples=per_cell,
                    deadline=None,
                    database=None,
                    derandomize=seed is not None,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=strategy)
                def run(case: Any) -> None:
                    headers = dict(case.headers or {})
                    headers.pop("Authorization", None)
                    headers.pop("authorization", None)
                    case.headers = {**headers, **auths[auth]}
                    try:
                        response = case.call(base_url=server.url, session=session, timeout=120)
                    except requests.RequestException as exc:  # the server dropped the connection
                        report.requests[auth] += 1
                        report.statuses[f"{auth} no-response"] += 1
                        report.failure_count += 1
                        report.failures.setdefault(
                            f"{operation.label} connection: {type(exc).__name__}",
                            {"operation": operation.label, "auth": auth, "error": repr(exc)[:300]},
                        )
                        return
                    report.requests[auth] += 1
                    report.by_operation[operation.label] += 1
                    report.statuses[f"{auth} {response.status_code}"] += 1
                    try:
                        case.validate_response(response, checks=checks)
                    except (Exception, FailureGroup) as exc:  # FailureGroup is a BaseExceptionGroup
                        report.failure_count += 1
                        title = (
                            str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
                        )
                        signature = f"{operation.label} {response.status_code} {title}"
                        report.failures.setdefault(
                            signature,
                            {
                                "operation": operation.label,
                                "auth": auth,
                                "mode": mode.value,
                                "status": response.status_code,
                                "failure": str(exc)[:1500],
                                "response": response.text[:500],
                                "curl": case.as_curl_command(headers=case.headers)[:1500],
                            },
                        )

                return run

            make_run(operation, auth, mode, strategy, per_cell)()
        if report.total == before:  # nothing new can be generated
            break
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=int(os.environ.get("FUZZ_EXAMPLES", "2000")),
        help="requests to send in all (default: $FUZZ_EXAMPLES or 2000)",
    )
    parser.add_argument("--url", help="fuzz this server instead of starting one (needs --key for with-key)")
    parser.add_argument("--key", help="API key for --url")
    parser.add_argument("--seed", type=int, help="derandomise hypothesis (repeatable runs)")
    parser.add_argument("--report", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    if args.url:
        report = fuzz(RemoteServer(args.url.rstrip("/"), args.key), args.examples, args.seed)
    else:
        with tempfile.TemporaryDirectory(prefix="labelwise-fuzz-") as tmp:
            server = start_server(Path(tmp) / "data")
            try:
                report = fuzz(server, args.examples, args.seed)
            finally:
                server.stop()
    figures = report.as_dict()
    if args.report:
        args.report.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in figures.items() if k != "distinct_failures"}, indent=2))
    for failure in figures["distinct_failures"]:
        print("\nFAILURE:", json.dumps(failure, indent=2))
    ok = figures["failed_checks"] == 0 and figures["server_errors"] == 0
    verdict = "OK" if ok else "FAIL"
    print(f"\nfuzz: {figures['requests']} requests, {figures['failed_checks']} failed checks: {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
