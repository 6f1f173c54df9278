#!/usr/bin/env python
"""Multi-label few-shot on a public multi-label set: micro/macro-F1 at 8 / 32 / 128 examples per label.

The set and protocol are :mod:`labelwise.evaluation.multilabel`'s (Reuters-21578 corn/grain from
Debian's ``weka`` package). Per ``k`` and seed, one multi-label classifier learns the sample in one
call exactly as ``POST /v1/train`` with ``multi_label: true`` does (the service's learner, its
zero-shot start and ``num_iters`` 10), and classifies every other story at the default threshold
0.5. Zero-shot multi-label (the calibrated sigmoid, ``"multi_label": true`` on ``/v1/classify``)
is the ``k = 0`` row. For reference, one-vs-rest logistic regression on the same samples
(:func:`labelwise.evaluation.fewshot.offline_logreg` per label, ``C`` by cross-validation on the
sample) is scored alongside. Story embeddings are cached in ``<cache_dir>/fewshot-embeddings``.

    .venv/bin/python scripts/eval_multilabel.py [--model multilingual-e5-small] [--seeds 5]
        [--json results/multilabel-reuters.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from labelwise.classify import multilabel
from labelwise.classify.labels import distinctive_labels
from labelwise.embedding.onnx_embedder import OnnxEmbedder
from labelwise.evaluation import fewshot as fs
from labelwise.evaluation.multilabel import load_reuters_corn_grain, multilabel_f1, sample_examples
from labelwise.learning.pa import seed_for
from labelwise.settings import Settings

SIZES = (8, 32, 128)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="multilingual-e5-small")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    settings = Settings.from_environ()
    data = load_reuters_corn_grain(settings.cache_dir)
    embedder = OnnxEmbedder.from_dir(settings.model_dir / args.model)
    X = fs.cached_embeddings(
        lambda t: embedder.embed(t, "input").vectors,
        list(data.texts),
        settings.cache_dir / "fewshot-embeddings",
        f"{fs.model_cache_key(settings.model_dir / args.model)}-{data.name}-input",
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    L = embedder.embed(distinctive_labels(list(data.classes)), "label").vectors
    gold = data.targets()
    rows = []
    for k in (0, *SIZES):
        scores, baseline, taken = [], [], {}
        for seed in range(args.seeds):
            train, test, taken = sample_examples(data, max(k, 1), seed)
            if k == 0:
                test = list(range(len(data.texts)))
                p = multilabel.zero_shot_probabilities(X[test], L, multilabel.calibration_for(args.model))
            else:
                learner = multilabel.new_learner(X.shape[1], args.model)
                learner.add_labels(list(data.classes), L)
                targets = [sorted(data.label_sets[i]) for i in train]
                learner.partial_fit(
                    X[train], targets, seed=seed_for(f"{data.name}-{k}-{seed}", 1), num_iters=10
                )
                p = learner.predict_proba(X[test])
                columns = [
                    fs.offline_logreg(X[train], gold[train, j].astype(np.int64), X[test], 2)[:, 1]
                    for j in range(len(data.classes))
                ]
                baseline.append(multilabel_f1(np.stack(columns, axis=1) >= 0.5, gold[test]))
            scores.append(multilabel_f1(p >= multilabel.DEFAULT_THRESHOLD, gold[test]))
            if k == 0:
                break
        row = {
            "k": k,
            "taken": taken if k else {},
            "micro_f1": float(np.mean([s.micro for s in scores])),
            "micro_f1_sd": float(np.std([s.micro for s in scores])),
            "macro_f1": float(np.mean([s.macro for s in scores])),
            "macro_f1_sd": float(np.std([s.macro for s in scores])),
            "seeds": len(scores),
        }
        if baseline:
            row["logreg_micro_f1"] = float(np.mean([s.micro for s in baseline]))
            row["logreg_macro_f1"] = float(np.mean([s.macro for s in baseline]))
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        report = {"dataset": data.source, "stories": len(data.texts), "model": args.model, "rows": rows}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
