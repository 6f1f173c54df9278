#!/usr/bin/env python
"""Few-shot learning curves of labelwise (``POST /v1/train`` + ``/v1/classify``) against zero-shot
and an offline logistic regression, on the zero-shot eval's datasets.

Modes (``--mode``):

* ``http`` (default)  the numbers the issue asks for: a local server in this process
                      (``labelwise.server.running_server``, temp data dir, auth off); per dataset,
                      size and seed one classifier is created (``POST /v1/train``, batches of
                      <= 1,024, create then update, the API's default ``num_iters``) and the test
                      split is classified by ``classifier_id``. Zero-shot goes through
                      ``POST /v1/classify`` with ``labels``. The offline logistic regression is
                      fitted in-process on the same embeddings.
* ``sim``             the same protocol in-process (no HTTP), replaying the learner exactly
                      (:func:`labelwise.evaluation.fewshot.replay_api`) on cached embeddings.
* ``tune``            the grid of learner settings on the **validation** split (never the test
                      split); ``--grid`` picks one (see ``GRIDS``).

Embeddings: every dataset is embedded once per model and cached under
``<cache_dir>/fewshot-embeddings``. In ``http`` mode the server's embedder is wrapped so that a
text it has embedded before (or one found in that cache) is not embedded again: the model is
deterministic up to int8 batch effects, and without it the full run re-embeds each test split 30
times (hours on 2 cores). ``--no-embed-cache`` turns that off.

Examples::

    python scripts/eval_fewshot.py --quick                                   # smoke run, a few minutes
    python scripts/eval_fewshot.py --json fewshot.json --plot docs/img/fewshot_curves.png
    python scripts/eval_fewshot.py --mode tune --grid prior
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "shared"))

from labelwise.evaluation import datasets  # noqa: E402
from labelwise.evaluation import fewshot as fs  # noqa: E402
from labelwise.evaluation.datasets import LabelledSet  # noqa: E402
from labelwise.settings import Settings  # noqa: E402

E5 = "multilingual-e5-small"
MINILM = "all-minilm-l6-v2"
HTTP_CHUNK = 1024
QUICK_SIZES = (8, 64)
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
    return Prepared(ds, model, X, dict(zip(ds.label_texts, L, strict=True)), splits)


def load_sets(names: Sequence[str], settings: Settings) -> list[LabelledSet]:
    return [datasets.load(n, settings.cache_dir, None) for n in names]


# =========================================================================== in-process protocol
def run_sim(
    preps: Sequence[Prepared],
    configs: Sequence[fs.LearnerConfig],
    sizes: Sequence[int],
    seeds: int,
    final: bool,
    zs_temperature: float,
    baselines: bool = True,
    logreg_cs: Sequence[float | None] = (None,),
) -> list[fs.Result]:
    """Few-shot (each config), zero-shot and logistic regression, in-process."""
    out: list[fs.Result] = []
    for p in preps:
        ev = np.array(p.splits.eval_indices(final))
        y_ev = p.ds.y[ev]
        X_ev = p.X[ev]
        n_cls = len(p.ds.classes)
        L = np.array([p.label_vectors[t] for t in p.class_texts])
        text_labels = p.text_labels
        if baselines:
            s = fs.score(fs.zero_shot_probabilities(X_ev, L, zs_temperature), y_ev, n_cls)
            out.append(fs.Result(p.name, "zero-shot", 0, 0, s.macro_f1, s.ece, s.nll))
        cands = p.splits.train_candidates(final)
        for k in sizes:
            for seed in range(seeds):
                idx, taken = fs.sample_per_label(p.ds.labels, cands, k, seed)
                Xtr = p.X[idx]
                ytr = [text_labels[i] for i in idx]
                for cfg in configs:
                    learner = fs.replay_api(Xtr, ytr, p.label_vectors, cfg, f"{p.name}:{k}:{seed}")
                    P = fs.learner_probabilities(learner, X_ev, p.class_texts, cfg.temperature)
                    s = fs.score(P, y_ev, n_cls)
                    method = "few-shot" if len(configs) == 1 else cfg.label()
                    out.append(fs.Result(p.name, method, k, seed, s.macro_f1, s.ece, s.nll, taken))
                if baselines and k == fs.OFFLINE_SIZE:
                    for c in logreg_cs:
                        P = fs.offline_logreg(Xtr, p.ds.y[idx], X_ev, n_cls, c)
                        s = fs.score(P, y_ev, n_cls)
                        method = "logreg" if len(logreg_cs) == 1 else f"logreg C={c}"
                        out.append(fs.Result(p.name, method, k, seed, s.macro_f1, s.ece, s.nll, taken))
        log(f"{p.name} ({p.model}): done")
    return out


# =========================================================================== HTTP protocol
class MemoEmbedder:
    """Wraps an Embedder: vectors of (role, text) seen before are reused (seeded from the cache)."""

    def __init__(self, inner: Any, seed: dict[tuple[str, str], npt.NDArray[np.float32]]) -> None:
        self._inner = inner
        self._memo = dict(seed)
        self.embedded = 0

    @property
    def manifest(self) -> Any:
        return self._inner.manifest

    def count_tokens(self, texts: Sequence[str], role: Any) -> list[int]:
        counts: list[int] = self._inner.count_tokens(texts, role)
        return counts

    def embed(self, texts: Sequence[str], role: Any, truncate: Any = "pool") -> Any:
        from labelwise.embedding.port import EmbeddingBatch

        if truncate != "pool":  # only the default mode is memoised
            return self._inner.embed(texts, role, truncate)
        missing = list(dict.fromkeys(t for t in texts if (role, t) not in self._memo))
        if missing:
            vecs = self._inner.embed(missing, role).vectors
            self.embedded += len(missing)
            for t, v in zip(missing, vecs, strict=True):
                self._memo[(role, t)] = v
        counts = self._inner.count_tokens(texts, role)
        limit = self._inner.manifest.max_input_tokens
        vectors = np.stack([self._memo[(role, t)] for t in texts]).astype(np.float32)
        return EmbeddingBatch(vectors, counts, [c > limit for c in counts])


@contextlib.contextmanager
def local_api(settings: Settings, embedders: dict[str, Any] | None) -> Iterator[str]:
    """The real API on a free loopback port in this process (temp data dir, auth off)."""
    from labelwise.embedding.registry import ModelRegistry
    from labelwise.runtime import Services, build_services
    from labelwise.server import running_server

    with tempfile.TemporaryDirectory(prefix="labelwise-fewshot-") as tmp:
        env = {
            **os.environ,
            "LABELWISE_DATA_DIR": tmp,
            "LABELWISE_REQUIRE_AUTH": "false",
            "LABELWISE_MODEL_DIR": str(settings.model_dir),
            "LABELWISE_CACHE_DIR": str(settings.cache_dir),
        }
        s = Settings.from_environ(env).model_copy(update={"require_auth": False})
        services = build_services(s)
        if embedders:
            default = s.default_model if s.default_model in embedders else next(iter(embedders))
            services = Services(
                settings=s,
                registry=ModelRegistry.from_embedders(list(embedders.values()), default),
                store=services.store,
                keys=services.keys,
                label_cache=services.label_cache,
            )
        with running_server(services, "127.0.0.1", 0) as url:
            yield url


class Client:
    def __init__(self, base_url: str) -> None:
        import requests

        self.base = base_url.rstrip("/")
        self.session = requests.Session()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.session.post(self.base + path, json=body, timeout=900)
        if r.status_code != 200:
            raise RuntimeError(f"{path} answered {r.status_code}: {r.text[:500]}")
        out: dict[str, Any] = r.json()
        return out

    def train(self, model: str, texts: Sequence[str], labels: Sequence[str], num_iters: int | None) -> str:
        cid: str | None = None
        for start in range(0, len(texts), HTTP_CHUNK):
            body: dict[str, Any] = {
                "input": [
                    {"text": t, "label": lab}
                    for t, lab in zip(
                        texts[start : start + HTTP_CHUNK], labels[start : start + HTTP_CHUNK], strict=True
                    )
                ]
            }
            if num_iters is not None:
                body["num_iters"] = num_iters
            if cid is None:
                body["model"] = model
            else:
                body["classifier_id"] = cid
            cid = str(self._post("/v1/train", body)["classifier_id"])
        assert cid is not None
        return cid

    def classify(
        self, texts: Sequence[str], columns: Sequence[str], *, classifier_id: str | None = None,
        model: str | None = None, labels: Sequence[str] | None = None,
    ) -> npt.NDArray[np.float64]:  # fmt: skip
        index = {lab: j for j, lab in enumerate(columns)}
        out = np.zeros((len(texts), len(columns)))
        for start in range(0, len(texts), HTTP_CHUNK):
            body: dict[str, Any] = {"input": list(texts[start : start + HTTP_CHUNK])}
            if classifier_id:
                body["classifier_id"] = classifier_id
            else:
                body["model"], body["labels"] = model, list(labels or columns)
            for item in self._post("/v1/classify", body)["data"]:
                row = start + int(item["index"])
                for pred in item["predictions"]:
                    out[row, index[pred["label"]]] = float(pred["score"])
        return out

    def delete(self, classifier_id: str) -> None:
        self.session.delete(f"{self.base}/v1/classifiers/{classifier_id}", timeout=60)


def run_http(
    preps: Sequence[Prepared],
    settings: Settings,
    sizes: Sequence[int],
    seeds: int,
    num_iters: int | None,
    embed_cache: bool,
    embedders: Embedders,
) -> tuple[list[fs.Result], dict[str, Any]]:
    wrapped: dict[str, Any] | None = None
    memos: list[MemoEmbedder] = []
    if embed_cache:
        wrapped = {}
        for model in dict.fromkeys(p.model for p in preps):
            seed: dict[tuple[str, str], npt.NDArray[np.float32]] = {}
            for p in preps:
                if p.model == model:
                    seed.update({("input", t): v for t, v in zip(p.ds.texts, p.X, strict=True)})
                    seed.update({("label", t): v for t, v in p.label_vectors.items()})
            memo = MemoEmbedder(embedders.get(model), seed)
            memos.append(memo)
            wrapped[model] = memo
    out: list[fs.Result] = []
    t0 = time.perf_counter()
    with local_api(settings, wrapped) as url:
        client = Client(url)
        for p in preps:
            ev = list(p.splits.test)
            texts_ev = [p.ds.texts[i] for i in ev]
            y_ev = p.ds.y[ev]
            n_cls = len(p.ds.classes)
            P = client.classify(texts_ev, p.class_texts, model=p.model, labels=p.class_texts)
            s = fs.score(P, y_ev, n_cls)
            out.append(fs.Result(p.name, "zero-shot", 0, 0, s.macro_f1, s.ece, s.nll))
            cands = p.splits.train_candidates(True)
            text_labels = p.text_labels
            for k in sizes:
                for seed_ in range(seeds):
                    idx, taken = fs.sample_per_label(p.ds.labels, cands, k, seed_)
                    cid = client.train(
                        p.model, [p.ds.texts[i] for i in idx], [text_labels[i] for i in idx], num_iters
                    )
                    P = client.classify(texts_ev, p.class_texts, classifier_id=cid)
                    client.delete(cid)
                    s = fs.score(P, y_ev, n_cls)
                    out.append(fs.Result(p.name, "few-shot", k, seed_, s.macro_f1, s.ece, s.nll, taken))
                    if k == fs.OFFLINE_SIZE:
                        Pl = fs.offline_logreg(p.X[idx], p.ds.y[idx], p.X[ev], n_cls)
                        s = fs.score(Pl, y_ev, n_cls)
                        out.append(fs.Result(p.name, "logreg", k, seed_, s.macro_f1, s.ece, s.nll, taken))
                log(f"{p.name} ({p.model}) k={k}: {time.perf_counter() - t0:.0f}s")
    info = {
        "seconds": round(time.perf_counter() - t0, 1),
        "embedded_by_server": sum(m.embedded for m in memos),
    }
    return out, info


# =========================================================================== tuning grids
def grid(name: str, base: fs.LearnerConfig) -> list[fs.LearnerConfig]:
    if name == "prior":
        return [replace(base, prior_strength=s) for s in (1, 2, 5, 10, 20, 40)]
    if name == "c":
        return [
            replace(base, variant=v, c=c)
            for v, c in itertools.product(("pa-i", "pa-ii"), (0.01, 0.03, 0.1, 0.3, 1.0))
        ]
    if name == "average":
        return [replace(base, average=a) for a in (False, True)]
    if name == "iters":
        return [replace(base, num_iters=n) for n in (1, 3, 5, 10, 20)]
    if name == "base":
        return [base]
    if "=" in name:  # a product grid: "prior_strength=10,20;c=0.1,1"
        axes = []
        for part in name.split(";"):
            key, _, values = part.partition("=")
            kind = type(getattr(base, key))
            conv = (lambda v: v.lower() in ("1", "true")) if kind is bool else kind
            axes.append([(key, conv(v)) for v in values.split(",")])
        return [replace(base, **dict(combo)) for combo in itertools.product(*axes)]
    raise ValueError(f"unknown grid {name!r}")


GRIDS = ("base", "prior", "c", "average", "iters")


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


def tuning_table(aggs: Sequence[fs.Aggregate], sizes: Sequence[int]) -> str:
    methods = list(dict.fromkeys(a.method for a in aggs if a.k > 0))
    names = list(dict.fromkeys(a.dataset for a in aggs))
    table = fs.lookup(aggs)
    lines = [
        "| method | " + " | ".join(f"k={k}" for k in sizes) + " | mean | ECE |",
        "|---|" + "---:|" * (len(sizes) + 2),
    ]
    zs = [table[(n, "zero-shot", 0)].mean for n in names if (n, "zero-shot", 0) in table]
    if zs:
        lines.append(
            "| zero-shot | " + " | ".join(f"{np.mean(zs):.3f}" for _ in sizes) + f" | {np.mean(zs):.3f} | |"
        )
    for m in methods:
        per_k = []
        eces = []
        for k in sizes:
            vals = [table[(n, m, k)].mean for n in names if (n, m, k) in table]
            eces += [
                table[(n, m, k)].ece for n in names if (n, m, k) in table and table[(n, m, k)].ece is not None
            ]
            per_k.append(float(np.mean(vals)) if vals else float("nan"))
        lines.append(
            f"| {m} | " + " | ".join(f"{v:.3f}" for v in per_k) + f" | {np.nanmean(per_k):.3f} | "
            f"{np.mean(eces) if eces else float('nan'):.3f} |"
        )
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
        ks = [k for k in sizes if (n, "few-shot", k) in table]
        m = np.array([table[(n, "few-shot", k)].mean for k in ks])
        sd = np.array([table[(n, "few-shot", k)].sd for k in ks])
        ax.plot(ks, m, "o-", label="few-shot (API)")
        ax.fill_between(ks, m - sd, m + sd, alpha=0.2)
        zs = table.get((n, "zero-shot", 0))
        if zs:
            ax.axhline(zs.mean, color="gray", ls="--", label="zero-shot")
        lr = table.get((n, "logreg", fs.OFFLINE_SIZE))
        if lr:
            ax.errorbar(
                [fs.OFFLINE_SIZE], [lr.mean], yerr=[lr.sd], fmt="s", color="C3", label="logreg (offline)"
            )
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
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("http", "sim", "tune"), default="http")
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"sizes {QUICK_SIZES}, {QUICK_SEEDS} seeds, ≤{QUICK_TEST_MAX} test items",
    )
    ap.add_argument(
        "--models", default=E5, help=f"comma-separated ({E5}, {MINILM}; MiniLM: English sets only)"
    )
    ap.add_argument("--datasets", default=",".join(datasets.DEFAULT_DATASETS))
    ap.add_argument("--sizes", default=",".join(map(str, fs.SIZES)))
    ap.add_argument("--seeds", type=int, default=fs.SEEDS)
    ap.add_argument("--test-max", type=int, default=fs.TEST_MAX)
    ap.add_argument("--num-iters", type=int, default=None, help="sent with /v1/train (default: the API's)")
    ap.add_argument(
        "--meaningless", action="store_true", help="also run every set with labels team1, team2, …"
    )
    ap.add_argument("--grid", default="base", help=f"tune mode: {', '.join(GRIDS)}")
    ap.add_argument(
        "--set", action="append", default=[], help="tune/sim: override a config field, e.g. prior_strength=10"
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
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    t0 = time.perf_counter()
    sets = load_sets(names, settings)
    if args.meaningless:
        sets += [meaningless(ds) for ds in sets]
    embedders = Embedders(settings, args.threads)
    preps = [
        prepare(ds, m, embedders, test_max) for m in models for ds in sets if m != MINILM or ds.english_only
    ]
    log(
        "prepared: "
        + ", ".join(
            f"{p.name}/{p.model} (pool {len(p.splits.pool)}, val {len(p.splits.val)}, "
            f"test {len(p.splits.test)})"
            for p in preps
        )
    )
    manifest_t = {m: embedders.get(m).manifest.temperature for m in models}

    base = fs.api_config()
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        field_type = type(getattr(base, key)) if hasattr(base, key) else str
        overrides[key] = (value.lower() in ("1", "true", "yes")) if field_type is bool else field_type(value)
    base = replace(base, **overrides)
    info: dict[str, Any] = {"config": fs.to_jsonable(base)}

    results: list[fs.Result] = []
    if args.mode == "http":
        results, extra = run_http(
            preps, settings, sizes, seeds, args.num_iters, not args.no_embed_cache, embedders
        )
        info.update(extra)
    else:
        configs = grid(args.grid, base) if args.mode == "tune" else [base]
        for m in models:
            results += run_sim(
                [p for p in preps if p.model == m], configs, sizes, seeds,
                final=args.mode == "sim", zs_temperature=manifest_t[m],
            )  # fmt: skip
    aggs = fs.aggregate(results)
    if args.mode == "tune" and len(grid(args.grid, base)) > 1:
        print(tuning_table(aggs, sizes))
    else:
        print(markdown_table(aggs, sizes))
        zs, lr = fs.check_goals(aggs)
        print(f"\nfew-shot >= zero-shot - 0.01 at every size: {all(c.ok for c in zs)}")
        for c in zs:
            if not c.ok:
                print(
                    f"  FAIL {c.dataset} k={c.k}: {c.few_shot:.3f} vs zero-shot {c.reference:.3f} "
                    f"({c.margin:+.3f})"
                )
        print(f"few-shot within 0.02 of logreg at k={fs.OFFLINE_SIZE}: {all(c.ok for c in lr)}")
        for c in lr:
            print(
                f"  {c.dataset}: {c.few_shot:.3f} vs {c.reference:.3f} ({c.margin:+.3f})"
                + ("" if c.ok else " FAIL")
            )
        info["goals"] = {"zero_shot": fs.to_jsonable(zs), "logreg": fs.to_jsonable(lr)}
    info["total_seconds"] = round(time.perf_counter() - t0, 1)
    log(f"done in {info['total_seconds']:.0f}s")
    if args.json:
        payload = {
            "args": {k: str(v) for k, v in vars(args).items()},
            "info": info,
            "datasets": {
                p.name: {
                    "model": p.model,
                    "pool": len(p.splits.pool),
                    "val": len(p.splits.val),
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
        plot(aggs, sizes, args.plot, f"labelwise few-shot ({', '.join(models)}; {args.mode}), {seeds} seeds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
