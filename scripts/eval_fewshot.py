#!/usr/bin/env python
"""Few-shot learning curves of labelwise against zero-shot, a class mean with label prior and
logistic regression, on one dataset group (issue 11, section 3).

Modes (``--mode``):

* ``http`` (default)  the reported numbers: a local server in this process
                      (``labelwise.server.running_server``, temp data dir, auth off, shipped
                      settings but no per-request token cap or time budget); per dataset, size
                      and seed one classifier is created through ``POST /v1/train`` (batches of
                      <= 1,024, the API's default ``num_iters``) and
                      the test split is classified by ``classifier_id``; zero-shot goes through
                      ``POST /v1/classify`` with ``labels``. The baselines are fitted in-process on
                      the same embeddings and the same samples.
* ``sim``             the same protocol in-process (the service's learner replayed exactly by
                      :func:`labelwise.evaluation.fewshot.replay_product`): fast, for development.

Order robustness: every (size, seed) also trains a second classifier with the same examples
shuffled and sent over three ``/v1/train`` calls; the share of test inputs whose top label agrees
with the one-call classifier is reported (goal >= 98%).

Groups (``--group``): ``dev`` (tune on it) or ``test`` (report only; docs/evaluation.md). Result
files carry the model fingerprint (hash of the model files) and the git revision.

Examples::

    python scripts/eval_fewshot.py --group test --quick                      # smoke run (CI)
    python scripts/eval_fewshot.py --group test --json results/fewshot-test.json \
        --plot docs/img/fewshot_curves.png                                  # make eval
    python scripts/eval_fewshot.py --group dev --mode sim                    # development
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from labelwise.evaluation import datasets
from labelwise.evaluation import fewshot as fs
from labelwise.evaluation.datasets import LabelledSet
from labelwise.evaluation.engines import E5, MINILM, MemoEmbedder
from labelwise.evaluation.harness import ApiClient, local_api
from labelwise.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
HTTP_CHUNK = 1024
QUICK_SIZES = (4, 16)
QUICK_SEEDS = 2
QUICK_TEST_MAX = 200


def log(msg: str) -> None:
    print(f"[eval-fewshot] {msg}", file=sys.stderr, flush=True)


# =========================================================================== data + embeddings
@dataclass
class Prepared:
    """One dataset with its embeddings under one model."""

    ds: LabelledSet
    model: str
    X: npt.NDArray[np.float32]  # (n, dim) "input" role
    label_vectors: dict[str, npt.NDArray[np.float32]]  # label text -> "label" role embedding
    splits: fs.Splits
    embedders: Embedders

    def label_vector(self, text: str, embedders: Embedders) -> npt.NDArray[np.float32]:
        """The ``"label"``-role embedding of ``text`` (embedded once, then remembered)."""
        if text not in self.label_vectors:
            self.label_vectors[text] = embedders.get(self.model).embed([text], "label").vectors[0]
        return self.label_vectors[text]

    @property
    def name(self) -> str:
        return self.ds.name

    @property
    def class_texts(self) -> list[str]:
        return self.ds.label_texts

    @property
    def text_labels(self) -> list[str]:
        """Each example's label text (what a user sends as ``label``)."""
        return [self.ds.verbalizer[c] for c in self.ds.labels]


def meaningless(ds: LabelledSet) -> LabelledSet:
    """The same set with labels ``team1``, ``team2``, … (the label text carries no meaning)."""
    verb = {c: f"team{i + 1}" for i, c in enumerate(ds.classes)}
    return replace(ds, name=ds.name + "/teamN", verbalizer=verb, alternatives=())


class Embedders:
    def __init__(self, settings: Settings, threads: int | None) -> None:
        self.settings = settings
        self.threads = threads
        self._cache: dict[str, Any] = {}

    def get(self, model: str) -> Any:
        if model not in self._cache:
            from labelwise.embedding.onnx_embedder import OnnxEmbedder

            self._cache[model] = OnnxEmbedder.from_dir(
                self.settings.model_dir / model, intra_op_threads=self.threads
            )
        return self._cache[model]

    def cache_dir(self) -> Path:
        return self.settings.cache_dir / "fewshot-embeddings"

    def embed(self, model: str, texts: Sequence[str], role: str, name: str) -> npt.NDArray[np.float32]:
        emb = self.get(model)
        key = f"{fs.model_cache_key(self.settings.model_dir / model)}-{name}-{role}"
        return fs.cached_embeddings(
            lambda t: emb.embed(t, role).vectors, list(texts), self.cache_dir(), key, log=log
        )


