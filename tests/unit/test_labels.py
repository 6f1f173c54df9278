"""distinctive_labels: the words that tell a group's labels apart, against a naive reference."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from labelwise.classify.labels import distinctive_labels


def naive_distinctive(labels: list[str]) -> list[str]:
    """Reference: try every (head, tail) cut, keep the largest one that leaves every label a word."""
    if len(labels) < 2:
        return list(labels)
    rows = [label.split() for label in labels]
    key = lambda w: re.sub(r"[^\w]", "", w.casefold())  # noqa: E731
    head = 0
    while all(len(r) > head + 1 for r in rows) and len({key(r[head]) for r in rows}) == 1:
        head += 1
    tail = 0
    while all(len(r) - head > tail + 1 for r in rows) and len({key(r[-1 - tail]) for r in rows}) == 1:
        tail += 1
    if head == tail == 0:
        return list(labels)
    out = [re.sub(r"[\s.,;:!?]+$", "", " ".join(r[head : len(r) - tail])) for r in rows]
    if any(not key(o) for o in out) or len(set(out)) < len(out):
        return list(labels)
    return out


def test_shared_frames_are_stripped() -> None:
    # Given the natural wordings of issue 11's panel
    # When their distinctive parts are taken
    # Then only the class words remain
    assert distinctive_labels(["positive review", "negative review"]) == ["positive", "negative"]
    assert distinctive_labels(["positive sentiment", "negative sentiment"]) == ["positive", "negative"]
    assert distinctive_labels(["This text is positive.", "This text is negative."]) == [
        "positive",
        "negative",
    ]
    assert distinctive_labels(["Sports news", "World news", "Business news"]) == [
        "Sports",
        "World",
        "Business",
    ]


def test_labels_keep_at_least_one_word_and_singletons_are_unchanged() -> None:
    # Given labels whose shared word is all of one label, or a single label
    # Then nothing is stripped
    assert distinctive_labels(["not spam", "spam"]) == ["not spam", "spam"]
    assert distinctive_labels(["This text is spam.", "This text is not spam."]) == ["spam", "not spam"]
    assert distinctive_labels(["positive review"]) == ["positive review"]
    assert distinctive_labels(["fact", "opinion"]) == ["fact", "opinion"]


def test_input_is_not_mutated() -> None:
    labels = ["positive review", "negative review"]
    distinctive_labels(labels)
    assert labels == ["positive review", "negative review"]


words = st.sampled_from(["review", "the", "positive", "negative", "Review.", "news", "a", "spam", "not"])
label = st.lists(words, min_size=1, max_size=5).map(" ".join)


@given(st.lists(label, min_size=1, max_size=4, unique=True))
def test_matches_naive_reference_and_keeps_labels_distinct(labels: list[str]) -> None:
    # Given any distinct labels  When stripped  Then the result matches the reference,
    # has one non-empty, distinct text per label, and is deterministic
    out = distinctive_labels(labels)
    assert out == naive_distinctive(labels)
    assert len(out) == len(labels)
    assert all(o.strip() for o in out)
    assert len(set(out)) == len(out)
    assert distinctive_labels(labels) == out
