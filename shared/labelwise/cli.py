"""The ``labelwise`` command: ``serve`` the API locally, ``build-model`` the embedders, ``classify-file``,
``evaluate`` zero-shot against few-shot on a labelled file."""

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
    from labelwise.runtime import build_key_store

    keys = build_key_store(settings)
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
    """``python -m labelwise.modelbuild`` into the model dir; on a terminal one model at a time,
    under a progress bar (the builder's own lines print above it)."""
    import contextlib

    from labelwise.modelbuild.__main__ import main as build_main
    from labelwise.modelbuild.build import DEFAULT_MODELS, SPECS
    from labelwise.modelbuild.image.build import IMAGE_SPECS
    from labelwise.progress import Progress

    def run(rest: list[str]) -> int:
        return int(build_main(["--out", str(settings.model_dir), *rest]) or 0)

    given = args.rest[1:] if args.rest[:1] == ["--"] else args.rest  # `build-model -- --models x`
    picker = argparse.ArgumentParser(add_help=False)
    picker.add_argument("--models", default=",".join(DEFAULT_MODELS))
    picked, rest = picker.parse_known_args(given)
    models = [m.strip() for m in picked.models.split(",") if m.strip()]
    bar = Progress(len(models), "build-model", unit="models")
    known = all(m in SPECS or m in IMAGE_SPECS for m in models)
    if not bar.enabled or not known or {"-h", "--help"} & set(rest):
        return run(given)  # as before: the builder reports unknown models and help itself
    with bar, contextlib.redirect_stdout(bar.lines(sys.stdout)):
        for i, model in enumerate(models):
            bar.update(i, desc=f"build-model {model}")
            code = run([*rest, "--models", model])
            if code:
                return code
        bar.update(len(models), desc="build-model")
    return 0


def _classify_file(args: argparse.Namespace, settings: Settings) -> int:
    """Classify a local .jsonl/.csv/.txt file like an upload; outputs are written beside it."""
    from pathlib import Path

    from labelwise.progress import Progress
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
    with Progress(path.stat().st_size, "classify", unit="B") as bar:
        outcome = classify_file(path, config, services, on_read=bar.update)
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


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Zero-shot vs few-shot on the user's labelled file: table, results.json, learning_curve.png."""
    from pathlib import Path

    from labelwise.evaluation import user
    from labelwise.progress import Progress

    path, out = Path(args.path), Path(args.out)
    try:
        data = user.read_labelled(path, args.text_column, args.label_column)
        user.check_labelled(data)
    except user.DataError as exc:
        print(f"labelwise evaluate: {exc}", file=sys.stderr)
        return 2
    train, test = user.holdout(data.labels)
    sizes = user.curve_sizes(data.counts(train))
    skipped = f" ({data.skipped} rows without a text or label skipped)" if data.skipped else ""
    print(f"{len(data.texts)} examples, {len(data.classes)} labels{skipped}")
    print(f"held-out test split: {len(test)} examples (stratified); training pool: {len(train)}")
    print(f"few-shot sizes per label: {', '.join(map(str, sizes))}; {user.SEEDS} seeds each", flush=True)
    with user.local_engine(settings, args.model) as engine:
        with Progress(1 + len(sizes) * user.SEEDS, "evaluate") as bar:
            report = user.evaluate(data, engine, train, test, sizes=sizes, on_step=lambda step: bar.advance())
        report.meta = user.run_meta(path, data, (args.text_column, args.label_column), settings, engine.model)
    print(f"\nmodel {report.model}\n")
    print(user.render_report(report))
    results, png = user.write_outputs(report, out)
    plot = png or "not drawn: matplotlib is not installed (pip install matplotlib)"
    print(f"\nresults: {results}\nplot:    {plot}")
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labelwise", description="Self-hosted classification API.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the API on localhost with the embedded store")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(func=_serve)

    _add_keys(sub)

    build = sub.add_parser("build-model", help="build the int8 ONNX models into LABELWISE_MODEL_DIR")
    build.add_argument(
        "rest", nargs=argparse.REMAINDER, help="options passed to labelwise.modelbuild (`--models`, ...)"
    )
    build.set_defaults(func=_build_model)

    _add_classify_file(sub)
    _add_evaluate(sub)
    return parser


def _add_keys(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _add_classify_file(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _add_evaluate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = sub.add_parser(
        "evaluate",
        help="zero-shot vs few-shot on your labelled .csv/.jsonl: how many examples before few-shot pays off",
    )
    evaluate.add_argument("path", help="a .csv (header row) or .jsonl file with a text and a label column")
    evaluate.add_argument("--text-column", default="text")
    evaluate.add_argument("--label-column", default="label")
    evaluate.add_argument("--model", help="embedding model (default: the default model)")
    evaluate.add_argument("--out", default="labelwise-evaluate", help="where results.json and the plot go")
    evaluate.set_defaults(func=_evaluate)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # `build-model` hands the builder's own options on (`--models x`, with or without `--`): argparse's
    # REMAINDER takes nothing that starts with `--` unless a `--` comes first, so they arrive here as
    # unknown; any other command refuses unknown options as before.
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if args.command != "build-model":
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.rest = [*unknown, *args.rest]
    configure_logging()
    settings = Settings.from_environ()
    try:
        return int(args.func(args, settings))
    except LabelwiseError as exc:
        print(f"labelwise: {exc.detail}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