def prepare(ds: LabelledSet, model: str, embedders: Embedders, test_max: int) -> Prepared:
    base = ds.name.split("/")[0]
    X = embedders.embed(model, ds.texts, "input", base)
    L = embedders.embed(model, ds.label_texts, "label", ds.name.replace("/", "-") + "-labels")
    splits = fs.make_splits(ds.labels, test_max=test_max)
    return Prepared(ds, model, X, dict(zip(ds.label_texts, L, strict=True)), splits, embedders)


#: Texts per dataset (stratified subsample, fixed before any score): the test split takes at most
#: ``TEST_MAX`` of them, training samples come from the rest; 17k Chinese reviews would take hours
#: to embed on 2 cores and add nothing at <= 128 examples per label.
MAX_TEXTS = 3000


def load_sets(
    names: Sequence[str], settings: Settings, max_texts: int | None = MAX_TEXTS
) -> list[LabelledSet]:
    return [datasets.load(n, settings.cache_dir, max_texts) for n in names]


# =========================================================================== backends
class SimBackend:
    """The service's learner in-process, on the cached embeddings."""

    def __init__(self, embedders: Embedders, num_iters: int | None) -> None:
        self.embedders = embedders
        self.num_iters = num_iters or fs.API_NUM_ITERS

    def _label_vectors(self, p: Prepared) -> Any:
        from labelwise.classify.labels import distinctive_labels

        def vectors(labels: Sequence[str]) -> npt.NDArray[np.float32]:
            texts = distinctive_labels(labels)
            return np.stack([p.label_vector(t, self.embedders) for t in texts]).astype(np.float32)

        return vectors

    def zero_shot(self, p: Prepared, ev: Sequence[int]) -> npt.NDArray[np.float64]:
        L = self._label_vectors(p)(p.class_texts)
        T = self.embedders.get(p.model).manifest.temperature
        return np.asarray(fs.zero_shot_probabilities(p.X[list(ev)], L, T), dtype=np.float64)

    def few_shot(self, p: Prepared, calls: Sequence[Sequence[int]], key: str, ev: Sequence[int]) -> Any:
        T = self.embedders.get(p.model).manifest.temperature
        learner = fs.replay_calls(
            p.X, p.text_labels, calls, self._label_vectors(p), key, T, num_iters=self.num_iters,
            batch=HTTP_CHUNK,
        )  # fmt: skip
        return fs.learner_probabilities(learner, p.X[list(ev)], p.class_texts)


class HttpBackend:
    """The real API over HTTP (``/v1/train``, ``/v1/classify``)."""

    def __init__(self, client: ApiClient, num_iters: int | None) -> None:
        self.client = client
        self.num_iters = num_iters

    def zero_shot(self, p: Prepared, ev: Sequence[int]) -> npt.NDArray[np.float64]:
        texts = [p.ds.texts[i] for i in ev]
        return self.client.classify(texts, p.class_texts, model=p.model, labels=p.class_texts)

    def few_shot(self, p: Prepared, calls: Sequence[Sequence[int]], key: str, ev: Sequence[int]) -> Any:
        del key  # the server draws the classifier id (and so the seed) itself
        cid: str | None = None
        for call in calls:
            cid = self.client.train(
                p.model, [p.ds.texts[i] for i in call], [p.text_labels[i] for i in call],
                self.num_iters, classifier_id=cid,
            )  # fmt: skip
        assert cid is not None
        P = self.client.classify([p.ds.texts[i] for i in ev], p.class_texts, classifier_id=cid)
        self.client.delete(cid)
        return P


ORDER_CALLS = 3


