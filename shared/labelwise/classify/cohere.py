"""Cohere-compatible classify: examples in the request, a classifier learned and discarded.

The examples' classifier is the same passive-aggressive learner ``/v1/train`` uses (label-embedding
prior rows, then the examples), fitted inside the request. Learned classifiers are cached by the
content hash of (model, examples), so a client that sends the same examples with every request
(Cohere's usual pattern) pays for embedding and learning once. ``model`` may instead name a stored
labelwise classifier, which is then used as ``/v1/classify`` with ``classifier_id`` would.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass

import numpy as np

from labelwise.api.cohere_schemas import (
    CohereBilledUnits,
    CohereClassification,
    CohereClassifyRequest,
    CohereClassifyResponse,
    CohereLabelConfidence,
    CohereMeta,
)
from labelwise.classify import fewshot
from labelwise.classify.response_size import check_response_size, cohere_bytes_bound
from labelwise.classify.zeroshot import zeroshot_label_vectors
from labelwise.embedding.port import Embedder, Truncate
from labelwise.errors import (
    InputLimitExceeded,
    InvalidInput,
    InvalidLabels,
    LabelLimitExceeded,
    ModelNotFound,
)
from labelwise.learning.mixture import MixtureLearner
from labelwise.learning.pa import seed_for
from labelwise.runtime import Services
from labelwise.storage.ports import ApiKeyRecord

MAX_INPUTS = 96
MAX_EXAMPLES = 2500
MAX_EXAMPLE_TOKENS = 512
MIN_EXAMPLES_PER_LABEL = 2
CACHE_SIZE = 32

TRUNCATE: dict[str, Truncate] = {"END": "end", "START": "start", "NONE": "none"}


@dataclass(frozen=True)
class _Learned:
    learner: MixtureLearner
    tokens: int  # tokens embedded to learn it (billed on the request that learned it)


class ExampleClassifierCache:
    """Bounded LRU of classifiers learned from example sets, keyed by content hash. Thread-safe."""

    def __init__(self, maxsize: int = CACHE_SIZE) -> None:
        self._maxsize = maxsize
        self._items: OrderedDict[str, _Learned] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> _Learned | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: str, item: _Learned) -> None:
        with self._lock:
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self._maxsize:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


EXAMPLE_CLASSIFIERS = ExampleClassifierCache()


def examples_key(model: str, examples: list[tuple[str, str]]) -> str:
    """Content hash of an example set for one model (order matters: it seeds the learner)."""
    payload = json.dumps([model, examples], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _validate_inputs(inputs: list[str]) -> None:
    if not inputs:
        raise InvalidInput("`inputs` must contain at least one text.")
    if len(inputs) > MAX_INPUTS:
        raise InputLimitExceeded(f"`inputs` has {len(inputs)} texts; at most {MAX_INPUTS} are allowed.")
    for i, text in enumerate(inputs):
        if not text.strip():
            raise InvalidInput(f"`inputs[{i}]` is empty; inputs must be non-empty text.")


def _validate_examples(
    examples: list[tuple[str, str]], embedder: Embedder, max_labels: int, max_label_chars: int
) -> list[str]:
    if len(examples) > MAX_EXAMPLES:
        raise InputLimitExceeded(f"`examples` has {len(examples)} items; at most {MAX_EXAMPLES} are allowed.")
    for i, (text, label) in enumerate(examples):
        if not text.strip():
            raise InvalidInput(f"`examples[{i}].text` is empty.")
        if not label.strip():
            raise InvalidLabels(f"`examples[{i}].label` is empty.")
        if len(label) > max_label_chars:
            raise InvalidLabels(
                f"`examples[{i}].label` is {len(label)} characters long; at most {max_label_chars} "
                "are allowed (as for labels)."
            )
    counts = Counter(label for _, label in examples)
    if len(counts) < 2:
        raise InvalidLabels("`examples` must contain at least 2 distinct labels.")
    if len(counts) > max_labels:
        raise LabelLimitExceeded(f"`examples` has {len(counts)} labels; at most {max_labels} are allowed.")
    few = sorted(label for label, n in counts.items() if n < MIN_EXAMPLES_PER_LABEL)
    if few:
        raise InvalidLabels(
            f"Each label needs at least {MIN_EXAMPLES_PER_LABEL} examples; too few for: {few}."
        )
    lengths = embedder.count_tokens([text for text, _ in examples], "input")
    too_long = [i for i, n in enumerate(lengths) if n > MAX_EXAMPLE_TOKENS]
    if too_long:
        raise InvalidInput(
            f"`examples[{too_long[0]}]` is {lengths[too_long[0]]} tokens long; examples may have at most "
            f"{MAX_EXAMPLE_TOKENS} tokens."
        )
    return list(counts)


def _learn(services: Services, embedder: Embedder, examples: list[tuple[str, str]]) -> _Learned:
    """The classifier of ``examples``, learned now or taken from the process-wide cache.

    The cache is shared by every tenant, so what a request is billed must not depend on a hit:
    ``_Learned.tokens`` (what learning the examples costs) is billed either way, or one tenant could
    tell from ``billed_units`` and the rate-limit headers that another sent the same examples."""
    key = examples_key(embedder.manifest.name, examples)
    cached = EXAMPLE_CLASSIFIERS.get(key)
    if cached is not None:
        return cached
    labels = _validate_examples(
        examples, embedder, services.settings.max_labels, services.settings.max_label_chars
    )
    batch = embedder.embed([text for text, _ in examples], "input")
    label_vectors, label_tokens = zeroshot_label_vectors(services.label_cache, embedder, labels)
    learner = fewshot.new_learner(embedder.manifest.dimension, embedder.manifest.temperature)
    learner.add_labels(labels, label_vectors)
    learner.partial_fit(batch.vectors, [label for _, label in examples], seed=seed_for(key, 1))
    learned = _Learned(learner=learner, tokens=batch.total_tokens + sum(label_tokens))
    EXAMPLE_CLASSIFIERS.put(key, learned)
    return learned


def _response(
    inputs: list[str], labels: list[str], probabilities: np.ndarray, tokens: int, warnings: list[str]
) -> CohereClassifyResponse:
    rows = []
    for text, probs in zip(inputs, probabilities, strict=True):
        best = int(np.argmax(probs))
        rows.append(
            CohereClassification(
                id=str(uuid.uuid4()),
                input=text,
                prediction=labels[best],
                predictions=[labels[best]],
                confidence=float(probs[best]),
                confidences=[float(probs[best])],
                labels={
                    label: CohereLabelConfidence(confidence=float(p))
                    for label, p in zip(labels, probs, strict=True)
                },
            )
        )
    return CohereClassifyResponse(
        id=str(uuid.uuid4()),
        classifications=rows,
        meta=CohereMeta(
            billed_units=CohereBilledUnits(input_tokens=tokens, classifications=len(rows)),
            warnings=warnings or None,
        ),
    )


def classify(
    request: CohereClassifyRequest, services: Services, caller: ApiKeyRecord
) -> CohereClassifyResponse:
    """Answer a Cohere-shaped classify request."""
    if request.preset is not None:
        raise InvalidInput(
            "`preset` is not supported by labelwise: send `examples` (and optionally `model`)."
        )
    _validate_inputs(request.inputs)
    truncate = TRUNCATE[request.truncate]
    examples = [(e.text, e.label) for e in request.examples or []]

    model_name: str | None
    try:
        model_name = services.registry.resolve_name(request.model)
    except ModelNotFound:
        if request.model is None:
            raise
        model_name = None  # not a model: a stored classifier's id
    if model_name is None:
        if examples:
            raise InvalidInput(
                "`examples` cannot be combined with a stored classifier in `model`; "
                "add examples to it with POST /v1/train."
            )
        result = fewshot.classify_with_classifier(
            services.registry, services.store, services.settings, caller,
            classifier_id=str(request.model), texts=request.inputs, truncate=truncate,
        )  # fmt: skip
        check_response_size(
            cohere_bytes_bound(request.inputs, list(result.labels)),
            services.settings.max_response_bytes,
            "Send fewer inputs per request.",
        )
        return _response(request.inputs, result.labels, result.probabilities, result.total_tokens, [])

    if not examples:
        raise InvalidInput("`examples` is required unless `model` is the id of a stored classifier.")
    embedder = services.registry.get(model_name)
    learned = _learn(services, embedder, examples)
    check_response_size(
        cohere_bytes_bound(request.inputs, learned.learner.labels),
        services.settings.max_response_bytes,
        "Send fewer inputs per request.",
    )
    batch = embedder.embed(request.inputs, "input", truncate=truncate)
    probabilities = learned.learner.predict_proba(batch.vectors)
    warnings = [f"inputs[{i}] was truncated to the model window" for i, t in enumerate(batch.truncated) if t]
    tokens = batch.total_tokens + learned.tokens
    return _response(request.inputs, learned.learner.labels, probabilities, tokens, warnings)
