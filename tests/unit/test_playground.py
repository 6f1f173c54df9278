"""The playground page's route on the local server (no browser: tests/e2e/test_playground.py drives
the page in Chromium) and the shipped assets: local only, installed as package data."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import pytest
import requests

from labelwise.embedding.registry import ModelRegistry
from labelwise.server import PLAYGROUND_FILES, running_server
from labelwise.services import Services
from labelwise.settings import Settings
from tests.support.fakes import HashingEmbedder

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "shared" / "labelwise" / "playground"


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    services = Services(settings=settings, registry=ModelRegistry.from_embedders([HashingEmbedder()]))
    with running_server(services) as url:
        yield url


def test_page_and_assets_are_served_without_a_key(base_url: str) -> None:
    for path, (name, content_type) in PLAYGROUND_FILES.items():
        # When the browser asks for the page or one of its assets (no API key needed)
        r = requests.get(f"{base_url}{path}", timeout=10)
        # Then it gets the shipped file, typed, with a policy that allows this server only
        assert r.status_code == 200, path
        assert r.headers["content-type"] == content_type
        assert r.content == (ASSETS / name).read_bytes()
        policy = r.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert r.headers["x-content-type-options"] == "nosniff"


def test_head_answers_headers_only_and_other_methods_are_refused(base_url: str) -> None:
    # When the page is asked with HEAD
    head = requests.head(f"{base_url}/playground", timeout=10)
    # Then the headers come without a body
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == (ASSETS / "index.html").stat().st_size
    # When it is posted to
    post = requests.post(f"{base_url}/playground", data=b"x", timeout=10)
    # Then it is a 405 in the error envelope, naming the methods served
    assert post.status_code == 405 and post.json()["code"] == "METHOD_NOT_ALLOWED"
    assert "GET" in post.headers["allow"]


def test_unknown_playground_paths_are_not_files(base_url: str) -> None:
    # When a path next to the assets is asked for (a traversal, a file not served)
    for path in ("/playground/../pyproject.toml", "/playground/server.py", "/playground/index.html"):
        r = requests.get(f"{base_url}{path}", timeout=10)
        # Then nothing from the package is served
        assert r.status_code == 404, path


def test_assets_load_nothing_from_another_host() -> None:
    # Given every shipped asset
    files = sorted(ASSETS.iterdir())
    assert {f.name for f in files} == {name for name, _ in PLAYGROUND_FILES.values()}
    for file in files:
        text = file.read_text()
        # Then none names another host (absolute or protocol-relative URLs)
        assert not re.search(r"https?://|(src|href)\s*=\s*[\"']//|url\(\s*[\"']?//", text), file.name
        assert "@import" not in text and 'fetch("http' not in text
    # And the page's own references are paths on this server
    html = (ASSETS / "index.html").read_text()
    references = re.findall(r"(?:src|href)=\"([^\"]*)\"", html)
    assert references and all(ref.startswith("/") and not ref.startswith("//") for ref in references)


def test_the_key_is_kept_in_session_storage_only() -> None:
    script = (ASSETS / "playground.js").read_text()
    assert "sessionStorage.setItem" in script
    assert "localStorage." not in script and "document.cookie" not in script


def test_assets_are_package_data() -> None:
    # Given pyproject's package data for labelwise
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    # Then every asset is installed with the package
    for name, _ in PLAYGROUND_FILES.values():
        assert any(fnmatch(f"playground/{name}", p) for p in patterns["labelwise"]), name
