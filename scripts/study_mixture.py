#!/usr/bin/env python
"""Study of the few-shot mixture's settings on the development group: PA's last against its averaged
weights, the zero-shot expert at one against three temperatures, and the exponential weights'
learning rate with PA's softmax temperature (issue 11; docs/fewshot.md, "What was tried").

For each development set, size k and seed, the product's learner is trained in-process exactly as
``POST /v1/train`` trains it (:func:`labelwise.evaluation.fewshot.replay_calls`), once with the k
examples per label in one call and once with the same examples shuffled over three calls, for each
variant of the module settings in :data:`VARIANTS` (names of :mod:`labelwise.learning.mixture`
constants). Reported: the one-call classifier's macro-F1, its worst margin against the issue's
small-size goal (few-shot >= max(zero-shot, logistic regression) - 0.02 at k <= 32) and against its
large-size goal (few-shot >= logistic regression - 0.01 at k = 128), and the share
of test inputs whose top label is the same in both classifiers (order agreement).

Only the development group is read: this is where the variants are chosen.

    python scripts/study_mixture.py [--sizes 4,8,32,128] [--seeds 3] [--variants 3,7]
        [--out results/mixture-dev.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from labelwise.embedding.onnx_embedder import OnnxEmbedder
from labelwise.evaluation import fewshot as fs
from labelwise.evaluation.metrics import macro_f1
from labelwise.learning import mixture
from labelwise.settings import Settings

ORDER_CALLS = 3
#: The experts of the releases before Bayesian ridge: variants 1-8 ran with them.
PLAIN_RIDGE = {
    "RIDGE_LAMBDAS": (0.1, 1.0, 10.0),
    "BAYES_RIDGE_TEMPERATURES": (),
    "ZERO_SHOT_BOOST": 0.0,
    "LABEL_RIDGE_LAMBDAS": (),
    "PA_TEMPERATURE": 1.0,
}
#: The candidate of variants 10-14: Bayesian ridge at two temperatures instead of plain ridge.
BAYES = {
    "RIDGE_LAMBDAS": (),
    "BAYES_RIDGE_TEMPERATURES": (0.1, 0.3),
    "ZERO_SHOT_BOOST": 0.0,
    "LABEL_RIDGE_LAMBDAS": (),
    "PA_TEMPERATURE": 1.0,
}
#: Variants 16-19: today's experts with the zero-shot boost (strength, kappa).
BOOSTED = {
    "RIDGE_LAMBDAS": (0.1, 1.0, 10.0),
    "BAYES_RIDGE_TEMPERATURES": (),
    "LABEL_RIDGE_LAMBDAS": (),
    "PA_TEMPERATURE": 1.0,
}
#: Variants 22-25: a ridge on the zero-shot logits, its prior weight times the zero-shot mass.
GATED = {**BOOSTED, "LABEL_RIDGE_LAMBDAS": (1.0,), "LABEL_RIDGE_GATED": True, "LABEL_RIDGE_KAPPA": 0.0}
#: Variants 26-29: the settings of variant 19 with PA's vote softened or its steps smaller (PA is the one
#: order-dependent expert left: it alone differs between one call and three).
BOOST_3_4 = {**BOOSTED, "ZERO_SHOT_BOOST": 3.0, "ZERO_SHOT_BOOST_KAPPA": 4.0, "PA_C": 0.1}
PA_T2 = {**BOOST_3_4, "PA_TEMPERATURE": 2.0}
#: (name, settings of :mod:`labelwise.learning.mixture`); variant 26 is what ships (docs/fewshot.md).
#: Every variant names PA's temperature: its default moved from 1 to 2 after variant 29. Variants
#: 30-33: class means with a stronger prior towards the label embedding (an expert near zero-shot at
#: 4 examples per label that still learns), added to or instead of alpha = 1.
VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "PA last weights, zero-shot x1",
        {
            **PLAIN_RIDGE,
            "PA_AVERAGE": False,
            "ZERO_SHOT_TEMPERATURE_MULTIPLES": (1.0,),
            "LEARNING_RATE": 0.02,
            "PA_TEMPERATURE": 0.25,
        },
    ),
    (
        "PA averaged, zero-shot x1",
        {
            **PLAIN_RIDGE,
            "PA_AVERAGE": True,
            "ZERO_SHOT_TEMPERATURE_MULTIPLES": (1.0,),
            "LEARNING_RATE": 0.02,
            "PA_TEMPERATURE": 0.25,
        },
    ),
    (
        "PA averaged, zero-shot x1/2/4 (eta 0.02, PA T 0.25)",
        {
            **PLAIN_RIDGE,
            "PA_AVERAGE": True,
            "ZERO_SHOT_TEMPERATURE_MULTIPLES": (1.0, 2.0, 4.0),
            "LEARNING_RATE": 0.02,
            "PA_TEMPERATURE": 0.25,
        },
    ),
    ("eta 0.01, PA T 0.5", {**PLAIN_RIDGE, "LEARNING_RATE": 0.01, "PA_TEMPERATURE": 0.5}),
    ("eta 0.005, PA T 0.5", {**PLAIN_RIDGE, "LEARNING_RATE": 0.005, "PA_TEMPERATURE": 0.5}),
    ("eta 0.005, PA T 1", {**PLAIN_RIDGE, "LEARNING_RATE": 0.005, "PA_TEMPERATURE": 1.0}),
    ("eta 0.0025, PA T 1", {**PLAIN_RIDGE, "LEARNING_RATE": 0.0025, "PA_TEMPERATURE": 1.0}),
    ("eta 0, PA T 1", {**PLAIN_RIDGE, "LEARNING_RATE": 0.0, "PA_TEMPERATURE": 1.0}),
    (
        "six plain ridge regressions, no zero-shot boost (previous release)",
        {**PLAIN_RIDGE, "LEARNING_RATE": 0.0025, "PA_TEMPERATURE": 1.0},
    ),
    ("Bayesian ridge, penalty 0, weight 3", {**BAYES, "BAYES_RIDGE_ZERO_SHOT_PENALTY": 0.0}),
    ("Bayesian ridge, penalty 2, weight 3", {**BAYES, "BAYES_RIDGE_ZERO_SHOT_PENALTY": 2.0}),
    ("Bayesian ridge, penalty 4, weight 1", {**BAYES, "BAYES_RIDGE_WEIGHT": 1.0}),
    ("Bayesian ridge, penalty 6, weight 3", {**BAYES, "BAYES_RIDGE_ZERO_SHOT_PENALTY": 6.0}),
    (
        "six plain ridge and Bayesian ridge (penalty 4, weight 1)",
        {
            "RIDGE_LAMBDAS": (0.1, 1.0, 10.0),
            "BAYES_RIDGE_TEMPERATURES": (0.1, 0.3),
            "BAYES_RIDGE_WEIGHT": 1.0,
            "ZERO_SHOT_BOOST": 0.0,
            "PA_TEMPERATURE": 1.0,
        },
    ),
    (
        "Bayesian ridge, penalty 4, weight 3 (the candidate)",
        {**BAYES, "BAYES_RIDGE_ZERO_SHOT_PENALTY": 4.0, "BAYES_RIDGE_WEIGHT": 3.0},
    ),
    ("zero-shot boost 1, kappa 16", {**BOOSTED, "ZERO_SHOT_BOOST": 1.0, "ZERO_SHOT_BOOST_KAPPA": 16.0}),
    ("zero-shot boost 3, kappa 16", {**BOOSTED, "ZERO_SHOT_BOOST": 3.0, "ZERO_SHOT_BOOST_KAPPA": 16.0}),
    ("zero-shot boost 9, kappa 4", {**BOOSTED, "ZERO_SHOT_BOOST": 9.0, "ZERO_SHOT_BOOST_KAPPA": 4.0}),
    (
        "zero-shot boost 3, kappa 4 (shipped until PA T 2)",
        {
            **BOOSTED,
            "ZERO_SHOT_BOOST": 3.0,
            "ZERO_SHOT_BOOST_KAPPA": 4.0,
            "BAYES_RIDGE_ZERO_SHOT_PENALTY": 4.0,
            "LABEL_RIDGE_LAMBDAS": (),
        },
    ),
    (
        "shipped + ridge on the zero-shot logits (lambda 1, weight 1)",
        {**BOOSTED, "LABEL_RIDGE_LAMBDAS": (1.0,), "LABEL_RIDGE_WEIGHT": 1.0},
    ),
    (
        "shipped + ridge on the zero-shot logits (lambda 1, weight 3)",
        {**BOOSTED, "LABEL_RIDGE_LAMBDAS": (1.0,), "LABEL_RIDGE_WEIGHT": 3.0},
    ),
    (
        "shipped + ridge on the zero-shot logits gated by the zero-shot mass (lambda 1, weight 1)",
        {**GATED, "LABEL_RIDGE_WEIGHT": 1.0},
    ),
    (
        "shipped + ridge on the zero-shot logits gated by the zero-shot mass (lambda 1, weight 3)",
        {**GATED, "LABEL_RIDGE_WEIGHT": 3.0},
    ),
    (
        "shipped + ridge on the zero-shot logits, gated, fading (kappa 4, weight 2)",
        {**GATED, "LABEL_RIDGE_WEIGHT": 2.0, "LABEL_RIDGE_KAPPA": 4.0},
    ),
    (
        "shipped + ridge on the zero-shot logits, gated, fading (kappa 4, weight 4)",
        {**GATED, "LABEL_RIDGE_WEIGHT": 4.0, "LABEL_RIDGE_KAPPA": 4.0},
    ),
    ("shipped, PA's vote softer (T 2)", {**BOOST_3_4, "PA_TEMPERATURE": 2.0}),
    ("shipped, PA's vote softer (T 4)", {**BOOST_3_4, "PA_TEMPERATURE": 4.0}),
    ("shipped, PA's steps smaller (C 0.03)", {**BOOST_3_4, "PA_C": 0.03}),
    ("shipped, PA's vote flat (T 1000: PA's weight, no say)", {**BOOST_3_4, "PA_TEMPERATURE": 1000.0}),
    ("PA T 2 (shipped)", {**PA_T2, "CLASS_MEAN_ALPHAS": (1.0,)}),
    ("PA T 2, class means alpha 1 and 4", {**PA_T2, "CLASS_MEAN_ALPHAS": (1.0, 4.0)}),
    ("PA T 2, class means alpha 1 and 16", {**PA_T2, "CLASS_MEAN_ALPHAS": (1.0, 16.0)}),
    ("PA T 2, class means alpha 4", {**PA_T2, "CLASS_MEAN_ALPHAS": (4.0,)}),
)


def log(msg: str) -> None:
    print(f"[study-mixture] {msg}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--model", default="multilingual-e5-small")
    ap.add_argument("--sizes", default="4,8,32,128")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--test-max", type=int, default=1000)
    ap.add_argument("--variants", default=None, help="comma-separated numbers (1-based) of VARIANTS to run")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    chosen = [VARIANTS[int(i) - 1] for i in args.variants.split(",")] if args.variants else list(VARIANTS)
    base = {name: getattr(mixture, name) for _, settings_ in VARIANTS for name in settings_}
    sizes = [int(k) for k in args.sizes.split(",")]
    settings = Settings.from_environ()
    model_dir = settings.model_dir / args.model
    emb = OnnxEmbedder.from_dir(model_dir, intra_op_threads=1)
    key, T = fs.model_cache_key(model_dir), emb.manifest.temperature
    vectors = fs.label_vector_function(emb)
    rows: list[dict[str, Any]] = []
    embed_inputs = lambda t: emb.embed(t, "input").vectors  # noqa: E731
    for name, ds, X in fs.embedded_group("dev", embed_inputs, key, settings.cache_dir, log=log):
        splits = fs.make_splits(ds.labels, test_max=args.test_max)
        cands, ev = splits.train_candidates(True), list(splits.test)
        text_labels = [ds.verbalizer[c] for c in ds.labels]
        classes = [ds.verbalizer[c] for c in ds.classes]
        zs = fs.zero_shot_probabilities(X[ev], vectors(classes), T)
        zs_f1 = macro_f1(ds.y[ev], zs.argmax(1))
        for k in sizes:
            for seed in range(args.seeds):
                idx, _ = fs.sample_per_label(ds.labels, cands, k, seed)
                ys = [text_labels[i] for i in idx]
                calls = fs.split_calls(len(idx), ORDER_CALLS, seed, ys)
                lr = fs.offline_logreg(X[idx], ds.y[idx], X[ev], len(classes))
                lr_f1 = macro_f1(ds.y[ev], lr.argmax(1))
                for variant, overrides in chosen:
                    for setting, value in {**base, **overrides}.items():
                        setattr(mixture, setting, value)
                    one = fs.replay_calls(X[idx], ys, [range(len(idx))], vectors, "study", T)
                    split = fs.replay_calls(X[idx], ys, calls, vectors, "study", T)
                    P1 = fs.learner_probabilities(one, X[ev], classes)
                    P3 = fs.learner_probabilities(split, X[ev], classes)
                    rows.append({
                        "dataset": name, "k": k, "seed": seed, "variant": variant,
                        "macro_f1": macro_f1(ds.y[ev], P1.argmax(1)), "order_agreement": fs.agreement(P1, P3),
                        "zero_shot_f1": zs_f1, "logreg_f1": lr_f1,
                    })  # fmt: skip
            log(f"{name} k={k} done")
    print("| variant | macro-F1 (mean) | worst margin, k <= 32 | worst margin, k = 128 "
          "| order agreement (mean) | lowest (set, k) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    summary = []
    for variant, _ in chosen:
        cells: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for r in rows:
            if r["variant"] == variant:
                cells.setdefault((r["dataset"], r["k"]), []).append(r)

        def mean(rs: list[dict[str, Any]], field: str) -> float:
            return float(np.mean([r[field] for r in rs]))

        margins = [
            mean(rs, "macro_f1") - max(rs[0]["zero_shot_f1"], mean(rs, "logreg_f1")) + 0.02
            for (_, k), rs in cells.items()
            if k <= 32
        ]
        large = [
            mean(rs, "macro_f1") - mean(rs, "logreg_f1") + 0.01 for (_, k), rs in cells.items() if k == 128
        ]
        agree = {c: mean(rs, "order_agreement") for c, rs in cells.items()}
        (low_set, low_k), low = min(agree.items(), key=lambda kv: kv[1])
        f1 = float(np.mean([mean(rs, "macro_f1") for rs in cells.values()]))
        worst_large = min(large) if large else float("nan")
        summary.append({"variant": variant, "macro_f1": f1, "worst_margin": min(margins),
                        "worst_margin_128": worst_large,
                        "order_agreement": float(np.mean(list(agree.values()))), "lowest": low})  # fmt: skip
        print(f"| {variant} | {f1:.4f} | {min(margins):+.3f} | {worst_large:+.3f} | "
              f"{np.mean(list(agree.values())):.3f} | {low:.3f} ({low_set}, k={low_k}) |")  # fmt: skip
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"group": "dev", "git_revision": fs.git_revision(), "model_fingerprint": key,
                       "args": vars(args), "summary": summary, "rows": rows}, f, indent=1)  # fmt: skip
            f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
