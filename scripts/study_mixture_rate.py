#!/usr/bin/env python
"""Study of the few-shot mixture's learning rate (eta of the exponential weights) on the development
group: order robustness and macro-F1 (issue 11; docs/fewshot.md, "What was tried").

For each development set, size k and seed, the product's learner is trained in-process exactly as
``POST /v1/train`` trains it (:func:`labelwise.evaluation.fewshot.replay_product`): once with the
k examples per label in one call, and once with the same examples shuffled over three calls. The
experts' probabilities and cumulative held-out losses are kept, and the mixture is re-weighted for
each ``eta`` (``mixture_weights(losses, learning_rate=eta)``): the share of test inputs whose top
label is the same in both classifiers (order agreement) and the one-call classifier's macro-F1.

Only the development group is read: this is where the rate is chosen.

    python scripts/study_mixture_rate.py [--sizes 4,8,32] [--etas 1,0.5,0.1,0.05,0.02,0] [--seeds 3]
        [--out results/mixture-rate-dev.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from labelwise.embedding.onnx_embedder import OnnxEmbedder
from labelwise.evaluation import fewshot as fs
from labelwise.evaluation.metrics import macro_f1
from labelwise.learning import experts as ex
from labelwise.learning.mixture import MixtureLearner
from labelwise.settings import Settings

ORDER_CALLS = 3


def log(msg: str) -> None:
    print(f"[mixture-rate] {msg}", file=sys.stderr, flush=True)


def zero_shot_log_prior(learner: MixtureLearner, mass: float) -> npt.NDArray[np.float64]:
    """Log prior giving the zero-shot expert ``mass`` and the others equal shares of the rest."""
    is_zs = np.array([e.kind == "zero-shot" for e in learner.experts])
    rest = (1.0 - mass) / max(1, int((~is_zs).sum()))
    return np.log(np.where(is_zs, mass, rest))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="multilingual-e5-small")
    ap.add_argument("--sizes", default="4,8,32")
    ap.add_argument("--etas", default="1,0.5,0.1,0.05,0.02,0")
    ap.add_argument(
        "--zero-shot-priors",
        default="",
        help="prior weights of the zero-shot expert to try (the rest share the remainder equally); "
        "empty: uniform only",
    )
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--test-max", type=int, default=600)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    sizes = [int(k) for k in args.sizes.split(",")]
    etas = [float(e) for e in args.etas.split(",")]
    priors: list[float | None] = [None, *(float(p) for p in args.zero_shot_priors.split(",") if p)]
    settings = Settings.from_environ()
    model_dir = settings.model_dir / args.model
    emb = OnnxEmbedder.from_dir(model_dir, intra_op_threads=args.threads)
    key = fs.model_cache_key(model_dir)
    T = emb.manifest.temperature
    revision = fs.git_revision()
    rows: list[dict[str, Any]] = []
    embed_inputs = lambda t: emb.embed(t, "input").vectors  # noqa: E731
    for name, ds, X in fs.embedded_group("dev", embed_inputs, key, settings.cache_dir, log=log):
        vectors = fs.label_vector_function(emb)

        splits = fs.make_splits(ds.labels, test_max=args.test_max)
        cands, ev = splits.train_candidates(True), list(splits.test)
        text_labels = [ds.verbalizer[c] for c in ds.labels]
        class_of = {ds.verbalizer[c]: i for i, c in enumerate(ds.classes)}
        for k in sizes:
            for seed in range(args.seeds):
                idx, _ = fs.sample_per_label(ds.labels, cands, k, seed)
                ys = [text_labels[i] for i in idx]
                calls = fs.split_calls(len(idx), ORDER_CALLS, seed, ys)
                one = fs.replay_calls(X[idx], ys, [range(len(idx))], vectors, "study", T)
                split = fs.replay_calls(X[idx], ys, calls, vectors, "study", T)
                cols = [split.labels.index(label) for label in one.labels]
                P1 = np.stack(one.expert_proba(X[ev]))
                P3 = np.stack([p[:, cols] for p in split.expert_proba(X[ev])])
                to_class = np.array([class_of[label] for label in one.labels])
                zs_f1 = macro_f1(ds.y[ev], to_class[P1[0].argmax(1)])
                for eta in etas:
                    for prior in priors:
                        lp = None if prior is None else zero_shot_log_prior(one, prior)
                        w1 = ex.mixture_weights(one.losses, lp, learning_rate=eta)
                        w3 = ex.mixture_weights(split.losses, lp, learning_rate=eta)
                        mixed1, mixed3 = np.einsum("e,eij->ij", w1, P1), np.einsum("e,eij->ij", w3, P3)
                        rows.append({
                            "dataset": name, "k": k, "seed": seed, "eta": eta, "zero_shot_prior": prior,
                            "order_agreement": float(np.mean(mixed1.argmax(1) == mixed3.argmax(1))),
                            "macro_f1": macro_f1(ds.y[ev], to_class[mixed1.argmax(1)]),
                            "zero_shot_f1": zs_f1,
                        })  # fmt: skip
            log(f"{name} k={k} done")
    columns = ["eta", "zero-shot prior", "order agreement (mean)", "lowest (set, k)", "macro-F1 (mean)"]
    print("| " + " | ".join([*columns, "worst vs zero-shot, k <= 32"]) + " |")
    print("|---:|---:|---:|---:|---:|---:|")
    summary = []
    for eta in etas:
        for prior in priors:
            mine = [r for r in rows if r["eta"] == eta and r["zero_shot_prior"] == prior]
            cells: dict[tuple[str, int], list[dict[str, Any]]] = {}
            for r in mine:
                cells.setdefault((r["dataset"], r["k"]), []).append(r)
            agree_of = {c: float(np.mean([r["order_agreement"] for r in rs])) for c, rs in cells.items()}
            (low_set, low_k), low = min(agree_of.items(), key=lambda kv: kv[1])
            gaps = [
                np.mean([r["macro_f1"] for r in rs]) - rs[0]["zero_shot_f1"]
                for (_, k), rs in cells.items()
                if k <= 32
            ]
            agree = float(np.mean([r["order_agreement"] for r in mine]))
            f1 = float(np.mean([r["macro_f1"] for r in mine]))
            summary.append({"eta": eta, "zero_shot_prior": prior, "order_agreement": agree, "macro_f1": f1,
                            "worst_vs_zero_shot": float(min(gaps))})  # fmt: skip
            label = "uniform" if prior is None else f"{prior:g}"
            cells_out = [f"{eta:g}", label, f"{agree:.3f}", f"{low:.3f} ({low_set}, k={low_k})", f"{f1:.4f}"]
            print("| " + " | ".join([*cells_out, f"{min(gaps):+.3f}"]) + " |")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"group": "dev", "git_revision": revision, "model_fingerprint": key,
                       "args": vars(args), "summary": summary, "rows": rows}, f, indent=1)  # fmt: skip
            f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
