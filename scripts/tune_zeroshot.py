"""Zero-shot label-wording study (issue 11, section 2): ``--group dev`` to choose, ``--group test`` to report.

For each development set (SMS spam, UCI sentiment imdb/yelp/amazon, ChatterBot topics in seven
languages) and each wording of its labels (the bare word ``x``, ``"x review"``, ``"x sentiment"``,
``"This text is x."`` and a one-sentence description written here, before looking at any score),
reports zero-shot macro-F1 under several label-scoring methods, and the spread (best - worst
wording) per set. Also scores Jina's fact-vs-opinion example (issue 11, section 4).

Settings are chosen on the development group only. ``--group test`` scores the test group
(docs/evaluation.md) with the shipped method, for reporting: each test set's bare words and
descriptions are the ones its loader fixed (``LabelledSet.verbalizer`` / ``descriptions``) when the
set was added, before any score.

    PYTHONPATH=shared .venv/bin/python scripts/tune_zeroshot.py [--group dev|test]
        [--model multilingual-e5-small] [--methods base,shipped,...] [--max N]
        [--out results/zeroshot-wording.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from labelwise.classify import zeroshot as zs
from labelwise.classify.labels import distinctive_labels
from labelwise.classify.scoring import cosine_similarity
from labelwise.embedding.onnx_embedder import OnnxEmbedder
from labelwise.evaluation import datasets
from labelwise.evaluation import fewshot as fs
from labelwise.evaluation.calibration import fit_temperature
from labelwise.evaluation.examples import JINA_GOLD, JINA_LABELS, JINA_SENTENCES
from labelwise.evaluation.metrics import macro_f1
from labelwise.settings import Settings

FloatArray = npt.NDArray[np.float32]

#: The bare word per class (the sets' a-priori verbalisers).
BARE: dict[str, dict[str, str]] = {
    "sms-spam": dict(datasets.SPAM_VERBALIZER),
    "sentiment": dict(datasets.SENTIMENT_VERBALIZER),
    "chatterbot-topics": {t: t for t in datasets.CHATTERBOT_TOPICS},
}

#: One-sentence descriptions, written for this study before any score was seen.
DESCRIPTIONS: dict[str, dict[str, str]] = {
    "sms-spam": {
        "ham": "A normal personal message between friends, family or colleagues.",
        "spam": "An unsolicited advertisement, prize offer or scam sent to many people.",
    },
    "sentiment": {
        "negative": "The writer is unhappy with it and criticises it.",
        "positive": "The writer is happy with it and praises it.",
    },
    "chatterbot-topics": {
        "food": "A conversation about food, cooking, eating or drinking.",
        "greetings": "People greeting each other, saying hello or asking how someone is.",
        "history": "A conversation about historical events, people and eras of the past.",
        "money": "A conversation about money, prices, banks, paying or earning.",
        "movies": "A conversation about films, actors and cinema.",
        "science": "A conversation about science, physics, chemistry or biology.",
        "sports": "A conversation about sports, games, teams and athletes.",
        "politics": "A conversation about politics, governments, elections and politicians.",
    },
}

WORDINGS: dict[str, Callable[[str], str]] = {
    "x": lambda x: x,
    "x review": lambda x: f"{x} review",
    "x sentiment": lambda x: f"{x} sentiment",
    "This text is x.": lambda x: f"This text is {x}.",
}


def log(msg: str) -> None:
    print(f"[tune_zeroshot] {msg}", file=sys.stderr, flush=True)


def family(name: str) -> str:
    return "sentiment" if name.startswith("sentiment") else name


def panel(ds: datasets.LabelledSet) -> dict[str, list[str]]:
    """Wording name -> label texts in class order (development sets: the tables above; others:
    the set's own verbaliser and descriptions)."""
    bare = BARE.get(family(ds.name), dict(ds.verbalizer))
    descriptions = DESCRIPTIONS.get(family(ds.name), dict(ds.descriptions))
    out = {w: [f(bare[c]) for c in ds.classes] for w, f in WORDINGS.items()}
    out["description"] = [descriptions[c] for c in ds.classes]
    return out


class LabelScorer:
    """Zero-shot label scoring over one embedder, by ``method``:

    * ``base``: cosine to the embedding of each label text as sent;
    * ``shipped``: what ``/v1/classify`` does (``labelwise.classify.zeroshot``: distinctive parts);
    * ``parts``: distinctive parts, a label with commas scored against the normalised mean of its
      comma-separated parts' embeddings (a multi-prototype label; tried, not shipped);
    * ``<method>+null=<text>``: minus each label's cosine to the embedding of the content-free
      input ``<text>`` (contextual calibration, Zhao et al., 2021; tried, not shipped).
    """

    def __init__(self, embedder: OnnxEmbedder, method: str) -> None:
        self.embedder = embedder
        self.method, sep, null = method.partition("+null=")
        self.null: str | None = null if sep else None
        if self.method not in ("base", "shipped", "parts"):
            raise ValueError(f"unknown method {method!r}")
        self.cache = zs.LabelEmbeddingCache()

    def _vectors(self, labels: Sequence[str]) -> FloatArray:
        if self.method == "base":
            return self.embedder.embed(list(labels), role="label").vectors
        if self.method == "shipped":
            return zs.zeroshot_label_vectors(self.cache, self.embedder, labels)[0]
        rows = []
        for label in distinctive_labels(labels):
            parts = [p.strip() for p in label.split(",") if p.strip()] or [label]
            v = self.embedder.embed(parts, role="label").vectors.mean(axis=0)
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows).astype(np.float32)

    def logits(self, X: FloatArray, labels: Sequence[str]) -> FloatArray:
        L = self._vectors(labels)
        S = cosine_similarity(X, L)
        if self.null is not None:
            S = S - cosine_similarity(self.embedder.embed([self.null], "input").vectors, L)
        return S


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="multilingual-e5-small")
    parser.add_argument("--methods", default="base,shipped")
    parser.add_argument("--group", choices=tuple(datasets.GROUPS), default="dev")
    parser.add_argument(
        "--max", type=int, default=3000, help="texts per set (stratified subsample; as eval_fewshot)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    settings = Settings.from_environ()
    model_dir = settings.model_dir / args.model
    embedder = OnnxEmbedder.from_dir(model_dir, intra_op_threads=args.threads)
    key = fs.model_cache_key(model_dir)
    cache_dir = settings.cache_dir / "fewshot-embeddings"

    sets = [datasets.load(n, settings.cache_dir, args.max) for n in datasets.GROUPS[args.group]]
    inputs: dict[str, FloatArray] = {}
    for ds in sets:
        inputs[ds.name] = fs.cached_embeddings(
            lambda t: embedder.embed(t, "input").vectors,
            list(ds.texts),
            cache_dir,
            f"{key}-{ds.name}-input",
            log=log,
        )
    jina_X = embedder.embed(list(JINA_SENTENCES), "input").vectors

    rows: list[dict[str, Any]] = []
    for method in args.methods.split(","):
        scorer = LabelScorer(embedder, method)
        t0 = time.perf_counter()
        calibration: list[tuple[FloatArray, Any]] = []
        for ds in sets:
            X, y = inputs[ds.name], ds.y
            f1s: dict[str, float] = {}
            for wording, labels in panel(ds).items():
                S = scorer.logits(X, labels)
                f1s[wording] = macro_f1(y, S.argmax(axis=1))
                calibration.append((S, y))
            rows.append({"method": method, "set": ds.name, "f1": f1s})
        S = scorer.logits(jina_X, JINA_LABELS)
        jina = int((S.argmax(axis=1) == np.array(JINA_GOLD)).sum())
        fit = fit_temperature(calibration)
        rows.append(
            {
                "method": method,
                "set": "jina-fact-opinion",
                "correct": jina,
                "predictions": [int(p) for p in S.argmax(axis=1)],
                "nll_temperature": fit.temperature,
                "seconds": time.perf_counter() - t0,
            }
        )
        log(f"{method}: done in {time.perf_counter() - t0:.1f}s")

    print(markdown(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        manifest = json.loads((model_dir / "manifest.json").read_text())
        args.out.write_text(
            json.dumps(
                {
                    "model": args.model,
                    "model_fingerprint": manifest.get("files", {}),
                    "git_revision": fs.git_revision(),
                    "group": args.group,
                    "max_per_set": args.max,
                    "rows": rows,
                },
                indent=1,
            )
            + "\n"
        )
    return 0


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    wordings = [*WORDINGS, "description"]
    lines = [
        "| method | set | " + " | ".join(wordings) + " | worst | best - worst |",
        "|---|---|" + "---|" * (len(wordings) + 2),
    ]
    for r in rows:
        if "f1" in r:
            v = [r["f1"][w] for w in wordings]
            lines.append(
                f"| {r['method']} | {r['set']} | "
                + " | ".join(f"{x:.2f}" for x in v)
                + f" | {min(v):.2f} | {max(v) - min(v):.2f} |"
            )
        else:
            lines.append(
                f"| {r['method']} | Jina fact/opinion: {r['correct']}/8 {r['predictions']} "
                f"(NLL temperature {r['nll_temperature']:.4f}) |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
