"""``labelwise evaluate``: zero-shot against few-shot on the user's own labelled file.

It answers "how many examples per label do I need before few-shot pays off?" on the user's data:

* :func:`read_labelled` reads a ``.csv`` (header row) or ``.jsonl`` (one object a line) with a text
  and a label column; :func:`check_labelled` refuses data that cannot be evaluated
  (:class:`DataError`: the CLI's exit code 2);
* :func:`holdout` holds out a stratified test split (every label keeps at least one example on
  each side);
* :func:`evaluate` scores zero-shot (the distinct label values as labels) and few-shot at
  :func:`curve_sizes` examples per label with ``seeds`` seeded samples
  (:func:`labelwise.evaluation.fewshot.sample_per_label`), every classifier trained, used and
  deleted through the API's own use cases (:class:`ServiceEngine` over
  :mod:`labelwise.classify.service` and :mod:`labelwise.classify.fewshot`) with the embedded local
  store in a temporary data dir (:func:`local_engine`);
* :func:`render_report` prints the table, :func:`write_outputs` writes ``results.json`` and
  ``learning_curve.png``; :func:`examples_needed` is the answer.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from labelwise.evaluation.fewshot import (
    SIZES,
    SPLIT_SEED,
    TRAIN_BATCH,
    Aggregate,
    Result,
    aggregate,
    make_splits,
    sample_per_label,
    score,
    to_jsonable,
)
from labelwise.evaluation.metrics import accuracy, f1_per_class
from labelwise.settings import Settings

FloatArray = npt.NDArray[np.float64]

SEEDS = 3
TEST_FRACTION = 0.3
TEST_MAX = 1000
FORMATS = (".csv", ".jsonl")
#: The name results carry for the user's file (the harness's ``dataset`` field).
DATASET = "user"


class DataError(ValueError):
    """The file cannot be evaluated: unreadable, unsupported, a missing column, too few labels or
    examples. The message says what to fix."""


@dataclass(frozen=True)
class LabelledData:
    texts: list[str]
    labels: list[str]
    skipped: int = 0  # rows without a text or a label

    @property
    def classes(self) -> list[str]:
        """The distinct labels, sorted (the order of every score column)."""
        return sorted(set(self.labels))

    def counts(self, indices: Sequence[int] | None = None) -> dict[str, int]:
        chosen = range(len(self.labels)) if indices is None else indices
        counts = Counter(self.labels[i] for i in chosen)
        return {label: counts.get(label, 0) for label in self.classes}


# ------------------------------------------------------------------------------------ reading input
def read_labelled(path: Path, text_column: str = "text", label_column: str = "label") -> LabelledData:
    """The (text, label) rows of a ``.csv`` or ``.jsonl`` file; rows with an empty text or label are
    skipped (and counted). Raises :class:`DataError` for an unreadable or unsupported file and for
    a missing column."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv or .jsonl")
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows, columns = _csv_rows(f) if suffix == ".csv" else _jsonl_rows(f)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the file ({exc})") from exc
    missing = [c for c in (text_column, label_column) if c not in columns]
    if missing:
        found = ", ".join(repr(c) for c in columns) or "none"
        flags = {text_column: "--text-column", label_column: "--label-column"}
        raise DataError(
            f"{path}: no column {', '.join(repr(c) for c in missing)} (columns found: {found});"
            f" name the right one with {' / '.join(flags[c] for c in missing)}"
        )
    texts, labels, skipped = [], [], 0
    for row in rows:
        text, label = _cell(row.get(text_column)), _cell(row.get(label_column))
        if text and label:
            texts.append(text)
            labels.append(label)
        else:
            skipped += 1
    return LabelledData(texts, labels, skipped)


def _cell(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value).strip()


def _csv_rows(f: Any) -> tuple[list[dict[str, Any]], list[str]]:
    reader = csv.DictReader(f)
    rows = list(reader)
    return rows, list(reader.fieldnames or [])


