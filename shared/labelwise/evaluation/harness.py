"""The real API for evaluation runs: in this process (:func:`local_api`) and its client (:class:`ApiClient`).

:func:`local_api` serves the API on a free loopback port with a temporary data dir and auth off,
optionally over given embedders (the engine under test) instead of the built models; the scripts
then measure the product exactly as a user reaches it, over HTTP.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from labelwise.settings import Settings


@contextlib.contextmanager
def local_api(
    settings: Settings, embedders: Sequence[Any] | None = None, *, request_limits: bool = True
) -> Iterator[str]:
    """The real API on a free loopback port in this process (temp data dir, auth off); yields its URL.

    ``embedders`` (objects of the ``Embedder`` port) replace the models of ``settings.model_dir``;
    the settings' default model is the default when it is among them, else the first.
    ``request_limits=False`` drops the operational per-request limits (the Lambda-sized token cap
    and time budget), which refuse a test split of long texts in one request and change nothing
    that is learned or scored.
    """
    from labelwise.embedding.registry import ModelRegistry
    from labelwise.runtime import build_services
    from labelwise.server import running_server
    from labelwise.services import Services

    with tempfile.TemporaryDirectory(prefix="labelwise-eval-") as tmp:
        env = {
            **os.environ,
            "LABELWISE_DATA_DIR": tmp,
            "LABELWISE_REQUIRE_AUTH": "false",
            "LABELWISE_MODEL_DIR": str(settings.model_dir),
            "LABELWISE_CACHE_DIR": str(settings.cache_dir),
        }
        s = Settings.from_environ(env)
        if not request_limits:
            s = s.model_copy(update={"require_auth": False, "max_request_tokens": 0, "request_budget_s": 1e6})
        services = build_services(s)
        if embedders:
            names = [e.manifest.name for e in embedders]
            default = s.default_model if s.default_model in names else names[0]
            services = Services(
                settings=s,
                registry=ModelRegistry.from_embedders(list(embedders), default),
                store=services.store,
                keys=services.keys,
                label_cache=services.label_cache,
            )
        with running_server(services, "127.0.0.1", 0) as url:
            yield url


class ApiClient:
    """``/v1/train``, ``/v1/classify`` and ``DELETE /v1/classifiers``, at most ``chunk`` items a request."""

    def __init__(
        self, base_url: str, api_key: str | None = None, *, chunk: int = 1024, timeout: float = 900
    ) -> None:
        import requests

        self.base = base_url.rstrip("/")
        self.chunk = chunk
        self.timeout = timeout
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.session.post(self.base + path, json=body, timeout=self.timeout)
        if r.status_code != 200:
            raise RuntimeError(f"{path} answered {r.status_code}: {r.text[:500]}")
        out: dict[str, Any] = r.json()
        return out

    def train(
        self, model: str, texts: Sequence[str], labels: Sequence[str], num_iters: int | None,
        classifier_id: str | None = None,
    ) -> str:  # fmt: skip
        """Train (or update ``classifier_id``) on ``texts`` with ``labels``; returns the classifier id."""
        cid = classifier_id
        for start in range(0, len(texts), self.chunk):
            end = start + self.chunk
            body: dict[str, Any] = {
                "input": [
                    {"text": t, "label": lab}
                    for t, lab in zip(texts[start:end], labels[start:end], strict=True)
                ]
            }
            if num_iters is not None:
                body["num_iters"] = num_iters
            if cid is None:
                body["model"] = model
            else:
                body["classifier_id"] = cid
            cid = str(self.post("/v1/train", body)["classifier_id"])
        assert cid is not None
        return cid

    def classify(
        self, texts: Sequence[str], columns: Sequence[str], *, classifier_id: str | None = None,
        model: str | None = None, labels: Sequence[str] | None = None, check_top: bool = False,
    ) -> npt.NDArray[np.float64]:  # fmt: skip
        """Scores of ``texts`` in the order of ``columns``: by ``classifier_id``, or zero-shot with
        ``model`` and ``labels`` (default: ``columns``). ``check_top``: fail when an answer's
        ``prediction`` is not its highest score."""
        index = {lab: j for j, lab in enumerate(columns)}
        out = np.zeros((len(texts), len(columns)))
        for start in range(0, len(texts), self.chunk):
            body: dict[str, Any] = {"input": list(texts[start : start + self.chunk])}
            if classifier_id:
                body["classifier_id"] = classifier_id
            else:
                body["model"], body["labels"] = model, list(labels or columns)
            for item in self.post("/v1/classify", body)["data"]:
                row = start + int(item["index"])
                for pred in item["predictions"]:
                    out[row, index[pred["label"]]] = float(pred["score"])
                top = columns[int(np.argmax(out[row]))]
                if check_top and top != item["prediction"] and out[row].max() > out[row].min():
                    raise RuntimeError("prediction disagrees with the highest score")
        return out

    def delete(self, classifier_id: str) -> None:
        self.session.delete(f"{self.base}/v1/classifiers/{classifier_id}", timeout=60)
