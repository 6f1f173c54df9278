"""Progress of ``labelwise classify-file`` and ``labelwise build-model``: a bar with an ETA on a
terminal, nothing otherwise, and the commands' own output unchanged."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import labelwise.modelbuild.__main__ as modelbuild_main
import labelwise.runtime
from labelwise.cli import main
from labelwise.settings import Settings
from labelwise.uploads.local import classify_file, local_config, local_outputs
from tests.support.fakes import FakeStream
from tests.unit.test_uploads_jobs import LABELS, make_services


def tickets(tmp_path: Path, n: int = 40) -> Path:
    path = tmp_path / "tickets.csv"
    path.write_text("id,text\n" + "".join(f"{i},invoice billing {i}\n" for i in range(n)))
    return path


def test_classify_file_reports_bytes_read_and_writes_the_same_results(
    settings: Settings, tmp_path: Path
) -> None:
    # Given a CSV classified once without and once with a progress callback
    (tmp_path / "plain").mkdir()
    path = tickets(tmp_path)
    services = make_services(settings, uploads_part_records=7)
    classify_file(tickets(tmp_path / "plain"), local_config(labels=LABELS), services)
    plain = local_outputs(tmp_path / "plain" / path.name).results.read_bytes()
    reached: list[int] = []
    # When it is classified with the callback (several parts, so several reads)
    outcome = classify_file(path, local_config(labels=LABELS), services, on_read=reached.append)
    # Then the offsets only grow and end at the file's size, and the results are byte-identical
    assert outcome.status == "done"
    assert reached == sorted(reached) and reached[-1] == path.stat().st_size
    assert local_outputs(path).results.read_bytes() == plain


@pytest.mark.parametrize("tty", [False, True])
def test_classify_file_cli_draws_a_bar_only_on_a_terminal(
    tty: bool,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the CLI over fake-model services, and stderr a terminal or not
    path = tickets(tmp_path)
    services = make_services(settings)
    monkeypatch.setattr(labelwise.runtime, "build_services", lambda s: services)
    stderr = FakeStream(tty)
    monkeypatch.setattr(sys, "stderr", stderr)
    # When a file is classified
    code = main(["classify-file", str(path), "--labels", ",".join(LABELS)])
    # Then stdout is the usual summary either way
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("40 classified, 0 rejected of 40 read (")
    assert out.endswith(f"results: {local_outputs(path).results}\nsummary: {local_outputs(path).summary}\n")
    # And a bar with the size read and an ETA is drawn on a terminal only
    size = path.stat().st_size
    if tty:
        assert f"classify [########################] 100% {size} B/{size} B" in stderr.getvalue()
        assert "ETA 0:00\n" in stderr.getvalue()
    else:
        assert "classify [" not in stderr.getvalue()


@pytest.mark.parametrize("tty", [False, True])
def test_build_model_shows_one_step_per_model_on_a_terminal(
    tty: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a builder that records its arguments and prints a line per model
    calls: list[list[str]] = []

    def fake_build(argv: list[str]) -> int:
        calls.append(argv)
        print(f"[modelbuild] built {argv[argv.index('--models') + 1] if '--models' in argv else 'all'}")
        return 0

    monkeypatch.setattr(modelbuild_main, "main", fake_build)
    monkeypatch.setenv("LABELWISE_MODEL_DIR", str(tmp_path / "models"))
    stderr = FakeStream(tty)
    monkeypatch.setattr(sys, "stderr", stderr)
    # When two models are built
    code = main(["build-model", "--", "--models", "all-minilm-l6-v2,efficientnet-lite0", "--check"])
    out = capsys.readouterr().out
    assert code == 0
    out_dir = str(tmp_path / "models")
    if not tty:
        # Then off a terminal the builder runs once, exactly as before, and nothing is drawn
        assert calls == [["--out", out_dir, "--models", "all-minilm-l6-v2,efficientnet-lite0", "--check"]]
        assert stderr.getvalue() == ""
    else:
        # Then on a terminal it runs model by model under a bar that ends at 2/2
        assert calls == [
            ["--out", out_dir, "--check", "--models", "all-minilm-l6-v2"],
            ["--out", out_dir, "--check", "--models", "efficientnet-lite0"],
        ]
        assert "build-model all-minilm-l6-v2 [" in stderr.getvalue()
        assert "build-model [########################] 100% 2/2 models" in stderr.getvalue()
    # And the builder's own lines reach stdout either way
    assert "[modelbuild] built" in out


def test_build_model_leaves_unknown_models_to_the_builder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a terminal and a model name the builder does not know
    calls: list[list[str]] = []
    monkeypatch.setattr(modelbuild_main, "main", lambda argv: calls.append(argv) or 0)
    monkeypatch.setenv("LABELWISE_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(sys, "stderr", FakeStream(True))
    # When it is asked for
    main(["build-model", "--", "--models", "nope"])
    # Then the builder gets the arguments as given (and reports the unknown name itself)
    assert calls == [["--out", str(tmp_path / "models"), "--models", "nope"]]


@pytest.mark.parametrize(
    "argv",
    [
        ["build-model", "--models", "all-minilm-l6-v2", "--check"],
        ["build-model", "--", "--models", "all-minilm-l6-v2", "--check"],
    ],
)
def test_build_model_takes_the_builders_options_with_or_without_a_double_dash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv: list[str]
) -> None:
    # Given the builder stubbed and no terminal
    calls: list[list[str]] = []
    monkeypatch.setattr(modelbuild_main, "main", lambda a: calls.append(a) or 0)
    monkeypatch.setenv("LABELWISE_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(sys, "stderr", FakeStream(False))
    # When `labelwise build-model` is given the builder's options, as the README spells them or after `--`
    code = main(argv)
    # Then the builder gets them
    assert code == 0
    assert calls == [["--out", str(tmp_path / "models"), "--models", "all-minilm-l6-v2", "--check"]]


def test_other_commands_still_refuse_unknown_options(capsys: pytest.CaptureFixture[str]) -> None:
    # When `labelwise serve` is given an option it does not have
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--models", "x"])
    # Then argparse refuses it, naming it
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --models x" in capsys.readouterr().err