def run(
    preps: Sequence[Prepared], backend: Any, sizes: Sequence[int], seeds: int, order: bool = True
) -> list[fs.Result]:
    """Zero-shot, few-shot (one call; and shuffled over three calls), class mean and logistic
    regression on the same samples, for every dataset, size and seed."""
    out: list[fs.Result] = []
    t0 = time.perf_counter()
    for p in preps:
        ev = list(p.splits.test)
        y_ev = p.ds.y[ev]
        n_cls = len(p.ds.classes)
        s = fs.score(backend.zero_shot(p, ev), y_ev, n_cls)
        out.append(fs.Result(p.name, "zero-shot", 0, 0, s.macro_f1, s.ece, s.nll))
        cands = p.splits.train_candidates(True)
        L = SimBackend(p.embedders, None)._label_vectors(p)(p.class_texts)
        T = p.embedders.get(p.model).manifest.temperature
        for k in sizes:
            for seed in range(seeds):
                idx, taken = fs.sample_per_label(p.ds.labels, cands, k, seed)
                key = f"{p.name}:{k}:{seed}"
                P = backend.few_shot(p, [idx], key, ev)
                s = fs.score(P, y_ev, n_cls)
                extra: dict[str, Any] = {}
                if order:
                    parts = fs.split_calls(len(idx), ORDER_CALLS, seed, [p.ds.labels[i] for i in idx])
                    Q = backend.few_shot(p, [[idx[j] for j in part] for part in parts], key, ev)
                    extra["order_agreement"] = fs.agreement(P, Q)
                out.append(fs.Result(p.name, "few-shot", k, seed, s.macro_f1, s.ece, s.nll, taken, extra))
                if order:
                    out.append(fs.Result(p.name, "order-agreement", k, seed, extra["order_agreement"]))
                Xtr, ytr = p.X[idx], p.ds.y[idx]
                s = fs.score(fs.offline_logreg(Xtr, ytr, p.X[ev], n_cls), y_ev, n_cls)
                out.append(fs.Result(p.name, "logreg", k, seed, s.macro_f1, s.ece, s.nll, taken))
                s = fs.score(fs.class_mean_probabilities(Xtr, ytr, p.X[ev], L, 1.0, T), y_ev, n_cls)
                out.append(fs.Result(p.name, "class-mean", k, seed, s.macro_f1, s.ece, s.nll, taken))
            log(f"{p.name} ({p.model}) k={k}: {time.perf_counter() - t0:.0f}s")
    return out


# =========================================================================== reporting
def markdown_table(aggs: Sequence[fs.Aggregate], sizes: Sequence[int]) -> str:
    table = fs.lookup(aggs)
    names = list(dict.fromkeys(a.dataset for a in aggs))
    lines = [
        "| dataset | zero-shot | "
        + " | ".join(f"few-shot k={k}" for k in sizes)
        + f" | logreg k={fs.OFFLINE_SIZE} |",
        "|---|---:|" + "---:|" * (len(sizes) + 1),
    ]
    for n in names:
        zs = table.get((n, "zero-shot", 0))
        cells = [f"{zs.mean:.3f}" if zs else ""]
        for k in sizes:
            a = table.get((n, "few-shot", k))
            cells.append(f"{a.mean:.3f} ± {a.sd:.3f}{'*' if a.capped else ''}" if a else "")
        lr = table.get((n, "logreg", fs.OFFLINE_SIZE))
        cells.append(f"{lr.mean:.3f} ± {lr.sd:.3f}{'*' if lr.capped else ''}" if lr else "")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(aggs: Sequence[fs.Aggregate], sizes: Sequence[int], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = fs.lookup(aggs)
    names = list(dict.fromkeys(a.dataset for a in aggs))
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    for ax, n in zip(axes.flat, names, strict=False):
        for method, style, label in (
            ("few-shot", "o-", "few-shot (API)"),
            ("logreg", "s:", "logistic regression (CV)"),
            ("class-mean", "^:", "class mean + label prior"),
        ):
            ks = [k for k in sizes if (n, method, k) in table]
            if not ks:
                continue
            m = np.array([table[(n, method, k)].mean for k in ks])
            sd = np.array([table[(n, method, k)].sd for k in ks])
            ax.plot(ks, m, style, label=label)
            if method == "few-shot":
                ax.fill_between(ks, m - sd, m + sd, alpha=0.2)
        zs = table.get((n, "zero-shot", 0))
        if zs:
            ax.axhline(zs.mean, color="gray", ls="--", label="zero-shot")
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(sizes))
        ax.set_xticklabels([str(k) for k in sizes])
        ax.set_title(n, fontsize=10)
        ax.set_xlabel("examples per label")
        ax.set_ylabel("macro-F1")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# =========================================================================== main
