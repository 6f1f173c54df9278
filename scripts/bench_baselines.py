#!/usr/bin/env python
"""sentence-transformers baseline for ``scripts/bench.py``; runs in ``.venv-bench`` (PyTorch CPU).

PyTorch never runs in labelwise; this file is only executed by the benchmark, as a fresh
subprocess with the bench venv's interpreter, and prints one JSON object on stdout:

    .venv-bench/bin/python scripts/bench_baselines.py --model-dir DIR --texts FILE --threads 1 --t0 T

``cold_start_s`` is wall time from ``--t0`` (the parent's ``time.time()`` just before it started this
process) to the end of the first ``encode`` (interpreter start, imports, model load, tokenizer,
one sentence). ``texts_per_s`` is the best of ``--repeats`` passes over the texts in chunks of
``--batch`` (each chunk one ``encode`` call with ``batch_size=--batch``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--texts", required=True, help="JSON list of strings")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--t0", type=float, default=None)
    ap.add_argument("--cold-only", action="store_true")
    args = ap.parse_args()
    t0 = args.t0 if args.t0 is not None else time.time()

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    model = SentenceTransformer(args.model_dir, device="cpu")
    model.encode(["hello world"], batch_size=1, show_progress_bar=False)
    cold = time.time() - t0
    if args.cold_only:
        json.dump({"cold_start_s": cold}, sys.stdout)
        return 0

    with open(args.texts, encoding="utf-8") as fh:
        texts: list[str] = json.load(fh)
    chunks = [texts[i : i + args.batch] for i in range(0, len(texts), args.batch)]
    model.encode(chunks[0], batch_size=args.batch, show_progress_bar=False)  # warm-up
    best = best_cpu = float("inf")
    with torch.inference_mode():
        for _ in range(args.repeats):
            t, c = time.perf_counter(), time.process_time()
            for chunk in chunks:
                model.encode(chunk, batch_size=args.batch, show_progress_bar=False)
            best = min(best, time.perf_counter() - t)
            best_cpu = min(best_cpu, time.process_time() - c)
    out = {
        "engine": "sentence-transformers",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cold_start_s": cold,
        "texts_per_s": len(texts) / best,
        "seconds": best,
        "texts_per_cpu_s": len(texts) / best_cpu,
        "cpu_seconds": best_cpu,
        "n": len(texts),
    }
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
