"""The multi-label evaluation helpers: ARFF rows, the two-label Reuters set, sampling, F1, sigmoid fit."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.evaluation import multilabel as ev


def _arff(rows: list[tuple[str, int]]) -> str:
    body = "\n".join(f"'{text}',{label}" for text, label in rows)
    return f"@relation x\n\n@attribute Text string\n@attribute class-att {{0,1}}\n\n@data\n\n{body}\n"


def test_reuters_set_joins_the_corn_and_grain_files() -> None:
    # Given the four ARFF files, the same stories in the corn and the grain pair (one repeated)
    stories = ["CORN UP\\nin Iowa", "GRAIN \\'AND\\' CORN", "COCOA falls", "CORN UP\\nin Iowa"]
    files = {
        "ReutersCorn-train.arff": _arff([(stories[0], 1), (stories[1], 1), (stories[2], 0)]),
        "ReutersGrain-train.arff": _arff([(stories[0], 0), (stories[1], 1), (stories[2], 0)]),
        "ReutersCorn-test.arff": _arff([(stories[3], 1)]),
        "ReutersGrain-test.arff": _arff([(stories[3], 1)]),
    }
    # When read as one multi-label set
    data = ev.reuters_from_files(files)
    # Then each distinct story carries the union of its labels, escapes undone
    assert data.texts == ("CORN UP in Iowa", "GRAIN 'AND' CORN", "COCOA falls")
    assert data.label_sets == (frozenset({"corn", "grain"}), frozenset({"corn", "grain"}), frozenset())
    assert data.targets().tolist() == [[True, True], [True, True], [False, False]]


def test_files_listing_different_stories_are_refused() -> None:
    files = {
        "ReutersCorn-train.arff": _arff([("A", 1)]),
        "ReutersGrain-train.arff": _arff([("B", 1)]),
        "ReutersCorn-test.arff": _arff([]),
        "ReutersGrain-test.arff": _arff([]),
    }
    with pytest.raises(ValueError, match="different stories"):
        ev.reuters_from_files(files)


def test_samples_are_nested_capped_and_disjoint_from_the_test_set() -> None:
    # Given a set with 10 corn, 40 grain (5 of them both) and 100 stories of neither
    sets = [{"corn"}] * 5 + [{"corn", "grain"}] * 5 + [{"grain"}] * 35 + [set()] * 100
    data = ev.MultiLabelSet(
        "x", tuple(f"t{i}" for i in range(len(sets))), tuple(map(frozenset, sets)), ev.REUTERS_LABELS
    )
    # When sampling 8 and 32 per label
    train8, _, taken8 = ev.sample_examples(data, 8, seed=1)
    train32, test32, taken32 = ev.sample_examples(data, 32, seed=1)
    # Then corn is capped at half of its stories, the smaller sample is inside the larger one, and
    # train and test split the set
    assert taken8 == {"corn": 5, "grain": 8, "": 8} and taken32 == {"corn": 5, "grain": 20, "": 32}
    assert set(train8) <= set(train32)
    assert sorted(train32 + test32) == list(range(len(sets))) and not set(train32) & set(test32)


def test_f1_matches_a_per_label_count() -> None:
    # Given random predictions and gold labels
    rng = np.random.default_rng(0)
    pred, gold = rng.random((50, 3)) < 0.4, rng.random((50, 3)) < 0.3
    # When scored
    f1 = ev.multilabel_f1(pred, gold)
    # Then micro pools the counts and macro averages per-label F1
    per_label = []
    for k in range(3):
        tp = sum(p and g for p, g in zip(pred[:, k], gold[:, k], strict=True))
        fp = sum(p and not g for p, g in zip(pred[:, k], gold[:, k], strict=True))
        fn = sum(g and not p for p, g in zip(pred[:, k], gold[:, k], strict=True))
        per_label.append((tp, fp, fn))
    tp, fp, fn = (sum(c[i] for c in per_label) for i in range(3))
    assert f1.micro == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert f1.macro == pytest.approx(np.mean([2 * a / (2 * a + b + c) for a, b, c in per_label]))


def test_sigmoid_fit_weighs_each_set_the_same() -> None:
    # Given two sets drawn from the same sigmoid, one ten times larger
    rng = np.random.default_rng(1)
    sims, targets = [], []
    for n in (2000, 20000):
        cos = rng.uniform(0.5, 1.0, n)
        sims.append(cos)
        targets.append(rng.random(n) < 1 / (1 + np.exp(-(cos - 0.75) / 0.04)))
    # When fitted
    bias, temperature = ev.fit_sigmoid(sims, targets)
    # Then the generating parameters come back
    assert bias == pytest.approx(0.75, abs=0.01) and temperature == pytest.approx(0.04, abs=0.005)