def _jsonl_rows(f: Any) -> tuple[list[dict[str, Any]], list[str]]:
    rows: list[dict[str, Any]] = []
    columns: dict[str, None] = {}
    for n, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"line {n} is not JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise DataError(f"line {n} is not a JSON object")
        columns.update(dict.fromkeys(row))
        rows.append(row)
    return rows, list(columns)


def check_labelled(data: LabelledData) -> None:
    """At least two labels, each with at least two examples (one to learn from, one to test on)."""
    counts = data.counts()
    if not counts:
        raise DataError("no labelled rows (every row lacks a text or a label)")
    if len(counts) < 2:
        raise DataError(f"only one label ({next(iter(counts))!r}): a classifier needs at least two")
    few = {label: n for label, n in counts.items() if n < 2}
    if few:
        listed = ", ".join(f"{label!r} ({n})" for label, n in few.items())
        raise DataError(f"every label needs at least 2 examples (one to train, one to test): {listed}")


# ------------------------------------------------------------------------------- split and sizes
def holdout(
    labels: Sequence[str],
    test_fraction: float = TEST_FRACTION,
    test_max: int = TEST_MAX,
    seed: int = SPLIT_SEED,
) -> tuple[list[int], list[int]]:
    """(train, test) indices: a stratified test split (:func:`make_splits` without validation);
    a label the split left without a training example gives one back from the test side."""
    splits = make_splits(labels, test_fraction, test_max, val_fraction=0.0, seed=seed)
    train, test = list(splits.pool), list(splits.test)
    in_train = {labels[i] for i in train}
    for label in sorted(set(labels) - in_train):
        back = next(i for i in test if labels[i] == label)
        test.remove(back)
        train.append(back)
    return sorted(train), sorted(test)


def curve_sizes(train_counts: dict[str, int], sizes: Sequence[int] = SIZES) -> list[int]:
    """Examples per label to measure: each of ``sizes`` below the largest label's training count,
    then that count (at most ``sizes[-1]``); smaller labels give all they have at a larger size."""
    most = max(train_counts.values(), default=0)
    if most < 1:
        return []
    return sorted({k for k in sizes if k < most} | {min(most, sizes[-1])})


def examples_needed(zero_shot: float, curve: Sequence[tuple[int, float]]) -> int | None:
    """The smallest size (examples per label) from which few-shot's mean macro-F1 beats
    ``zero_shot`` at that size and every larger one measured; None when it never does."""
    needed: int | None = None
    for k, mean in sorted(curve):
        beats = mean > zero_shot
        needed = (k if needed is None else needed) if beats else None
    return needed


# ----------------------------------------------------------------------------------- the engine
class Engine(Protocol):
    """What :func:`evaluate` needs: the API's zero-shot, train, classify and delete use cases."""

    model: str

    def zero_shot(self, texts: Sequence[str], labels: Sequence[str]) -> FloatArray: ...

    def train(self, texts: Sequence[str], labels: Sequence[str]) -> str: ...

    def classify(self, classifier_id: str, texts: Sequence[str], columns: Sequence[str]) -> FloatArray: ...

    def delete(self, classifier_id: str) -> None: ...