def memo_embedders(preps: Sequence[Prepared], embedders: Embedders) -> dict[str, MemoEmbedder]:
    """Per model, the server's embedder wrapped so that the cached dataset embeddings are reused."""
    wrapped: dict[str, MemoEmbedder] = {}
    for model in dict.fromkeys(p.model for p in preps):
        seed: dict[tuple[str, str], npt.NDArray[np.float32]] = {}
        for p in preps:
            if p.model == model:
                seed.update({("input", t): v for t, v in zip(p.ds.texts, p.X, strict=True)})
                seed.update({("label", t): v for t, v in p.label_vectors.items()})
        wrapped[model] = MemoEmbedder(embedders.get(model), seed)
    return wrapped


def verdict(checks: Sequence[fs.GoalCheck]) -> str:
    """``met`` / ``NOT met``, or ``not measured`` when the run had no size the goal is about."""
    if not checks:
        return "not measured (no such size in this run)"
    return "met" if all(c.ok for c in checks) else "NOT met"


def summary(aggs: Sequence[fs.Aggregate], group: str) -> tuple[list[str], dict[str, Any]]:
    """Goal lines (each naming the group) and the same as JSON."""
    small, large = fs.check_goals(aggs)
    agree = [a for a in aggs if a.method == "order-agreement"]
    worst = min(agree, key=lambda a: a.mean) if agree else None
    lines = [
        f"[{group} group] few-shot >= max(zero-shot, logreg) - {fs.SMALL_SLACK} at every size <= "
        f"{fs.SMALL_MAX_K}: {verdict(small)}"
    ]
    lines += [
        f"  {c.dataset} k={c.k}: {c.few_shot:.3f} vs {c.reference:.3f} ({c.margin:+.3f})"
        for c in small
        if not c.ok
    ]
    lines.append(
        f"[{group} group] few-shot >= logreg - {fs.LARGE_SLACK} at k={fs.OFFLINE_SIZE}: {verdict(large)}"
    )
    lines += [f"  {c.dataset}: {c.few_shot:.3f} vs {c.reference:.3f} ({c.margin:+.3f})" for c in large]
    if worst is not None:
        ok = all(a.mean >= 0.98 for a in agree)
        lines.append(
            f"[{group} group] order agreement >= 98% (mean over seeds, every set and size): "
            f"{'met' if ok else 'NOT met'}; lowest {worst.mean:.3f} ({worst.dataset} k={worst.k})"
        )
    goals = {"small": fs.to_jsonable(small), "large": fs.to_jsonable(large)}
    return lines, goals


