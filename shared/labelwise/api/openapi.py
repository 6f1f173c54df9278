"""Generate the OpenAPI document from the request/response models.

``python -m labelwise.api.openapi --write`` writes ``docs/openapi.json``; ``--check`` exits 1 when
the committed document differs from the models (a test does the same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labelwise.api.app import openapi_json
from labelwise.embedding.registry import ModelRegistry
from labelwise.services import Services
from labelwise.settings import Settings

DEFAULT_PATH = Path("docs/openapi.json")


def generate() -> str:
    """The document, independent of the models and settings of this machine."""
    settings = Settings.from_environ(
        {"LABELWISE_DATA_DIR": "/nonexistent", "LABELWISE_CACHE_DIR": "/nonexistent"}
    )
    services = Services(settings=settings, registry=ModelRegistry({}, settings.default_model))
    return openapi_json(services) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the document")
    mode.add_argument("--check", action="store_true", help="fail if the committed document is stale")
    args = parser.parse_args(argv)
    document = generate()
    if args.write:
        args.path.parent.mkdir(parents=True, exist_ok=True)
        args.path.write_text(document, encoding="utf-8")
        print(f"wrote {args.path}")
        return 0
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.exists() else ""
        if current != document:
            print(f"{args.path} is stale: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