class ServiceEngine:
    """The API's use cases over :class:`~labelwise.services.Services`, in requests of at most
    ``settings.max_inputs`` items (and :data:`TRAIN_BATCH` examples per train call), as one caller."""

    def __init__(self, services: Any, model: str) -> None:
        from labelwise.storage.ports import ApiKeyRecord, utcnow

        self.services = services
        self.model = model
        self.chunk = max(1, min(services.settings.max_inputs, TRAIN_BATCH))
        self.caller = ApiKeyRecord(
            key_id="labelwise-evaluate", tenant_id="labelwise-evaluate", name="evaluate", created_at=utcnow()
        )

    def _scores(
        self, texts: Sequence[str], columns: Sequence[str], classify: Callable[[list[str]], Any]
    ) -> FloatArray:
        from labelwise.classify.zeroshot import UNGROUPED

        out = np.zeros((len(texts), len(columns)))
        index = {label: j for j, label in enumerate(columns)}
        for start in range(0, len(texts), self.chunk):
            group = classify(list(texts[start : start + self.chunk])).groups[UNGROUPED]
            for j, label in enumerate(group.labels):
                out[start : start + len(group.probabilities), index[label]] = group.probabilities[:, j]
        return out

    def zero_shot(self, texts: Sequence[str], labels: Sequence[str]) -> FloatArray:
        from labelwise.classify import service

        s = self.services
        return self._scores(
            texts,
            labels,
            lambda part: service.classify_zero_shot(
                s.registry,
                s.images,
                s.label_cache,
                s.settings,
                items=part,
                labels=list(labels),
                model=self.model,
            ),
        )

    def train(self, texts: Sequence[str], labels: Sequence[str]) -> str:
        from labelwise.classify import service

        s = self.services
        classifier_id: str | None = None
        for start in range(0, len(texts), self.chunk):
            examples = [
                service.Example(text, label)
                for text, label in zip(
                    texts[start : start + self.chunk], labels[start : start + self.chunk], strict=True
                )
            ]
            result = service.train(
                s.fewshot_registry, s.store, s.settings, self.caller,
                examples=examples, classifier_id=classifier_id, model=None if classifier_id else self.model,
            )  # fmt: skip
            classifier_id = result.classifier_id
        if classifier_id is None:
            raise ValueError("no training examples")
        return classifier_id

    def classify(self, classifier_id: str, texts: Sequence[str], columns: Sequence[str]) -> FloatArray:
        from labelwise.classify import service

        s = self.services
        return self._scores(
            texts,
            columns,
            lambda part: service.classify_few_shot(
                s.fewshot_registry, s.store, s.settings, self.caller, classifier_id=classifier_id, items=part
            ),
        )

    def delete(self, classifier_id: str) -> None:
        from labelwise.classify import fewshot

        fewshot.delete_classifier(self.services.store, self.caller, classifier_id)

    def leftovers(self) -> list[str]:
        """Classifiers of this caller still in the store (none once :func:`evaluate` is done)."""
        from labelwise.classify import fewshot

        return [m.id for m in fewshot.list_classifiers(self.services.store, self.caller)]


@contextlib.contextmanager
def local_engine(settings: Settings, model: str | None = None) -> Iterator[ServiceEngine]:
    """A :class:`ServiceEngine` over the composition root's services (:func:`build_services`) with
    the embedded local store in a temporary data dir, removed afterwards, and without the
    Lambda-sized per-request limits (token cap, time budget). Each distinct text is embedded once
    (:class:`~labelwise.evaluation.engines.MemoEmbedder`): the same text is scored in many runs."""
    from labelwise.embedding.registry import ModelRegistry
    from labelwise.evaluation.engines import MemoEmbedder
    from labelwise.runtime import build_services
    from labelwise.services import Services

    with tempfile.TemporaryDirectory(prefix="labelwise-evaluate-") as tmp:
        env = {**os.environ, "LABELWISE_DATA_DIR": tmp, "LABELWISE_STORE": "local"}
        env.update(LABELWISE_MODEL_DIR=str(settings.model_dir), LABELWISE_CACHE_DIR=str(settings.cache_dir))
        s = Settings.from_environ(env).model_copy(update={"max_request_tokens": 0, "request_budget_s": 1e6})
        services = build_services(s)
        name = services.text_model_for(model)
        memo = MemoEmbedder(services.registry.get(name), {})
        services = Services(
            settings=s,
            registry=ModelRegistry.from_embedders([memo], name),
            store=services.store,
            keys=services.keys,
            label_cache=services.label_cache,
        )
        yield ServiceEngine(services, name)


def model_fingerprint(settings: Settings, model: str) -> str:
    """:func:`~labelwise.evaluation.fewshot.model_cache_key` of the model's directory, else its name."""
    from labelwise.evaluation.fewshot import model_cache_key

    try:
        return model_cache_key(settings.model_dir / model)
    except (OSError, ValueError):
        return model


