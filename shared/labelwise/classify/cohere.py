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
from collections import Counter
from dataclasses import dataclass

import numpy as np

from labelwise.classify import fewshot
from labelwise.classify.budget import check_request_tokens, count_tokens
from labelwise.classify.lru import LRU
from labelwise.classify.response_size import check_response_size, cohere_bytes_bound
from labelwise.classify.zeroshot import LabelEmbeddingCache, zeroshot_label_vectors
from labelwise.embedding.port import Embedder, Truncate
from labelwise.errors import (
    InputLimitExceeded,
    InvalidInput,
    InvalidLabels,
    LabelLimitExceeded,
    ModelNotFound,
)
from labelwise.learning.mixture import MixtureLearner
from labelwise.settings import Settings
from labelwise.storage.ports import ApiKeyRecord, ClassifierStore

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


class ExampleClassifierCache(LRU[str, _Learned]):
    """Bounded LRU of classifiers learned from example sets, keyed by content hash. Thread-safe."""

    def __init__(self, maxsize: int = CACHE_SIZE) -> None:
        super().__init__(maxsize)


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


def _learn(
    settings: Settings, label_cache: LabelEmbeddingCache, embedder: Embedder, examples: list[tuple[str, str]]
) -> _Learned:
    """The classifier of ``examples``, learned now or taken from the process-wide cache.

    The cache is shared by every tenant, so what a request is billed must not depend on a hit:
    ``_Learned.tokens`` (what learning the examples costs) is billed either way, or one tenant could
    tell from ``billed_units`` and the rate-limit headers that another sent the same examples."""
    key = examples_key(embedder.manifest.name, examples)
    cached = EXAMPLE_CLASSIFIERS.get(key)
    if cached is not None:
        return cached
    labels = _validate_examples(examples, embedder, settings.max_labels, settings.max_label_chars)
    batch = embedder.embed([text for text, _ in examples], "input")
    label_vectors, label_tokens = zeroshot_label_vectors(label_cache, embedder, labels)
    learner = fewshot.new_learner(embedder.manifest.dimension, embedder.manifest.temperature)
    learner.add_labels(labels, label_vectors)
    learner.partial_fit(batch.vectors, [label for _, label in examples])
    learned = _Learned(learner=learner, tokens=batch.total_tokens + sum(label_tokens))
    EXAMPLE_CLASSIFIERS.put(key, learned)
    return learned


@dataclass(frozen=True)
class CohereResult:
    """Probabilities of each input (rows, in ``inputs`` order) over ``labels``."""

    inputs: list[str]
    labels: list[str]
    probabilities: np.ndarray  # (len(inputs), len(labels))
    total_tokens: int
    warnings: list[str]
    multi_label: bool = False  # a stored multi-label classifier: independent probabilities


def classify(
    registry: fewshot.EmbedderRegistry,
    store: ClassifierStore,
    settings: Settings,
    label_cache: LabelEmbeddingCache,
    caller: ApiKeyRecord,
    *,
    inputs: list[str],
    examples: list[tuple[str, str]],
    model: str | None = None,
    truncate: str = "END",
    preset: str | None = None,
) -> CohereResult:
    """Answer a Cohere-shaped classify request (``truncate`` is Cohere's ``END``/``START``/``NONE``)."""
    if preset is not None:
        raise InvalidInput(
            "`preset` is not supported by labelwise: send `examples` (and optionally `model`)."
        )
    _validate_inputs(inputs)
    how = TRUNCATE[truncate]
    model_name = _model_name(registry, model)
    if model_name is None:
        if examples:
            raise InvalidInput(
                "`examples` cannot be combined with a stored classifier in `model`; "
                "add examples to it with POST /v1/train."
            )
        return _classify_with_stored(registry, store, settings, caller, str(model), inputs, how)
    if not examples:
        raise InvalidInput("`examples` is required unless `model` is the id of a stored classifier.")
    return _classify_with_examples(registry.get(model_name), settings, label_cache, inputs, examples, how)


def _model_name(registry: fewshot.EmbedderRegistry, model: str | None) -> str | None:
    """The embedding model ``model`` names (the default for None), or None when ``model`` is not a
    model: then it is a stored classifier's id."""
    try:
        return registry.resolve_name(model)
    except ModelNotFound:
        if model is None:
            raise
        return None


def _classify_with_stored(
    registry: fewshot.EmbedderRegistry,
    store: ClassifierStore,
    settings: Settings,
    caller: ApiKeyRecord,
    classifier_id: str,
    inputs: list[str],
    how: Truncate,
) -> CohereResult:
    result = fewshot.classify_with_classifier(
        registry, store, settings, caller, classifier_id=classifier_id, texts=inputs, truncate=how,
        max_tokens=settings.max_request_tokens,
    )  # fmt: skip
    check_response_size(
        cohere_bytes_bound(inputs, list(result.labels)),
        settings.max_response_bytes,
        "Send fewer inputs per request.",
    )
    return CohereResult(
        inputs, list(result.labels), result.probabilities, result.total_tokens, [], result.multi_label
    )


def _classify_with_examples(
    embedder: Embedder,
    settings: Settings,
    label_cache: LabelEmbeddingCache,
    inputs: list[str],
    examples: list[tuple[str, str]],
    how: Truncate,
) -> CohereResult:
    # Counted whether or not the examples' classifier is cached (as they are billed either way).
    check_request_tokens(
        count_tokens(embedder, [text for text, _ in examples], "input")
        + count_tokens(embedder, sorted({label for _, label in examples}), "label")
        + count_tokens(embedder, inputs, "input"),
        settings.max_request_tokens,
    )
    learned = _learn(settings, label_cache, embedder, examples)
    check_response_size(
        cohere_bytes_bound(inputs, learned.learner.labels),
        settings.max_response_bytes,
        "Send fewer inputs per request.",
    )
    batch = embedder.embed(inputs, "input", truncate=how)
    probabilities = learned.learner.predict_proba(batch.vectors)
    warnings = [f"inputs[{i}] was truncated to the model window" for i, t in enumerate(batch.truncated) if t]
    tokens = batch.total_tokens + learned.tokens
    return CohereResult(inputs, list(learned.learner.labels), probabilities, tokens, warnings)
