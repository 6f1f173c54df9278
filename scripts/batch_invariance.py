#!/usr/bin/env python
"""How much a text's zero-shot answer depends on its batch-mates (issue 11, section 2).

320 UCI yelp sentences, zero-shot against ``negative`` / ``positive`` with the model's temperature:
each scored alone, and as one of a call of 33 (32 consecutive sentences and one more), with
``--windows-per-call`` windows per onnxruntime call (0: the model's own ``ModelManifest.batch_size``).
Prints the flipped answers and the largest score difference per model.

    python scripts/batch_invariance.py [--windows-per-call 8] [--models e5,minilm names]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from labelwise.classify.scoring import cosine_similarity, softmax
from labelwise.embedding.onnx_embedder import OnnxEmbedder
from labelwise.evaluation import datasets
from labelwise.settings import Settings

N_TEXTS = 320
GROUP = 32


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="multilingual-e5-small,all-minilm-l6-v2")
    ap.add_argument("--windows-per-call", type=int, default=0)
    args = ap.parse_args(argv)
    settings = Settings.from_environ()
    texts = list(datasets.load("sentiment-yelp", settings.cache_dir, 1000).texts)[:N_TEXTS]
    for name in args.models.split(","):
        emb = OnnxEmbedder.from_dir(
            settings.model_dir / name, intra_op_threads=1, batch_size=args.windows_per_call or None
        )
        labels = emb.embed(["negative", "positive"], "label").vectors
        flips, worst = 0, 0.0
        for start in range(0, N_TEXTS, GROUP):
            group = texts[start : start + GROUP]
            extra = texts[(start + GROUP) % N_TEXTS]
            together = emb.embed([*group, extra], "input").vectors[:GROUP]
            alone = np.stack([emb.embed([t], "input").vectors[0] for t in group])
            P = softmax(cosine_similarity(alone, labels), emb.manifest.temperature)
            Q = softmax(cosine_similarity(together, labels), emb.manifest.temperature)
            flips += int((P.argmax(axis=1) != Q.argmax(axis=1)).sum())
            worst = max(worst, float(np.abs(P - Q).max()))
        per_call = args.windows_per_call or emb.manifest.batch_size
        print(f"{name} ({per_call} per call): {flips} of {N_TEXTS} flipped; largest score change {worst:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