# ------------------------------------------------------------------------------------ evaluation
@dataclass
class Report:
    """Everything ``labelwise evaluate`` prints and writes."""

    model: str
    classes: list[str]
    train_size: int
    test_size: int
    sizes: list[int]
    seeds: int
    zero_shot: Result
    few_shot: list[Result] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def curve(self) -> list[Aggregate]:
        return [a for a in aggregate(self.few_shot) if a.method == "few-shot"]

    @property
    def needed(self) -> int | None:
        return examples_needed(self.zero_shot.macro_f1, [(a.k, a.mean) for a in self.curve])

    def accuracy_at(self, k: int) -> tuple[float, float]:
        values = [float(r.extra["accuracy"]) for r in self.few_shot if r.k == k]
        return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

    def per_label_at(self, k: int) -> dict[str, float]:
        rows = [r.extra["per_label_f1"] for r in self.few_shot if r.k == k]
        return {c: float(np.mean([row[c] for row in rows])) for c in self.classes}


def _result(
    method: str, k: int, seed: int, P: FloatArray, y: npt.NDArray[np.int64], classes: list[str]
) -> Result:
    s = score(P, y, len(classes))
    pred = P.argmax(axis=1)
    per_label = f1_per_class(y, pred, len(classes))
    return Result(
        DATASET, method, k, seed, s.macro_f1, s.ece, s.nll,
        extra={
            "accuracy": accuracy(y, pred),
            "per_label_f1": dict(zip(classes, map(float, per_label), strict=True)),
        },
    )  # fmt: skip


def evaluate(
    data: LabelledData,
    engine: Engine,
    train: Sequence[int],
    test: Sequence[int],
    *,
    sizes: Sequence[int],
    seeds: int = SEEDS,
    on_step: Callable[[str], None] | None = None,
) -> Report:
    """Zero-shot, then few-shot at each of ``sizes`` per label for seeds ``0..seeds-1``: each
    classifier is trained on a :func:`sample_per_label` of ``train``, scored on ``test`` and deleted
    (also when a step fails). ``on_step(description)`` is called after each of the
    ``1 + len(sizes) * seeds`` steps."""
    classes = data.classes
    column = {label: j for j, label in enumerate(classes)}
    test_texts = [data.texts[i] for i in test]
    y = np.array([column[data.labels[i]] for i in test], dtype=np.int64)
    zero = _result("zero-shot", 0, 0, engine.zero_shot(test_texts, classes), y, classes)
    if on_step:
        on_step("zero-shot")
    report = Report(engine.model, classes, len(train), len(test), list(sizes), seeds, zero)
    for k in sizes:
        for seed in range(seeds):
            chosen, taken = sample_per_label(data.labels, train, k, seed)
            classifier_id = engine.train([data.texts[i] for i in chosen], [data.labels[i] for i in chosen])
            try:
                P = engine.classify(classifier_id, test_texts, classes)
            finally:
                engine.delete(classifier_id)
            result = _result("few-shot", k, seed, P, y, classes)
            result.per_label.update(taken)
            report.few_shot.append(result)
            if on_step:
                on_step(f"few-shot {k}/label seed {seed}")
    return report


# ------------------------------------------------------------------------------------ reporting
def render_report(report: Report) -> str:
    """The table (macro-F1 and accuracy, mean ± sd over seeds; per-label F1 at the largest size)
    and the answer to "how many examples per label before few-shot beats zero-shot?"."""
    z = report.zero_shot
    lines = [
        f"{'method':<10} {'per label':>9}  {'macro-F1':>15}  {'accuracy':>15}",
        f"{'zero-shot':<10} {'-':>9}  {z.macro_f1:>15.3f}  {float(z.extra['accuracy']):>15.3f}",
    ]
    for a in report.curve:
        acc, acc_sd = report.accuracy_at(a.k)
        k = f"{a.k}{'*' if a.capped else ''}"
        lines.append(f"{'few-shot':<10} {k:>9}  {a.mean:>8.3f} ± {a.sd:.3f}  {acc:>8.3f} ± {acc_sd:.3f}")
    if any(a.capped for a in report.curve):
        lines.append("* some labels have fewer training examples than this: they gave all they have")
    if report.sizes:
        largest = report.sizes[-1]
        few = report.per_label_at(largest)
        width = max(len("label"), *(len(c) for c in report.classes))
        lines += [
            "",
            f"per-label F1 at {largest} per label",
            f"{'label':<{width}}  {'zero-shot':>9}  {'few-shot':>8}",
        ]
        for c in report.classes:
            lines.append(f"{c:<{width}}  {float(z.extra['per_label_f1'][c]):>9.3f}  {few[c]:>8.3f}")
    lines += ["", verdict(report)]
    return "\n".join(lines)


