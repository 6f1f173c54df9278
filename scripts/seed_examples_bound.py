#!/usr/bin/env python
"""How far the built text models are from issue 11's seed examples (section 4), and what no method
on the label side or in the learner could change.

* Jina's fact-vs-opinion request: for each model, the agreement with Jina's published answer of
  zero-shot as shipped, and the *best agreement any per-label offset could give*: a threshold on the
  difference of the two labels' scores, chosen with the answers in hand. Every label-bias correction
  (contextual calibration, a background corpus, priors) moves that threshold and nothing else, so
  this is its ceiling. The same for the comma-separated label scored by its best part.
  The same for the labels written into a few sentence templates (:data:`LABEL_TEMPLATES`), which
  change the direction between the labels and so are not covered by the offset bound.
* Cohere's spam example: the product's learner (trained in-process as ``POST /v1/train`` trains it),
  logistic regression on the same embeddings and zero-shot, for the two inputs.

    python scripts/seed_examples_bound.py [--json results/seed-examples-bound.json]
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
from labelwise.evaluation import examples as ex
from labelwise.evaluation import fewshot as fs
from labelwise.settings import Settings

MODELS = ("multilingual-e5-small", "all-minilm-l6-v2")


def best_threshold_agreement(margin: npt.NDArray[np.float64], gold_is_first: npt.NDArray[np.bool_]) -> int:
    """The most sentences a rule ``first label iff margin > t`` can get right, over every ``t``."""
    cuts = np.concatenate([[-np.inf], np.sort(margin)])
    return int(max(((margin > t) == gold_is_first).sum() for t in cuts))


def unit(v: npt.ArrayLike) -> npt.NDArray[np.float64]:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


#: Label templates tried on Jina's labels (``{}`` is the label text): every one embeds another
#: direction between the two labels, which an offset cannot do. None is shipped.
LABEL_TEMPLATES = (
    "{}",
    "This text is {}.",
    "This sentence is {}.",
    "This is a {}.",
    "This sentence states a {}.",
    "{} statement",
)


def jina_margins(emb: OnnxEmbedder, x: npt.NDArray[np.float64], template: str) -> dict[str, Any]:
    """The difference of the two labels' cosines per sentence, for the whole first label and for its
    best comma-separated part, with both labels written into ``template``."""
    opinion, fact = ex.JINA_LABELS
    parts = [p.strip() for p in opinion.split(",")]
    labels = unit(emb.embed([template.format(t) for t in (opinion, fact, *parts)], "label").vectors)
    cos = x @ labels.T
    return {"whole": cos[:, 0] - cos[:, 1], "best_part": cos[:, 2:].max(axis=1) - cos[:, 1]}


def jina(emb: OnnxEmbedder) -> dict[str, Any]:
    x = unit(emb.embed(list(ex.JINA_SENTENCES), "input").vectors)
    gold_first = np.asarray(ex.JINA_GOLD) == 0

    def agreement(margins: dict[str, Any]) -> dict[str, int]:
        return {
            "as_shipped": int(((margins["whole"] > 0) == gold_first).sum()),
            "best_offset": best_threshold_agreement(margins["whole"], gold_first),
            "best_part": int(((margins["best_part"] > 0) == gold_first).sum()),
            "best_part_best_offset": best_threshold_agreement(margins["best_part"], gold_first),
        }

    templates = {t: agreement(jina_margins(emb, x, t)) for t in LABEL_TEMPLATES}
    return {
        **templates["{}"],
        "of": len(gold_first),
        "templates": templates,
        "best_over_templates": max(max(a.values()) for a in templates.values()),
    }


def cohere(emb: OnnxEmbedder) -> dict[str, Any]:
    texts = [t for t, _ in ex.COHERE_SPAM_EXAMPLES]
    labels = [label for _, label in ex.COHERE_SPAM_EXAMPLES]
    classes = list(dict.fromkeys(ex.COHERE_SPAM_GOLD))
    X = np.asarray(emb.embed(texts, "input").vectors, dtype=np.float32)
    Q = np.asarray(emb.embed(list(ex.COHERE_SPAM_INPUTS), "input").vectors, dtype=np.float32)
    vectors = fs.label_vector_function(emb)
    T = emb.manifest.temperature
    learner = fs.replay_calls(X, labels, [range(len(labels))], vectors, "seed", T)
    y = np.asarray([classes.index(label) for label in labels])

    def answer(P: npt.ArrayLike) -> list[dict[str, Any]]:
        p = np.asarray(P, dtype=np.float64)
        return [
            {"input": text, "gold": gold, "prediction": classes[int(row.argmax())],
             "confidence": round(float(row.max()), 4)}
            for text, gold, row in zip(ex.COHERE_SPAM_INPUTS, ex.COHERE_SPAM_GOLD, p, strict=True)
        ]  # fmt: skip

    return {
        "product": answer(fs.learner_probabilities(learner, Q, classes)),
        "logistic_regression": answer(fs.offline_logreg(X, y, Q, len(classes))),
        "zero_shot": answer(fs.zero_shot_probabilities(Q, vectors(classes), T)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    settings = Settings.from_environ()
    out: dict[str, Any] = {"git_revision": fs.git_revision(), "models": {}}
    for name in MODELS:
        model_dir = settings.model_dir / name
        if not model_dir.is_dir():
            print(f"[seed-bound] {name}: not built, skipped", file=sys.stderr)
            continue
        emb = OnnxEmbedder.from_dir(model_dir)
        out["models"][name] = {
            "model_fingerprint": fs.model_cache_key(model_dir),
            "jina_fact_opinion": jina(emb),
            "cohere_spam": cohere(emb),
        }
        j = out["models"][name]["jina_fact_opinion"]
        print(f"{name}: Jina fact/opinion, agreement with Jina's answer: as shipped {j['as_shipped']}/8, "
              f"best any per-label offset could give {j['best_offset']}/8; best part {j['best_part']}/8 "
              f"(with the best offset {j['best_part_best_offset']}/8); best over {len(LABEL_TEMPLATES)} "
              f"label templates, parts and offsets {j['best_over_templates']}/8")  # fmt: skip
        for expert, rows in out["models"][name]["cohere_spam"].items():
            said = ", ".join(f"{r['input']!r} -> {r['prediction']} {r['confidence']:.3f}" for r in rows)
            print(f"{name}: Cohere spam, {expert}: {said}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
