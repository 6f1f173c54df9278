"""The ``labelwise`` command: ``serve`` the API locally, ``build-model`` the embedders."""

from __future__ import annotations

import argparse
import logging
import sys

from labelwise.errors import LabelwiseError
from labelwise.settings import Settings


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
    server = make_server(services, args.host, args.port)
    host, port = server.server_address[0], server.server_address[1]
    print(f"labelwise listening on http://{host}:{port}  (docs: http://{host}:{port}/docs)", flush=True)
    print(f"models: {', '.join(services.registry.available)}; data: {settings.data_dir}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _build_model(args: argparse.Namespace, settings: Settings) -> int:
    from labelwise.modelbuild.__main__ import main as build_main

    return int(build_main(["--out", str(settings.model_dir), *args.rest]) or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labelwise", description="Self-hosted classification API.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the API on localhost with the embedded store")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(func=_serve)

    build = sub.add_parser("build-model", help="build the int8 ONNX models into LABELWISE_MODEL_DIR")
    build.add_argument("rest", nargs=argparse.REMAINDER, help="options passed to labelwise.modelbuild")
    build.set_defaults(func=_build_model)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_environ()
    return int(args.func(args, settings))


if __name__ == "__main__":
    raise SystemExit(main())