def verdict(report: Report) -> str:
    needed = report.needed
    if needed is not None:
        return (
            f"Few-shot beats zero-shot (macro-F1 {report.zero_shot.macro_f1:.3f}) from {needed} examples"
            f" per label on this data."
        )
    largest = report.sizes[-1] if report.sizes else 0
    return (
        f"Few-shot did not beat zero-shot (macro-F1 {report.zero_shot.macro_f1:.3f}) at any size up to"
        f" {largest} examples per label on this data: zero-shot is the better choice with this much data."
    )


def results_document(report: Report) -> dict[str, Any]:
    """``results.json``: settings of the run, every measurement, the curve and the answer."""
    return to_jsonable(
        {
            **report.meta,
            "model": report.model,
            "labels": report.classes,
            "train_size": report.train_size,
            "test_size": report.test_size,
            "sizes": report.sizes,
            "seeds": report.seeds,
            "zero_shot": report.zero_shot,
            "few_shot": report.few_shot,
            "curve": report.curve,
            "examples_needed": report.needed,
            "verdict": verdict(report),
        }
    )


def plot_curve(report: Report, path: Path) -> None:
    """Macro-F1 against examples per label: few-shot mean ± sd band, zero-shot as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = report.curve
    ks = np.array([a.k for a in curve], dtype=float)
    mean = np.array([a.mean for a in curve])
    sd = np.array([a.sd for a in curve])
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        if len(curve):
            ax.plot(
                ks, mean, marker="o", color="tab:blue", label=f"few-shot (mean ± sd, {report.seeds} seeds)"
            )
            ax.fill_between(
                ks, np.clip(mean - sd, 0, 1), np.clip(mean + sd, 0, 1), color="tab:blue", alpha=0.2
            )
            ax.set_xscale("log", base=2)
            ax.set_xticks(ks, [str(int(k)) for k in ks])
        ax.axhline(report.zero_shot.macro_f1, color="tab:orange", linestyle="--", label="zero-shot")
        ax.set_xlabel("training examples per label")
        ax.set_ylabel("macro-F1 on the held-out test split")
        ax.set_title(f"{report.model}: {len(report.classes)} labels, {report.test_size} test examples")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


def write_outputs(report: Report, out: Path) -> tuple[Path, Path | None]:
    """``results.json`` and ``learning_curve.png`` under ``out`` (created); the plot is None when
    matplotlib (a dev dependency, not the runtime's) is not installed."""
    import importlib.util

    out.mkdir(parents=True, exist_ok=True)
    results, png = out / "results.json", out / "learning_curve.png"
    results.write_text(json.dumps(results_document(report), indent=2) + "\n", encoding="utf-8")
    if importlib.util.find_spec("matplotlib") is None:
        return results, None
    plot_curve(report, png)
    return results, png


def run_meta(
    path: Path, data: LabelledData, columns: tuple[str, str], settings: Settings, model: str
) -> dict[str, Any]:
    """What ``results.json`` records about the run: the file, its labels, the model's fingerprint
    and the code's git revision."""
    from labelwise.evaluation.fewshot import git_revision

    return {
        "file": str(path),
        "text_column": columns[0],
        "label_column": columns[1],
        "rows": len(data.texts),
        "skipped_rows": data.skipped,
        "label_counts": data.counts(),
        "model_fingerprint": model_fingerprint(settings, model),
        "git_revision": git_revision(Path(__file__).resolve().parent),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
