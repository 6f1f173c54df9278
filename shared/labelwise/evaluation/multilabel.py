"""Multi-label evaluation: a public multi-label text set, the few-shot protocol, F1, and the
zero-shot sigmoid calibration.

**Data.** Reuters-21578 (ModApte split, D. D. Lewis; Distribution 1.0) as shipped by the Debian
package ``weka`` (``3.6.14-3``, ``apt-get download``): ``usr/share/doc/weka/examples/
Reuters{Corn,Grain}-{train,test}.arff`` hold the *same* 2,158 newswire stories (1,554 + 604) with a
binary ``corn`` and a binary ``grain`` attribute, so together they are a two-label multi-label set
(69 stories carry ``corn``, 160 ``grain``, 68 both; 1,997 neither). Read from the archive for
measurement, never redistributed. Only two labels, and ``corn`` has 69 stories: at 128 examples per
label the sample is capped (:data:`MAX_TRAIN_SHARE` of a label's stories), and the report says so.

**Protocol** (:func:`sample_examples`): per seed and ``k``, ``k`` stories of each label (nested in
``k``, at most :data:`MAX_TRAIN_SHARE` of the label's stories) plus ``k`` stories of neither label
are the training call; every other story is the test set. Scores are micro- and macro-F1 over the
labels at the default threshold (0.5).

**Zero-shot calibration** (:func:`fit_sigmoid`): the bias and temperature of
``sigmoid((cos - b) / T)``, fitted by logistic regression on every (text, label) pair of the
development sets, each set weighing the same.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from labelwise.evaluation import datasets

F64 = npt.NDArray[np.float64]

WEKA_DEB = ("weka", "3.6.14-3")
WEKA_EXAMPLES = "usr/share/doc/weka/examples"
REUTERS_LABELS = ("corn", "grain")
#: At most this share of a label's stories is sampled for training (the rest stay for testing).
MAX_TRAIN_SHARE = 0.5


@dataclass(frozen=True)
class MultiLabelSet:
    """Texts with a set of gold labels each (possibly empty), over ``classes``."""

    name: str
    texts: tuple[str, ...]
    label_sets: tuple[frozenset[str], ...]
    classes: tuple[str, ...]
    source: str = ""

    def targets(self, indices: Sequence[int] | None = None) -> npt.NDArray[np.bool_]:
        """Gold indicator matrix ``(n, n_classes)`` of ``indices`` (all texts when None)."""
        rows = range(len(self.texts)) if indices is None else indices
        return np.array([[c in self.label_sets[i] for c in self.classes] for i in rows], dtype=bool)


_ARFF_ROW = re.compile(r"^'(?P<text>.*)',(?P<label>[01])\s*$", re.S)


def parse_arff_text_rows(text: str) -> list[tuple[str, bool]]:
    """``(text, positive)`` rows of a Weka string/binary ARFF file (``'escaped text',0|1``).

    >>> parse_arff_text_rows("@data\\n\\n'It\\\\'s a\\\\nstory',1\\n")
    [("It's a\\nstory", True)]
    """
    rows: list[tuple[str, bool]] = []
    body = text.split("@data", 1)[1] if "@data" in text else text
    for line in body.splitlines():
        match = _ARFF_ROW.match(line.strip())
        if match is None:
            continue
        raw = match.group("text")
        story = raw.replace("\\n", "\n").replace("\\'", "'").replace('\\"', '"').replace("\\\\", "\\")
        rows.append((story, match.group("label") == "1"))
    return rows


def reuters_from_files(files: dict[str, str]) -> MultiLabelSet:
    """The two-label set from the four ARFF files (keyed by file name); stories de-duplicated."""
    sets: dict[str, set[str]] = {}
    for split in ("train", "test"):
        corn = parse_arff_text_rows(files[f"ReutersCorn-{split}.arff"])
        grain = parse_arff_text_rows(files[f"ReutersGrain-{split}.arff"])
        if [t for t, _ in corn] != [t for t, _ in grain]:
            raise ValueError(f"the corn and grain {split} files list different stories")
        for (story, is_corn), (_, is_grain) in zip(corn, grain, strict=True):
            labels = sets.setdefault(" ".join(story.split()), set())
            labels.update(label for label, on in zip(REUTERS_LABELS, (is_corn, is_grain), strict=True) if on)
    texts = tuple(sets)
    return MultiLabelSet(
        name="reuters-corn-grain",
        texts=texts,
        label_sets=tuple(frozenset(sets[t]) for t in texts),
        classes=REUTERS_LABELS,
        source=f"Reuters-21578 ModApte (corn, grain) from Debian {WEKA_DEB[0]}={WEKA_DEB[1]}",
    )


def load_reuters_corn_grain(cache_dir: Path) -> MultiLabelSet:
    """Fetch (once) and read the Reuters corn/grain set (module docstring)."""
    deb = datasets.fetch_debian_package(*WEKA_DEB, datasets.datasets_dir(cache_dir))
    return reuters_from_files(datasets.read_deb_members(deb, WEKA_EXAMPLES))


def sample_examples(data: MultiLabelSet, k: int, seed: int) -> tuple[list[int], list[int], dict[str, int]]:
    """Training indices (``k`` per label, nested in ``k``, capped at :data:`MAX_TRAIN_SHARE` of the
    label's stories, plus ``k`` stories of no label), the test indices (all others) and how many
    stories of each label (and ``""``: none) were taken."""
    chosen: dict[int, None] = {}
    taken: dict[str, int] = {}
    for n, label in enumerate((*data.classes, "")):
        members = [i for i, s in enumerate(data.label_sets) if (label in s if label else not s)]
        perm = np.random.default_rng([seed, n]).permutation(len(members))
        m = min(k, int(len(members) * MAX_TRAIN_SHARE))
        for j in perm[:m]:
            chosen.setdefault(members[int(j)])
        taken[label] = m
    train = list(chosen)
    in_train = set(train)
    return train, [i for i in range(len(data.texts)) if i not in in_train], taken


@dataclass(frozen=True)
class F1:
    micro: float
    macro: float


def multilabel_f1(predicted: npt.ArrayLike, gold: npt.ArrayLike) -> F1:
    """Micro-F1 (pooled over labels) and macro-F1 (mean of per-label F1; 0 for a label with no
    true positive).

    >>> multilabel_f1([[1, 0], [1, 1]], [[1, 0], [0, 1]])
    F1(micro=0.8, macro=0.8333333333333333)
    """
    p = np.asarray(predicted, dtype=bool)
    g = np.asarray(gold, dtype=bool)
    tp = (p & g).sum(axis=0).astype(float)
    fp = (p & ~g).sum(axis=0).astype(float)
    fn = (~p & g).sum(axis=0).astype(float)
    denom = 2 * tp + fp + fn
    per_label = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    total = 2 * tp.sum() + fp.sum() + fn.sum()
    return F1(micro=float(2 * tp.sum() / total) if total else 0.0, macro=float(per_label.mean()))


def fit_sigmoid(
    similarities: Sequence[npt.ArrayLike], targets: Sequence[npt.ArrayLike], steps: int = 50
) -> tuple[float, float]:
    """``(bias, temperature)`` of ``p = sigmoid((cos - bias) / temperature)`` maximising the
    likelihood of the binary ``targets``, each ``(similarities[j], targets[j])`` set weighing the
    same (Newton's method on ``a cos + c``; ``T = 1 / a``, ``b = -c / a``).

    >>> rng = np.random.default_rng(0)
    >>> cos = rng.uniform(0.6, 1.0, 20000)
    >>> y = rng.random(20000) < 1 / (1 + np.exp(-(cos - 0.8) / 0.05))
    >>> [round(v, 2) for v in fit_sigmoid([cos], [y])]
    [0.8, 0.05]
    """
    xs = [np.asarray(s, dtype=np.float64).ravel() for s in similarities]
    ys = [np.asarray(t, dtype=np.float64).ravel() for t in targets]
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    w = np.concatenate([np.full(len(s), 1.0 / len(s)) for s in xs])
    features = np.stack([x, np.ones_like(x)], axis=1)
    params = np.array([1.0, 0.0])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(features @ params)))
        grad = features.T @ (w * (p - y))
        hess = (features * (w * p * (1 - p))[:, None]).T @ features + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        params -= step
        if float(np.abs(step).max()) < 1e-12:
            break
    a, c = float(params[0]), float(params[1])
    return -c / a, 1 / a
