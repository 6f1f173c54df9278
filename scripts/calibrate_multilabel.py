#!/usr/bin/env python
"""Fit the zero-shot multi-label sigmoid ``sigmoid((cos - b) / T)`` of each model on the
development group (``labelwise.classify.multilabel.CALIBRATIONS`` holds the result).

Every (text, label) pair of each development set is a binary example, positive when the label is
the text's gold class; labels are embedded by their distinctive part, as ``/v1/classify`` does.
Input embeddings are cached (``<cache_dir>/fewshot-embeddings``, shared with eval_fewshot.py).

    .venv/bin/python scripts/calibrate_multilabel.py [--models multilingual-e5-small,all-minilm-l6-v2]
        [--max-texts 3000]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from labelwise.classify.labels import distinctive_labels
from labelwise.classify.scoring import cosine_similarity
from labelwise.embedding.onnx_embedder import OnnxEmbedder
from labelwise.evaluation import datasets
from labelwise.evaluation import fewshot as fs
from labelwise.evaluation.multilabel import fit_sigmoid
from labelwise.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="multilingual-e5-small,all-minilm-l6-v2")
    parser.add_argument("--max-texts", type=int, default=3000, help="texts per set (as eval_fewshot.py)")
    args = parser.parse_args(argv)
    settings = Settings.from_environ()
    sets = [datasets.load(name, settings.cache_dir, args.max_texts) for name in datasets.DEV_DATASETS]
    out = {}
    for model in args.models.split(","):
        embedder = OnnxEmbedder.from_dir(settings.model_dir / model)
        key = fs.model_cache_key(settings.model_dir / model)
        sims, targets = [], []
        for ds in sets:
            X = fs.cached_embeddings(
                lambda t: embedder.embed(t, "input").vectors,  # noqa: B023 (used at once)
                list(ds.texts),
                settings.cache_dir / "fewshot-embeddings",
                f"{key}-{ds.name.split('/')[0]}-input",
                log=lambda m: print(m, file=sys.stderr, flush=True),
            )
            L = embedder.embed(distinctive_labels(ds.label_texts), "label").vectors
            sims.append(cosine_similarity(X, L))
            targets.append(np.eye(len(ds.classes), dtype=bool)[ds.y])
        bias, temperature = fit_sigmoid(sims, targets)
        out[model] = {"bias": round(bias, 4), "temperature": round(temperature, 4)}
        print(json.dumps({model: out[model]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
