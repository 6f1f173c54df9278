"""Few-shot learning curves: splits, per-label sampling, an exact in-process replay of the API's
learner, baselines (zero-shot, offline logistic regression) and result aggregation.

Used by ``scripts/eval_fewshot.py`` (the HTTP measurement and the tuning runs); documented in
``docs/fewshot.md``.

Protocol (per dataset, fixed before looking at any score):

* :func:`make_splits` cuts a **test** split (stratified, ``test_fraction`` of the set, at most
  ``test_max`` items) and a **validation** split (``val_fraction`` of the rest). The remainder is
  the **pool**. Tuning trains on samples of the pool and scores on validation; the final numbers
  train on samples of pool + validation and score on test, which nothing was tuned on.
* :func:`sample_per_label` draws ``k`` examples per label (without replacement, seeded); a label
  with fewer than ``k`` candidates contributes all it has (the cap is reported).
* :func:`replay_product` trains the service's learner the way ``labelwise.classify.fewshot.train``
  does: the sample is cut into batches of at most 1,024, the first batch creates (labels in
  first-seen order), every later batch is an update after a serialisation round trip; each batch
  is seeded from its content, as the service does (``MixtureLearner.partial_fit``). The HTTP
  harness (``scripts/eval_fewshot.py``) goes through the real server instead; the replay is for
  fast development runs.

Embeddings of whole datasets are computed once per model and cached as ``.npy`` under
``<cache_dir>/fewshot-embeddings`` (:func:`cached_embeddings`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from labelwise.evaluation.datasets import stratified_indices
from labelwise.evaluation.metrics import expected_calibration_error, macro_f1, negative_log_likelihood

if TYPE_CHECKING:  # the learner is imported lazily: the HTTP harness must not depend on it
    from labelwise.learning.mixture import MixtureLearner

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

SIZES = (4, 8, 16, 32, 64, 128)
SEEDS = 5
TEST_FRACTION = 0.3
TEST_MAX = 1000
VAL_FRACTION = 0.25
SPLIT_SEED = 2024
TRAIN_BATCH = 1024  # the API's largest train request
OFFLINE_SIZE = 128


# --------------------------------------------------------------------------- splits and sampling
@dataclass(frozen=True)
class Splits:
    """Index sets into one dataset: ``pool`` + ``val`` + ``test`` partition it."""

    pool: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]

    def train_candidates(self, final: bool) -> tuple[int, ...]:
        """Where training samples come from: pool + validation for final numbers, pool for tuning."""
        return tuple(sorted(self.pool + self.val)) if final else self.pool

    def eval_indices(self, final: bool) -> tuple[int, ...]:
        return self.test if final else self.val


def make_splits(
    labels: Sequence[str],
    test_fraction: float = TEST_FRACTION,
    test_max: int = TEST_MAX,
    val_fraction: float = VAL_FRACTION,
    seed: int = SPLIT_SEED,
) -> Splits:
    """Stratified test / validation / pool split, deterministic for ``seed``."""
    n = len(labels)
    n_test = min(test_max, round(test_fraction * n))
    test = stratified_indices(labels, n_test, seed)
    taken = set(test)
    rest = [i for i in range(n) if i not in taken]
    n_val = round(val_fraction * len(rest))
    val_local = stratified_indices([labels[i] for i in rest], n_val, seed + 1)
    val = [rest[j] for j in val_local]
    vset = set(val)
    pool = [i for i in rest if i not in vset]
    return Splits(tuple(pool), tuple(sorted(val)), tuple(test))


def sample_per_label(
    labels: Sequence[str], candidates: Sequence[int], k: int, seed: int
) -> tuple[list[int], dict[str, int]]:
    """``k`` indices per label from ``candidates`` (all of a label's if it has fewer), shuffled.

    Returns the indices (in a seeded random order, so any prefix mixes labels) and, per label,
    how many were taken. Samples are *nested*: for one ``seed``, the ``k`` examples of a label are
    the first ``k`` of a fixed seeded permutation of its candidates, so a larger ``k`` adds
    examples to a smaller one (like examples arriving over time). Deterministic for
    ``(labels, candidates, k, seed)``.
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    by_label: dict[str, list[int]] = {}
    for i in candidates:
        by_label.setdefault(labels[i], []).append(int(i))
    chosen: list[int] = []
    taken: dict[str, int] = {}
    for n, label in enumerate(sorted(by_label)):
        members = np.array(sorted(by_label[label]))
        perm = np.random.default_rng([seed, n]).permutation(len(members))
        m = min(k, len(members))
        chosen.extend(int(j) for j in members[perm[:m]])
        taken[label] = m
    order = np.random.default_rng([seed, k, 7919]).permutation(len(chosen))
    return [chosen[j] for j in order], taken


# --------------------------------------------------------------------------- learner replay
#: ``TrainRequest.num_iters``'s default (what a client that omits it gets).
API_NUM_ITERS = 10


def replay_call(
    learner: MixtureLearner | None,
    X: FloatArray,
    y: Sequence[str],
    label_vectors: Callable[[Sequence[str]], FloatArray],
    classifier_key: str,
    version: int,
    zero_shot_temperature: float,
    *,
    num_iters: int = API_NUM_ITERS,
) -> MixtureLearner:
    """One ``POST /v1/train`` batch as the service learns it: a new learner
    (:func:`labelwise.classify.fewshot.new_learner`) when ``learner`` is None, else the stored one
    after a serialisation round trip; new labels added, every label's vector refreshed, and the
    batch learned with the seed drawn from its content (as the service does: ``classifier_key`` and
    ``version`` name the replayed call only).

    ``label_vectors(labels)`` embeds a classifier's whole label set the way the service does
    (:func:`labelwise.classify.fewshot.label_vectors`: the distinctive part of each label).
    """
    from labelwise.classify.fewshot import new_learner
    from labelwise.learning.mixture import load_learner

    del classifier_key, version  # the service no longer seeds training with the classifier id
    if learner is None:
        learner = new_learner(X.shape[1], zero_shot_temperature)
    else:
        learner = load_learner(learner.to_bytes(), zero_shot_temperature=zero_shot_temperature)
    old = learner.labels
    new = [lab for lab in dict.fromkeys(y) if lab not in old]
    rows = np.asarray(label_vectors([*old, *new]), dtype=np.float32)
    learner.add_labels(new, rows[len(old) :])
    learner.set_label_vectors(rows)
    learner.partial_fit(X, list(y), num_iters=num_iters)
    return learner


def replay_calls(
    X: FloatArray,
    y: Sequence[str],
    calls: Sequence[Sequence[int]],
    label_vectors: Callable[[Sequence[str]], FloatArray],
    classifier_key: str,
    zero_shot_temperature: float,
    *,
    num_iters: int = API_NUM_ITERS,
    batch: int = TRAIN_BATCH,
) -> MixtureLearner:
    """Train like a client that sends the rows of each of ``calls`` (indices into ``X`` / ``y``) in
    one ``/v1/train`` call of at most ``batch`` examples after another: one version per batch
    (:func:`replay_call`)."""
    if len(y) != len(X):
        raise ValueError("X and y differ in length")
    learner: MixtureLearner | None = None
    version = 0
    for call in calls:
        rows = list(call)
        for start in range(0, len(rows), batch):
            part = rows[start : start + batch]
            version += 1
            learner = replay_call(
                learner, X[part], [y[i] for i in part], label_vectors, classifier_key, version,
                zero_shot_temperature, num_iters=num_iters,
            )  # fmt: skip
    if learner is None:
        raise ValueError("no training examples")
    return learner


def replay_product(
    X: FloatArray,
    y: Sequence[str],
    label_vectors: Callable[[Sequence[str]], FloatArray],
    classifier_key: str,
    zero_shot_temperature: float,
    *,
    num_iters: int = API_NUM_ITERS,
    batch: int = TRAIN_BATCH,
) -> MixtureLearner:
    """Train like ``POST /v1/train`` with all of ``X``: create with the first ``batch`` examples,
    then one update per further batch (:func:`replay_calls` with one call)."""
    return replay_calls(
        X, y, [range(len(y))], label_vectors, classifier_key, zero_shot_temperature,
        num_iters=num_iters, batch=batch,
    )  # fmt: skip


def label_vector_function(embedder: Any) -> Callable[[Sequence[str]], FloatArray]:
    """``labels -> (n, dim)`` as the service embeds a classifier's labels (the distinctive part of
    each, :func:`labelwise.classify.labels.distinctive_labels`, in the ``"label"`` role), each text
    embedded once and remembered."""
    from labelwise.classify.labels import distinctive_labels

    remembered: dict[str, FloatArray] = {}

    def vectors(labels: Sequence[str]) -> FloatArray:
        texts = distinctive_labels(labels)
        for t in texts:
            if t not in remembered:
                remembered[t] = np.asarray(embedder.embed([t], "label").vectors[0], dtype=np.float32)
        return np.stack([remembered[t] for t in texts]).astype(np.float32)

    return vectors


def embedded_group(
    group: str,
    embed_inputs: Callable[[Sequence[str]], FloatArray],
    model_key: str,
    cache_dir: Path,
    *,
    max_texts: int = 3000,
    log: Callable[[str], None] = print,
) -> Iterator[tuple[str, Any, FloatArray]]:
    """``(name, dataset, input embeddings)`` for each set of a dataset group (``"dev"``/``"test"``):
    each set stratified-subsampled to ``max_texts`` and embedded by ``embed_inputs`` once, cached
    under ``<cache_dir>/fewshot-embeddings`` by ``model_key`` (:func:`model_cache_key`)."""
    from labelwise.evaluation import datasets

    for name in datasets.GROUPS[group]:
        ds = datasets.load(name, cache_dir, max_texts)
        cache = cache_dir / "fewshot-embeddings"
        X = cached_embeddings(embed_inputs, list(ds.texts), cache, f"{model_key}-{name}-input", log=log)
        yield name, ds, X


def git_revision(root: Path | None = None) -> str:
    """``git rev-parse HEAD`` of ``root`` (the current directory when None), ``"unknown"`` outside
    a checkout: what result files record beside :func:`model_cache_key`."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def learner_probabilities(learner: MixtureLearner, X: FloatArray, classes: Sequence[str]) -> FloatArray:
    """Probabilities with columns in ``classes`` order (labels never trained get 0)."""
    P = learner.predict_proba(X)
    out = np.zeros((len(X), len(classes)), dtype=np.float32)
    index = {lab: j for j, lab in enumerate(learner.labels)}
    for c, lab in enumerate(classes):
        if lab in index:
            out[:, c] = P[:, index[lab]]
    return out


def split_calls(n: int, calls: int, seed: int, labels: Sequence[Any] | None = None) -> list[list[int]]:
    """A seeded shuffle of ``range(n)`` cut into ``calls`` consecutive, nearly equal parts: the same
    examples sent in another order over several ``/v1/train`` calls (order-robustness check).

    With ``labels`` (``labels[i]`` is example ``i``'s label), the first part holds at least two
    distinct labels whenever the examples have two, as the API requires of the call that creates a
    classifier: if the shuffle put one label alone in front, the first later example of another
    label swaps places with the first part's last one."""
    order = np.random.default_rng([seed, n, 104729]).permutation(n)
    parts = [part for part in np.array_split(order, calls) if part.size]
    if labels is not None and len(parts) > 1 and len({labels[int(i)] for i in parts[0]}) < 2:
        first = labels[int(parts[0][0])]
        for part in parts[1:]:
            other = [j for j, i in enumerate(part) if labels[int(i)] != first]
            if other:
                j = other[0]
                part[j], parts[0][-1] = parts[0][-1], part[j]
                break
    return [[int(i) for i in part] for part in parts]


def agreement(P: npt.ArrayLike, Q: npt.ArrayLike) -> float:
    """Share of rows whose top label is the same under ``P`` and ``Q``."""
    a, b = np.asarray(P), np.asarray(Q)
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


# --------------------------------------------------------------------------- baselines
def zero_shot_probabilities(X: FloatArray, L: FloatArray, temperature: float) -> FloatArray:
    """``softmax(cos(x, label) / T)``: the zero-shot endpoint's scores."""
    from labelwise.classify.scoring import cosine_similarity, softmax

    return softmax(cosine_similarity(X, L), temperature)


#: Inverse regularisation strengths the offline baseline picks from by cross-validation. Unit-norm
#: embeddings of one model sit close together, so scikit-learn's default ``C = 1`` underfits badly
#: (8-class topics: 0.73 vs 0.91 macro-F1 at 128 per label); the baseline should be a strong one.
LOGREG_CS = (0.1, 1.0, 10.0, 100.0, 1000.0)


def offline_logreg(
    Xtr: FloatArray, ytr: IntArray, Xte: FloatArray, n_classes: int, c: float | None = None
) -> FloatArray:
    """Multinomial logistic regression (scikit-learn, lbfgs, L2) probabilities, columns
    ``0..n_classes-1``. ``c=None``: ``C`` chosen from :data:`LOGREG_CS` by stratified 5-fold
    cross-validation (log-loss) on the training sample only (3-fold when a class is smaller)."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    clf: LogisticRegression | LogisticRegressionCV
    counts = np.bincount(np.asarray(ytr, dtype=np.int64))
    smallest = int(counts[counts > 0].min()) if counts.size else 0
    if c is None and smallest >= 3:
        folds = 5 if smallest >= 5 else 3
        clf = LogisticRegressionCV(Cs=list(LOGREG_CS), cv=folds, scoring="neg_log_loss", max_iter=3000)
    else:
        clf = LogisticRegression(C=1.0 if c is None else c, max_iter=3000)
    clf.fit(Xtr, ytr)
    P = np.zeros((len(Xte), n_classes), dtype=np.float32)
    P[:, clf.classes_] = clf.predict_proba(Xte)
    return P


def class_mean_probabilities(
    Xtr: FloatArray,
    ytr: IntArray,
    Xte: FloatArray,
    L: FloatArray,
    alpha: float = 1.0,
    temperature: float = 0.05,
) -> FloatArray:
    """Class mean started from the label embedding: prototype ``(alpha e_k + sum x) / (alpha + n_k)``,
    ``softmax(cos / T)`` (the plain baseline of issue 11; the same formula as the learner's expert,
    :func:`labelwise.learning.experts.class_means`, computed from scratch here)."""
    from labelwise.learning import experts

    n_classes = L.shape[0]
    y = np.asarray(ytr, dtype=np.int64)
    onehot = np.zeros((len(y), n_classes))
    onehot[np.arange(len(y)), y] = 1.0
    protos = experts.class_means(onehot.sum(axis=0), onehot.T @ np.asarray(Xtr, np.float64), L, alpha)
    return experts.class_mean_proba(Xte, protos, temperature).astype(np.float32)


# --------------------------------------------------------------------------- scoring & aggregation
@dataclass(frozen=True)
class Score:
    macro_f1: float
    ece: float
    nll: float


def score(P: npt.ArrayLike, y: IntArray, n_classes: int) -> Score:
    P = np.asarray(P, dtype=np.float64)
    return Score(
        macro_f1(y, P.argmax(axis=1), n_classes),
        expected_calibration_error(P, y),
        negative_log_likelihood(P, y),
    )


@dataclass
class Result:
    """One measurement: ``method`` on ``dataset`` at ``k`` examples per label with ``seed``."""

    dataset: str
    method: str  # "few-shot", "zero-shot", "logreg", or a config label while tuning
    k: int  # 0 for zero-shot
    seed: int
    macro_f1: float
    ece: float | None = None
    nll: float | None = None
    per_label: dict[str, int] = field(default_factory=dict)  # examples actually used
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Aggregate:
    dataset: str
    method: str
    k: int
    n: int  # seeds
    mean: float
    sd: float
    ece: float | None
    capped: bool  # some label had fewer than k examples


def aggregate(results: Iterable[Result]) -> list[Aggregate]:
    """Mean and sample standard deviation (ddof=1; 0 for one seed) of macro-F1 per
    (dataset, method, k), in first-seen order."""
    groups: dict[tuple[str, str, int], list[Result]] = {}
    for r in results:
        groups.setdefault((r.dataset, r.method, r.k), []).append(r)
    out: list[Aggregate] = []
    for (ds, method, k), rs in groups.items():
        f1 = np.array([r.macro_f1 for r in rs], dtype=np.float64)
        eces = [r.ece for r in rs if r.ece is not None]
        capped = any(k > 0 and any(v < k for v in r.per_label.values()) for r in rs)
        out.append(
            Aggregate(
                ds,
                method,
                k,
                len(rs),
                float(f1.mean()),
                float(f1.std(ddof=1)) if len(rs) > 1 else 0.0,
                float(np.mean(eces)) if eces else None,
                capped,
            )
        )
    return out


def lookup(aggs: Iterable[Aggregate]) -> dict[tuple[str, str, int], Aggregate]:
    return {(a.dataset, a.method, a.k): a for a in aggs}


@dataclass(frozen=True)
class GoalCheck:
    dataset: str
    k: int
    few_shot: float
    reference: float
    margin: float  # few_shot - reference
    ok: bool


#: Issue 11's goals: few-shot >= max(zero-shot, logistic regression) - 0.02 at every size up to
#: :data:`SMALL_MAX_K`, and >= logistic regression - 0.01 at :data:`OFFLINE_SIZE` per label.
SMALL_SLACK = 0.02
SMALL_MAX_K = 32
LARGE_SLACK = 0.01


def check_goals(aggs: Sequence[Aggregate]) -> tuple[list[GoalCheck], list[GoalCheck]]:
    """(small sizes: few-shot vs max(zero-shot, logreg at that size) - 0.02 for every k <= 32,
    large: few-shot vs logreg - 0.01 at k = 128), on mean macro-F1 over seeds."""
    table = lookup(aggs)
    small, large = [], []
    for a in aggs:
        if a.method != "few-shot":
            continue
        zs = table.get((a.dataset, "zero-shot", 0))
        lr = table.get((a.dataset, "logreg", a.k))
        refs = [r.mean for r in (zs, lr) if r is not None]
        if a.k <= SMALL_MAX_K and refs:
            m = a.mean - max(refs)
            small.append(GoalCheck(a.dataset, a.k, a.mean, max(refs), m, m >= -SMALL_SLACK))
        if a.k == OFFLINE_SIZE and lr is not None:
            m = a.mean - lr.mean
            large.append(GoalCheck(a.dataset, a.k, a.mean, lr.mean, m, m >= -LARGE_SLACK))
    return small, large


# --------------------------------------------------------------------------- embeddings cache
def _digest(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:20]


def cached_embeddings(
    embed: Callable[[Sequence[str]], FloatArray],
    texts: Sequence[str],
    cache_dir: Path,
    key: str,
    chunk: int = 256,
    log: Callable[[str], None] | None = None,
) -> FloatArray:
    """``embed(texts)`` memoised in ``cache_dir/<key>-<sha of texts>.npy`` (computed in chunks)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{key}-{_digest(texts)}.npy"
    if path.exists():
        arr: FloatArray = np.load(path)
        if arr.shape[0] == len(texts):
            return arr
    parts = []
    for start in range(0, len(texts), chunk):
        parts.append(np.asarray(embed(list(texts[start : start + chunk])), dtype=np.float32))
        if log:
            log(f"{key}: embedded {min(start + chunk, len(texts))}/{len(texts)}")
    out = np.vstack(parts) if parts else np.zeros((0, 0), np.float32)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.replace(path)
    return out


def model_cache_key(model_dir: Path) -> str:
    """A short id of a built model (its manifest's file hashes, and its windows per call, which
    change the vectors under dynamic int8), for cache file names and result files."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    blob = json.dumps(manifest.get("files", {}), sort_keys=True) + manifest.get("name", "")
    if manifest.get("batch_size", 8) != 8:
        blob += f"/batch_size={manifest['batch_size']}"
    return f"{manifest.get('name', model_dir.name)}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def to_jsonable(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return {k: to_jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
