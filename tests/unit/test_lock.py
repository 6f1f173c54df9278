"""requirements.lock (used by `make venv`, CI and `make audit`) agrees with what ships.

The Lambda artifacts pin their own wheels (functions/*/requirements.txt for cp312, the model layer's
layers/model/requirements.txt); a version there that differs from the lock would ship code the tests
never ran. ``make lock`` re-resolves the lock from pyproject.toml.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
SHIPPED = sorted(
    [*(REPO / "functions").glob("*/requirements.txt"), REPO / "layers" / "model" / "requirements.txt"]
)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line.strip())
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


def requirement_name(spec: str) -> str:
    return canonical(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0])


def test_every_lock_entry_is_an_exact_hashed_pin() -> None:
    # Given the lock file
    text = LOCK.read_text(encoding="utf-8")
    entries = [line for line in text.splitlines() if line and not line[0].isspace() and line[0] != "#"]
    # Then every entry is name==version with hashes, and the project itself is not in it
    assert entries, "requirements.lock is empty"
    for entry in entries:
        assert PIN.match(entry), f"not an exact pin: {entry}"
        assert entry.rstrip().endswith("\\"), f"no --hash for {entry}"
    assert "labelwise" not in pins(LOCK)


def test_lock_covers_runtime_dev_and_build_requirements() -> None:
    # Given pyproject's runtime dependencies and the [dev] and [build] extras
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    wanted = {
        requirement_name(spec)
        for spec in [*project["dependencies"], *extras["dev"], *extras["build"]]
        if requirement_name(spec) != "labelwise"
    }
    # Then each one is pinned in the lock
    missing = sorted(wanted - set(pins(LOCK)))
    assert not missing, f"not in requirements.lock (run `make lock`): {missing}"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_pins_agree_with_the_lock(path: Path) -> None:
    # Given a Lambda artifact's pins and the lock
    locked = pins(LOCK)
    # Then every package both pin has the same version
    differ = {
        name: (version, locked[name])
        for name, version in pins(path).items()
        if name in locked and locked[name] != version
    }
    assert not differ, f"{path.relative_to(REPO)} vs requirements.lock (shipped, locked): {differ}"
