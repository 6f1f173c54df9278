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

import os
import time
from typing import Any

from bench_child import measure, parser


def main() -> int:
    ap = parser("sentence-transformers baseline for scripts/bench.py")
    ap.add_argument("--model-dir", required=True)
    args = ap.parse_args()
    t0 = args.t0 if args.t0 is not None else time.time()

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    model = SentenceTransformer(args.model_dir, device="cpu")

    def embed(texts: list[str]) -> Any:
        with torch.inference_mode():
            return model.encode(texts, batch_size=args.batch, show_progress_bar=False)

    return measure(
        embed,
        args,
        t0,
        engine="sentence-transformers",
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
    )


if __name__ == "__main__":
    raise SystemExit(main())
