"""The ``labelwise`` command: ``serve`` the API locally, ``build-model`` the embedders."""

from __future__ import annotations

import argparse
import logging
import secrets
import sys

from labelwise.errors import LabelwiseError
from labelwise.settings import Settings

LOCAL_TENANT = "local"


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from labelwise.runtime import build_services
    from labelwise.server import make_server

    services = build_services(settings)
    if not services.registry.available:
        print(
            f"No models found in {settings.model_dir}. Build them with `make model` "
            "(or `python -m labelwise.modelbuild --out DIR` and LABELWISE_MODEL_DIR=DIR).",
            file=sys.stderr,
        )
        return 2
    try:
        services.registry.get(None)  # load the default model now, not on the first request
    except LabelwiseError as exc:
        print(f"Cannot load the default model: {exc.detail}", file=sys.stderr)
        return 2
    key: str | None = None
    if not services.keys.list():
        key, record = services.keys.create(LOCAL_TENANT, "local (created by labelwise serve)")
        print(f"Created your API key (shown once, stored hashed): {key}", flush=True)
        print(f"  key id {record.key_id}; more with `labelwise keys create`", flush=True)
    if not settings.require_auth:
        print("WARNING: LABELWISE_REQUIRE_AUTH=false: requests without a key are accepted.", flush=True)
    server = make_server(services, args.host, args.port)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    print(f"labelwise listening on http://{host}:{port}  (docs: http://{host}:{port}/docs)", flush=True)
    # The key rides in the fragment, which the browser never sends: the page keeps it for the tab.
    print(f"playground: http://{host}:{port}/playground{f'#key={key}' if key else ''}", flush=True)
    print(f"models: {', '.join(services.registry.available)}; data: {settings.data_dir}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from labelwise.storage import open_stores

    _, keys = open_stores(settings)
    if args.keys_command == "create":
        tenant = args.tenant or f"tnt_{secrets.token_hex(6)}"
        key, record = keys.create(tenant, args.name)
        print(f"key:    {key}\nkey id: {record.key_id}\ntenant: {record.tenant_id}")
        print("Store the key now: only its hash is kept.", file=sys.stderr)
    elif args.keys_command == "list":
        for r in keys.list(args.tenant):
            state = "revoked" if r.revoked else "active"
            print(f"{r.key_id}\t{r.tenant_id}\t{state}\t{r.created_at.isoformat()}\t{r.name}")
    else:
        keys.revoke(args.key_id)
        print(f"revoked {args.key_id}")
    return 0


def _build_model(args: argparse.Namespace, settings: Settings) -> int:
    from labelwise.modelbuild.__main__ import main as build_main

    return int(build_main(["--out", str(settings.model_dir), *args.rest]) or 0)


def _classify_file(args: argparse.Namespace, settings: Settings) -> int:
    """Classify a local .jsonl/.csv/.txt file like an upload; outputs are written beside it."""
    from pathlib import Path

    from labelwise.runtime import build_services
    from labelwise.uploads.local import classify_file, local_config, local_outputs

    path = Path(args.path)
    if not path.is_file():
        print(f"labelwise: {path} is not a file", file=sys.stderr)
        return 2
    labels = [label.strip() for label in args.labels.split(",")] if args.labels else None
    config = local_config(
        labels=labels, classifier_id=args.classifier_id, model=args.model, api_key_id=args.api_key_id
    )
    services = build_services(settings)
    services.warm_up()  # load the model before the clock starts
    outcome = classify_file(path, config, services)
    outputs = local_outputs(path)
    if outcome.status != "done" or outcome.summary is None:
        print(f"labelwise: {outcome.detail} (see {outputs.error})", file=sys.stderr)
        return 1
    summary = outcome.summary
    print(
        f"{summary.classified} classified, {summary.rejected_count} rejected of {summary.records_read} read"
        f" ({summary.records_per_second:.0f} records/s, model {summary.model})"
    )
    print(f"results: {outputs.results}\nsummary: {outputs.summary}")
    return 0


def configure_logging() -> None:
    """Plain-text logs on stderr; every line carries the request id (``-`` outside requests)."""
    from labelwise.telemetry import RequestIdFilter

    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labelwise", description="Self-hosted classification API.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the API on localhost with the embedded store")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(func=_serve)

    keys = sub.add_parser("keys", help="manage API keys in the configured store (LABELWISE_STORE)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key (printed once)")
    create.add_argument("--name", default="cli", help="a note for humans")
    create.add_argument("--tenant", help="tenant id to add the key to (default: a new tenant)")
    listing = keys_sub.add_parser("list", help="list keys (ids, never the keys)")
    listing.add_argument("--tenant")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    keys.set_defaults(func=_keys)

    build = sub.add_parser("build-model", help="build the int8 ONNX models into LABELWISE_MODEL_DIR")
    build.add_argument("rest", nargs=argparse.REMAINDER, help="options passed to labelwise.modelbuild")
    build.set_defaults(func=_build_model)

    classify_file = sub.add_parser(
        "classify-file",
        help="classify a .jsonl/.csv/.txt file like an upload; results are written beside it",
    )
    classify_file.add_argument(
        "path", help="the file (.jsonl: `text`, `id`; .csv: `text`, `id` columns; .txt)"
    )
    what = classify_file.add_mutually_exclusive_group(required=True)
    what.add_argument("--labels", help="zero-shot labels, comma-separated")
    what.add_argument("--classifier-id", help="a few-shot classifier in the configured store")
    classify_file.add_argument("--model", help="embedding model (default: the default model)")
    classify_file.add_argument(
        "--api-key-id", help="act as this key (default: any key may use public classifiers only)"
    )
    classify_file.set_defaults(func=_classify_file)

    args = parser.parse_args(argv)
    configure_logging()
    settings = Settings.from_environ()
    try:
        return int(args.func(args, settings))
    except LabelwiseError as exc:
        print(f"labelwise: {exc.detail}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
