"""What every model build shares: reuse a model built by the same recipe, else build it in a
stage directory beside the final one and rename it into place (a failed build leaves the last
good model untouched)."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from labelwise.embedding.manifest import MANIFEST_FILE, ModelManifest


def reuse_if_current(
    name: str,
    final: Path,
    recipe_hash: str,
    required: tuple[Path, ...],
    check: Callable[[], dict[str, Any]] | None,
) -> dict[str, Any] | None:
    """The build result of a skipped build when ``final`` holds a model built by ``recipe_hash``
    and every ``required`` file exists (after ``check``, when given: its figures are the
    ``parity`` of the result), else None: the model must be built."""
    if not (final / MANIFEST_FILE).exists():
        return None
    old = ModelManifest.load(final)
    if old.recipe.get("hash") != recipe_hash or not all(path.exists() for path in required):
        return None
    print(f"[modelbuild] {name}: up to date (recipe {recipe_hash[:12]})", flush=True)
    result: dict[str, Any] = {"model": name, "skipped": True}
    if check is not None:
        result["parity"] = check()
    return result


@contextlib.contextmanager
def staged(out: Path, name: str) -> Iterator[Path]:
    """A fresh, empty ``out/.<name>.building``; when the block completes it replaces ``out/<name>``."""
    stage = out / f".{name}.building"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    yield stage
    final = out / name
    shutil.rmtree(final, ignore_errors=True)
    stage.rename(final)


def report_built(
    name: str, final: Path, timings: dict[str, float], sizes: dict[str, float], figures: dict[str, Any]
) -> dict[str, Any]:
    """Print what was built (timings, sizes) and return the build result."""
    print(
        f"[modelbuild] {name}: built in {final} "
        f"{json.dumps({k: round(v, 1) for k, v in timings.items()})} {json.dumps(sizes)}",
        flush=True,
    )
    return {"model": name, "skipped": False, "timings": timings, "sizes": sizes, "parity": figures}
