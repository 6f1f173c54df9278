"""What both benchmark children share (``bench_worker.py``: labelwise; ``bench_baselines.py``:
sentence-transformers, in its own venv): their arguments and the measurement itself. Standard
library only, so a child's cold start pays for nothing else."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any


def parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--texts", required=True, help="JSON list of strings")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--t0", type=float, default=None, help="parent's time.time() just before the spawn")
    ap.add_argument("--cold-only", action="store_true")
    return ap


def measure(embed: Callable[[list[str]], Any], args: argparse.Namespace, t0: float, **extra: Any) -> int:
    """Embed one sentence (the cold start ends there), then, unless ``--cold-only``, the best of
    ``--repeats`` passes over the texts in chunks of ``--batch``; print one JSON object."""
    embed(["hello world"])
    out: dict[str, Any] = {"cold_start_s": time.time() - t0, **extra}
    if not args.cold_only:
        with open(args.texts, encoding="utf-8") as fh:
            texts: list[str] = json.load(fh)
        chunks = [texts[i : i + args.batch] for i in range(0, len(texts), args.batch)]
        embed(chunks[0])  # warm-up
        best = best_cpu = float("inf")
        for _ in range(args.repeats):
            t, c = time.perf_counter(), time.process_time()
            for chunk in chunks:
                embed(chunk)
            best = min(best, time.perf_counter() - t)
            best_cpu = min(best_cpu, time.process_time() - c)
        out.update(
            texts_per_s=len(texts) / best,
            seconds=best,
            n=len(texts),
            texts_per_cpu_s=len(texts) / best_cpu,
            cpu_seconds=best_cpu,
        )
    json.dump(out, sys.stdout)
    return 0
