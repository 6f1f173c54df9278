"""The ModelLayer recipe (layers/model/Makefile) copies the built models with modes Lambda can read.

Lambda unpacks a layer under /opt with the modes stored in its zip and runs the function as a user
that is not the files' owner: a model file copied as 0600 (onnx writes ``model.onnx.data`` so) would
be unreadable there. The recipe's model copy runs here on a fake model directory (no pip, no build).
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKEFILE = REPO / "layers" / "model" / "Makefile"
MODELS = ("multilingual-e5-small", "all-minilm-l6-v2")
FILES = ("model.onnx", "model.onnx.data", "tokenizer.json", "manifest.json")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_models_are_copied_into_the_layer_world_readable(tmp_path: Path) -> None:
    # Given built models whose files and directories only their owner may read (0600 / 0700)
    src = tmp_path / "src"
    for model in MODELS:
        (src / model).mkdir(parents=True)
        for name in FILES:
            (src / model / name).write_bytes(f"{model}/{name}".encode())
            (src / model / name).chmod(0o600)
        (src / model).chmod(0o700)
    out = tmp_path / "layer"
    out.mkdir()
    # And an existing copy from an earlier build, which must be replaced
    (out / "models" / "stale").mkdir(parents=True)

    # When the recipe copies them into the layer (MODEL_SRC given: used as is, nothing is built)
    subprocess.run(
        ["make", "-s", "-f", str(MAKEFILE), "layer-models", f"ARTIFACTS_DIR={out}", f"MODEL_SRC={src}"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )

    # Then every model file is 0644 and every directory 0755, whatever the source modes were
    assert sorted(p.name for p in (out / "models").iterdir()) == sorted(MODELS)
    assert mode(out / "models") == 0o755
    for model in MODELS:
        assert mode(out / "models" / model) == 0o755, model
        assert sorted(p.name for p in (out / "models" / model).iterdir()) == sorted(FILES)
        for name in FILES:
            copied = out / "models" / model / name
            assert mode(copied) == 0o644, (model, name, oct(mode(copied)))
            assert copied.read_bytes() == f"{model}/{name}".encode()
