"""``labelwise evaluate``: reading the user's file, refusing bad input (exit 2), the split, the sizes,
the "examples needed" answer, and the whole run over fake services (no classifier left behind)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from labelwise.cli import main
from labelwise.embedding.registry import ModelRegistry
from labelwise.evaluation import user
from labelwise.evaluation.user import (
    DataError,
    LabelledData,
    ServiceEngine,
    check_labelled,
    curve_sizes,
    examples_needed,
    holdout,
    read_labelled,
)
from labelwise.services import Services
from labelwise.settings import Settings
from labelwise.storage.memory import MemoryClassifierStore
from tests.support.fakes import HashingEmbedder

BILLING = ["invoice billing", "billing refund", "invoice refund", "billing charge", "refund charge"]
LOGIN = ["password login", "login reset", "password reset", "login account", "account password"]


def write_csv(path: Path, rows: Sequence[tuple[str, str]], header: str = "text,label") -> Path:
    path.write_text(header + "\n" + "".join(f"{t},{lab}\n" for t, lab in rows), encoding="utf-8")
    return path


def two_labels(n: int = 5) -> list[tuple[str, str]]:
    return [(t, "billing") for t in BILLING[:n]] + [(t, "login") for t in LOGIN[:n]]


# ------------------------------------------------------------------------------------ reading
def test_reads_csv_and_jsonl_alike(tmp_path: Path) -> None:
    # Given the same rows as CSV (with a BOM and an extra column) and as JSONL (an integer label)
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("\ufeffid,body,tag\n1,hello there,1\n2, ,1\n3,bye now,0\n", encoding="utf-8")
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(
        '{"body": "hello there", "tag": 1}\n\n{"body": "", "tag": 1}\n{"body": "bye now", "tag": 0}\n',
        encoding="utf-8",
    )
    # When both are read with the column names given
    a = read_labelled(csv_path, "body", "tag")
    b = read_labelled(jsonl, "body", "tag")
    # Then they give the same examples, labels as text, the empty row skipped and counted
    assert a == b == LabelledData(["hello there", "bye now"], ["1", "0"], skipped=1)
    assert a.classes == ["0", "1"] and a.counts() == {"0": 1, "1": 1}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "d.csv",
            "body,label\nhi,a\n",
            "no column 'text' (columns found: 'body', 'label'); name the right one",
        ),
        ("d.jsonl", '{"text": "hi"}\n', "no column 'label'"),
        ("d.xlsx", "PK", "unsupported file type '.xlsx'"),
        ("d.jsonl", '{"text": "hi", "label": "a"}\nnot json\n', "line 2 is not JSON"),
        ("d.jsonl", '["hi", "a"]\n', "line 1 is not a JSON object"),
    ],
)
def test_unusable_files_are_refused_with_what_to_fix(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    # Given a file that cannot be evaluated
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    # When it is read, Then the error says why
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_labelled(path)


def test_a_file_that_is_not_text_or_is_missing_is_unreadable(tmp_path: Path) -> None:
    # Given bytes that are not UTF-8, and a path with no file
    binary = tmp_path / "d.csv"
    binary.write_bytes(b"text,label\n\xff\xfe,a\n")
    # When / Then: both are refused as unreadable
    for path in (binary, tmp_path / "missing.csv"):
        with pytest.raises(DataError, match="cannot read the file"):
            read_labelled(path)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("a", "x"), ("b", "x")], r"only one label \('x'\)"),
        ([("a", "x"), ("b", "x"), ("c", "y")], r"at least 2 examples .*'y' \(1\)"),
        ([], "no labelled rows"),
    ],
)
def test_data_that_cannot_make_a_classifier_is_refused(rows: list[tuple[str, str]], message: str) -> None:
    # Given rows with one label, or a label with a single example, or none at all
    data = LabelledData([t for t, _ in rows], [lab for _, lab in rows])
    # When / Then
    with pytest.raises(DataError, match=message):
        check_labelled(data)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LABELWISE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LABELWISE_MODEL_DIR", str(tmp_path / "no-models"))
    return tmp_path


@pytest.mark.parametrize(
    ("rows", "args", "message"),
    [
        (two_labels(), ["--label-column", "topic"], "no column 'topic'"),
        ([("a", "x"), ("b", "x"), ("c", "x")], [], "only one label"),
        ([("a", "x"), ("b", "x"), ("c", "y")], [], "at least 2 examples"),
    ],
)
def test_cli_exits_2_on_bad_input(
    cli_env: Path,
    capsys: pytest.CaptureFixture[str],
    rows: list[tuple[str, str]],
    args: list[str],
    message: str,
) -> None:
    # Given a labelled file with a problem
    path = write_csv(cli_env / "d.csv", rows)
    # When `labelwise evaluate` runs on it
    code = main(["evaluate", str(path), "--out", str(cli_env / "out"), *args])
    # Then it exits 2 with a clear message on stderr, and writes nothing
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (cli_env / "out").exists()


def test_cli_exits_2_on_an_unreadable_file(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a path where there is no file
    # When `labelwise evaluate` runs on it
    code = main(["evaluate", str(cli_env / "nope.jsonl")])
    # Then exit 2: cannot read it
    assert code == 2
    assert "cannot read the file" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ split, sizes
def test_holdout_is_stratified_and_leaves_every_label_something_to_learn() -> None:
    # Given 20 of one label and 2 of another (30% would put both of the small label in test)
    labels = ["big"] * 20 + ["small"] * 2
    # When the test split is held out
    train, test = holdout(labels)
    # Then train and test partition the data, both sides have both labels, and the test is ~30%
    assert sorted(train + test) == list(range(22))
    assert {labels[i] for i in train} == {labels[i] for i in test} == {"big", "small"}
    assert 5 <= len(test) <= 7
    # And it is deterministic
    assert holdout(labels) == (train, test)


def test_curve_sizes_stop_at_what_the_data_allows() -> None:
    # Given / When / Then: the standard sizes below the largest label's count, then that count
    assert curve_sizes({"a": 8, "b": 9}) == [4, 8, 9]
    assert curve_sizes({"a": 500, "b": 3}) == [4, 8, 16, 32, 64, 128]
    assert curve_sizes({"a": 128, "b": 128}) == [4, 8, 16, 32, 64, 128]
    assert curve_sizes({"a": 2, "b": 1}) == [2]
    assert curve_sizes({}) == []


def test_examples_needed_is_where_few_shot_stays_above_zero_shot() -> None:
    # Given a zero-shot macro-F1 of 0.70 and few-shot means per size
    curve = [(4, 0.60), (8, 0.72), (16, 0.69), (32, 0.75), (64, 0.80)]
    # When / Then: 8 beats it once, but only from 32 on does it stay ahead
    assert examples_needed(0.70, curve) == 32
    assert examples_needed(0.50, curve) == 4
    assert examples_needed(0.90, curve) is None
    assert examples_needed(0.75, [(4, 0.75)]) is None  # a tie does not beat it
    assert examples_needed(0.5, []) is None


# ------------------------------------------------------------------------------------ the run
class FakeEngine:
    """Zero-shot is always wrong-ish; few-shot is right from 4 examples per label on."""

    model = "fake"

    def __init__(self) -> None:
        self.alive: set[str] = set()
        self.trained: list[int] = []

    def zero_shot(self, texts: Sequence[str], labels: Sequence[str]) -> np.ndarray:
        return np.tile(np.linspace(1, 0, len(labels)), (len(texts), 1))  # always the first label

    def train(self, texts: Sequence[str], labels: Sequence[str]) -> str:
        cid = f"c{len(self.trained)}"
        self.trained.append(len(texts))
        self.alive.add(cid)
        return cid

    def classify(self, classifier_id: str, texts: Sequence[str], columns: Sequence[str]) -> np.ndarray:
        return np.array([[1.0, 0.0] if t in BILLING else [0.0, 1.0] for t in texts])

    def delete(self, classifier_id: str) -> None:
        self.alive.remove(classifier_id)


def test_evaluate_runs_every_size_and_seed_and_deletes_each_classifier() -> None:
    # Given 5 examples of each of two labels and an engine that counts classifiers
    data = LabelledData(*map(list, zip(*two_labels(), strict=True)))
    train, test = holdout(data.labels)
    engine, steps = FakeEngine(), []
    # When it is evaluated at 2 sizes with 3 seeds
    report = user.evaluate(data, engine, train, test, sizes=[2, 4], seeds=3, on_step=steps.append)
    # Then there is one step for zero-shot and one per (size, seed), each classifier deleted
    assert len(steps) == 1 + 2 * 3 and steps[0] == "zero-shot"
    assert engine.trained == [4, 4, 4, 7, 7, 7] and engine.alive == set()
    # And the scores, the answer and the table follow
    assert report.zero_shot.macro_f1 < 0.5 and [a.mean for a in report.curve] == [1.0, 1.0]
    assert report.needed == 2
    table = user.render_report(report)
    assert "few-shot          4*" in table and "per-label F1 at 4 per label" in table
    assert "Few-shot beats zero-shot (macro-F1 0.400) from 2 examples per label" in table


def fake_services(settings: Settings) -> Services:
    return Services(
        settings=settings,
        registry=ModelRegistry.from_embedders([HashingEmbedder()]),
        store=MemoryClassifierStore(),
    )


def test_service_engine_goes_through_the_api_use_cases_and_leaves_nothing(settings: Settings) -> None:
    # Given the API's services over a fake model, with requests of at most 3 items
    engine = ServiceEngine(fake_services(settings.model_copy(update={"max_inputs": 3})), "fake-model")
    data = LabelledData(*map(list, zip(*two_labels(), strict=True)))
    train, test = holdout(data.labels)
    # When zero-shot and few-shot are evaluated (train and classify in several requests)
    report = user.evaluate(data, engine, train, test, sizes=[4], seeds=2)
    # Then every score row is a distribution over both labels, and no classifier is left
    assert report.test_size == len(test) and len(report.few_shot) == 2
    assert all(0.0 <= r.macro_f1 <= 1.0 for r in [report.zero_shot, *report.few_shot])
    assert engine.leftovers() == []


def test_cli_prints_the_table_and_writes_results_and_plot(
    cli_env: Path, settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a labelled CSV and the API's services over a fake model
    path = write_csv(cli_env / "tickets.csv", two_labels())
    engines: list[ServiceEngine] = []

    @contextlib.contextmanager
    def fake_local_engine(settings: Settings, model: str | None = None) -> Iterator[ServiceEngine]:
        engines.append(ServiceEngine(fake_services(settings), model or "fake-model"))
        yield engines[-1]

    monkeypatch.setattr(user, "local_engine", fake_local_engine)
    # When `labelwise evaluate` runs (stderr is not a terminal: no bar)
    code = main(["evaluate", str(path), "--out", str(cli_env / "out"), "--model", "fake-model"])
    # Then it prints the split, the table and the answer
    out, err = capsys.readouterr()
    assert code == 0
    assert "held-out test split: 3 examples (stratified); training pool: 7" in out
    assert "few-shot sizes per label: 4; 3 seeds each" in out
    assert "zero-shot" in out and "per-label F1 at 4 per label" in out and "Few-shot" in out
    assert "[" not in err  # no progress bar off a terminal
    # And results.json holds the run's facts; the plot exists; no classifier is left
    doc = json.loads((cli_env / "out" / "results.json").read_text())
    assert doc["model"] == "fake-model" and doc["model_fingerprint"] == "fake-model"
    assert doc["labels"] == ["billing", "login"] and doc["test_size"] == 3 and doc["sizes"] == [4]
    assert doc["label_counts"] == {"billing": 5, "login": 5} and doc["git_revision"]
    assert len(doc["few_shot"]) == 3 and doc["curve"][0]["k"] == 4 and "examples_needed" in doc
    assert (cli_env / "out" / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert engines[0].leftovers() == []


def test_results_are_written_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a finished evaluation, and no matplotlib installed (it is a dev dependency)
    data = LabelledData(*map(list, zip(*two_labels(), strict=True)))
    train, test = holdout(data.labels)
    report = user.evaluate(data, FakeEngine(), train, test, sizes=[2], seeds=1)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real_find_spec(name, *a),
    )
    # When the outputs are written
    results, png = user.write_outputs(report, tmp_path / "out")
    # Then results.json is there and the plot is skipped, not a crash
    assert png is None and json.loads(results.read_text())["examples_needed"] == 2
    assert not (tmp_path / "out" / "learning_curve.png").exists()
