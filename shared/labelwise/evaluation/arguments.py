"""Command-line options the evaluation and benchmark scripts share."""

from __future__ import annotations

import argparse
from pathlib import Path

from labelwise.settings import Settings

#: The bundled image model (docs/images.md).
IMAGE_MODEL = "efficientnet-lite0"


def image_model_parser(description: str | None, settings: Settings) -> argparse.ArgumentParser:
    """A parser with ``--model-dir`` and ``--cache-dir`` (default: ``settings``') and ``--model``
    (default: the bundled image model); ``description`` is shown as written (a module docstring)."""
    ap = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model-dir", type=Path, default=settings.model_dir)
    ap.add_argument("--cache-dir", type=Path, default=settings.cache_dir)
    ap.add_argument("--model", default=IMAGE_MODEL)
    return ap