def markdown_curves(aggs: Sequence[fs.Aggregate], sizes: Sequence[int]) -> str:
    """One row per (dataset, method): mean ± sd per size."""
    table = fs.lookup(aggs)
    names = list(dict.fromkeys(a.dataset for a in aggs))
    lines = [
        "| dataset | method | " + " | ".join(f"k={k}" for k in sizes) + " |",
        "|---|---|" + "---:|" * len(sizes),
    ]
    for n in names:
        zs = table.get((n, "zero-shot", 0))
        if zs:
            lines.append(f"| {n} | zero-shot | " + " | ".join(f"{zs.mean:.3f}" for _ in sizes) + " |")
        for m in ("few-shot", "logreg", "class-mean", "order-agreement"):
            cells = [table.get((n, m, k)) for k in sizes]
            if any(cells):
                lines.append(
                    f"| {n} | {m} | "
                    + " | ".join(
                        f"{a.mean:.3f} ± {a.sd:.3f}{'*' if a.capped else ''}" if a else "" for a in cells
                    )
                    + " |"
                )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("http", "sim"), default="http")
    ap.add_argument("--group", choices=tuple(datasets.GROUPS), default="dev")
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"sizes {QUICK_SIZES}, {QUICK_SEEDS} seeds, <={QUICK_TEST_MAX} test items, first dataset only",
    )
    ap.add_argument(
        "--models", default=E5, help=f"comma-separated ({E5}, {MINILM}; MiniLM: English sets only)"
    )
    ap.add_argument("--datasets", default=None, help="comma-separated (default: the whole --group)")
    ap.add_argument("--sizes", default=",".join(map(str, fs.SIZES)))
    ap.add_argument("--seeds", type=int, default=fs.SEEDS)
    ap.add_argument("--test-max", type=int, default=fs.TEST_MAX)
    ap.add_argument(
        "--max-texts", type=int, default=MAX_TEXTS, help="texts per dataset (stratified subsample)"
    )
    ap.add_argument("--num-iters", type=int, default=None, help="sent with /v1/train (default: the API's)")
    ap.add_argument("--no-order", action="store_true", help="skip the order-robustness classifiers")
    ap.add_argument(
        "--meaningless", action="store_true", help="also run every set with labels team1, team2, ..."
    )
    ap.add_argument("--no-embed-cache", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args(argv)

    settings = Settings.from_environ()
    sizes = QUICK_SIZES if args.quick else tuple(int(s) for s in args.sizes.split(","))
    seeds = QUICK_SEEDS if args.quick else args.seeds
    test_max = QUICK_TEST_MAX if args.quick else args.test_max
    names = (
        [n.strip() for n in args.datasets.split(",") if n.strip()]
        if args.datasets
        else list(datasets.GROUPS[args.group])
    )
    if args.quick and not args.datasets:
        names = names[:1]
    groups = {datasets.group_of(n) for n in names}
    if groups - {args.group}:
        ap.error(f"--datasets {names} are not all in the {args.group} group")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    t0 = time.perf_counter()
    revision = fs.git_revision(ROOT)  # the code this run imported, before anything can change the checkout
    sets = load_sets(names, settings, args.max_texts)
    if args.meaningless:
        sets += [meaningless(ds) for ds in sets]
    embedders = Embedders(settings, args.threads)
    preps = [
        prepare(ds, m, embedders, test_max) for m in models for ds in sets if m != MINILM or ds.english_only
    ]
    log(
        "prepared: "
        + ", ".join(
            f"{p.name}/{p.model} (train candidates {len(p.splits.pool) + len(p.splits.val)}, "
            f"test {len(p.splits.test)})"
            for p in preps
        )
    )
    info: dict[str, Any] = {
        "group": args.group,
        "git_revision": revision,
        "model_fingerprints": {m: fs.model_cache_key(settings.model_dir / m) for m in models},
    }
    if args.mode == "http":
        memos = None if args.no_embed_cache else memo_embedders(preps, embedders)
        with local_api(settings, list((memos or {}).values()), request_limits=False) as url:
            client = ApiClient(url, chunk=HTTP_CHUNK)
            results = run(preps, HttpBackend(client, args.num_iters), sizes, seeds, not args.no_order)
        info["embedded_by_server"] = sum(m.embedded for m in (memos or {}).values())
    else:
        results = run(preps, SimBackend(embedders, args.num_iters), sizes, seeds, not args.no_order)
    aggs = fs.aggregate(results)
    print(markdown_curves(aggs, sizes))
    lines, goals = summary(aggs, args.group)
    print("\n" + "\n".join(lines))
    info["goals"] = goals
    info["total_seconds"] = round(time.perf_counter() - t0, 1)
    log(f"done in {info['total_seconds']:.0f}s")
    if args.json:
        payload = {
            "args": {k: str(v) for k, v in vars(args).items()},
            "info": info,
            "datasets": {
                p.name: {
                    "model": p.model,
                    "group": datasets.group_of(p.name),
                    "train_candidates": len(p.splits.pool) + len(p.splits.val),
                    "test": len(p.splits.test),
                    "labels": p.class_texts,
                }
                for p in preps
            },
            "aggregates": fs.to_jsonable(aggs),
            "results": fs.to_jsonable(results),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.plot:
        plot(
            aggs,
            sizes,
            args.plot,
            f"labelwise few-shot, {args.group} group ({', '.join(models)}; {args.mode}), {seeds} seeds",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
