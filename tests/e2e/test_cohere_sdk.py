"""Cohere's own Python SDK, pointed at `labelwise serve`, classifies unchanged."""

from __future__ import annotations

import pytest
import requests

from labelwise.evaluation.examples import COHERE_SPAM_EXAMPLES, COHERE_SPAM_GOLD, COHERE_SPAM_INPUTS
from tests.e2e.conftest import LiveServer
from tests.support.reference import COHERE_EMBED_MODELS

cohere = pytest.importorskip("cohere")
ClassifyExample = cohere.ClassifyExample

pytestmark = pytest.mark.model

# Cohere's classify documentation example: 5 spam and 5 not-spam messages.
SPAM_EXAMPLES = [ClassifyExample(text=text, label=label) for text, label in COHERE_SPAM_EXAMPLES]
INPUTS = list(COHERE_SPAM_INPUTS)


@pytest.fixture
def co(live_server: LiveServer):
    return cohere.Client(api_key=live_server.key, base_url=live_server.url, timeout=120)


#: The ninth example as Cohere's documentation spells it, and two other spellings (issue 11, section 4).
NINTH_SPELLINGS = [
    "Re: Follow up from today\u2019s meeting",
    "Re: Follow up from today's meeting",
    "'Re: Follow up from today's meeting'",
]


def _with_ninth(text: str) -> list:
    return [*SPAM_EXAMPLES[:8], ClassifyExample(text=text, label="Not spam"), SPAM_EXAMPLES[9]]


def test_cohere_sdk_classify_with_examples(co) -> None:
    # When Cohere's SDK classifies the docs' spam example against labelwise
    response = co.classify(inputs=INPUTS, examples=SPAM_EXAMPLES)
    # Then it parses labelwise's answer into its own objects, a distribution over the two labels
    assert isinstance(response, cohere.ClassifyResponse)
    assert response.classifications[1].prediction == "Spam"
    for c, text in zip(response.classifications, INPUTS, strict=True):
        assert c.input == text and c.classification_type == "single-label"
        assert set(c.labels) == {"Spam", "Not spam"}
        assert sum(v.confidence for v in c.labels.values()) == pytest.approx(1.0, abs=1e-4)
        assert c.confidence == pytest.approx(c.labels[c.prediction].confidence)
    assert response.meta.billed_units.input_tokens > 0


def test_cohere_spam_example_does_not_depend_on_the_spelling_of_one_example(co) -> None:
    # When the ninth example is spelled with a curly apostrophe, a straight one, or quoted
    answers = []
    for text in NINTH_SPELLINGS:
        response = co.classify(inputs=INPUTS, examples=_with_ninth(text))
        answers.append([(c.prediction, c.confidence) for c in response.classifications])
    # Then every spelling gives the same predictions, with confidences within 0.05 of each other
    assert len({tuple(p for p, _ in a) for a in answers}) == 1
    for i in range(len(INPUTS)):
        confidences = [a[i][1] for a in answers]
        assert max(confidences) - min(confidences) < 0.05


@pytest.mark.xfail(
    strict=True,
    reason="issue 11 section 4, not met: with multilingual-e5-small the learner (and a logistic "
    "regression on the same embeddings) calls 'Confirm your email address' Spam (about 0.59); zero-shot "
    "gets both inputs wrong (scripts/seed_examples_bound.py)",
)
@pytest.mark.parametrize("ninth", NINTH_SPELLINGS)
def test_cohere_spam_example_gives_the_documented_answer(co, ninth: str) -> None:
    # When Cohere's documented example is classified, whichever spelling of the ninth example
    response = co.classify(inputs=INPUTS, examples=_with_ninth(ninth))
    # Then the answer is Cohere's: ["Not spam", "Spam"], each with confidence >= 0.6
    assert [c.prediction for c in response.classifications] == list(COHERE_SPAM_GOLD)
    assert all(c.confidence >= 0.6 for c in response.classifications)


def test_cohere_sdk_classify_with_a_stored_classifier(co, live_server: LiveServer) -> None:
    # Given a classifier trained through labelwise's own /v1/train
    examples = [{"text": e.text, "label": e.label} for e in SPAM_EXAMPLES]
    r = requests.post(
        f"{live_server.url}/v1/train", json={"input": examples}, headers=live_server.headers(), timeout=120
    )
    assert r.status_code == 200, r.text
    cid = r.json()["classifier_id"]
    # When the Cohere SDK names it as the model, without examples
    response = co.classify(inputs=INPUTS, model=cid)
    # Then the stored classifier answers, exactly as labelwise's own classify-by-id does
    jina = requests.post(
        f"{live_server.url}/v1/classify", json={"classifier_id": cid, "input": INPUTS},
        headers=live_server.headers(), timeout=120,
    ).json()  # fmt: skip
    for c, row in zip(response.classifications, jina["data"], strict=True):
        assert c.prediction == row["prediction"]
        for p in row["predictions"]:
            assert c.labels[p["label"]].confidence == pytest.approx(p["score"], abs=1e-6)
    assert response.classifications[1].prediction == "Spam"


def test_cohere_sdk_sees_errors_as_its_own_exceptions(co) -> None:
    with pytest.raises(cohere.errors.BadRequestError) as info:
        co.classify(inputs=INPUTS, examples=SPAM_EXAMPLES[:6])  # one 'Not spam' only
    assert "at least 2 examples" in str(info.value.body)
    with pytest.raises(cohere.errors.UnauthorizedError):
        cohere.Client(api_key="lw_wrong", base_url=co._client_wrapper.get_base_url()).classify(
            inputs=INPUTS, examples=SPAM_EXAMPLES
        )


def _labels(response) -> list[float]:
    """Every input's confidence of each label, flattened in label order (pytest.approx compares it)."""
    return [c.labels[k].confidence for c in response.classifications for k in sorted(c.labels)]


@pytest.mark.parametrize("model", COHERE_EMBED_MODELS)
def test_cohere_sdk_documented_model_names_work_with_examples(co, model: str) -> None:
    # When the SDK names one of Cohere's documented embed models, with the docs' examples
    response = co.classify(inputs=INPUTS, examples=SPAM_EXAMPLES, model=model)
    # Then a served model answers (English names may go to the English model): a distribution over
    # the two labels for each input
    assert [c.input for c in response.classifications] == INPUTS
    for c in response.classifications:
        assert set(c.labels) == {"Spam", "Not spam"}
        assert sum(v.confidence for v in c.labels.values()) == pytest.approx(1.0, abs=1e-4)
    assert response.meta.billed_units.classifications == len(INPUTS)


def test_cohere_sdk_explicit_truncate_none_means_the_default(co) -> None:
    # Given an input longer than the model window (512 tokens)
    long_inputs = ["Please wire the money now " * 120, INPUTS[0]]
    # When the SDK sends `truncate=None` (it sends `"truncate": null`), and then `truncate="END"`
    as_none = co.classify(inputs=long_inputs, examples=SPAM_EXAMPLES, truncate=None)
    as_end = co.classify(inputs=long_inputs, examples=SPAM_EXAMPLES, truncate="END")
    # Then null is the default, END: the same answer, with the truncation warning
    assert _labels(as_none) == pytest.approx(_labels(as_end))
    assert as_none.meta.warnings and as_none.meta.warnings == as_end.meta.warnings


def test_cohere_sdk_additional_body_parameters_are_ignored(co) -> None:
    # Given body fields labelwise does not define: legacy Cohere fields and a client's own
    extra = {"return_likelihoods": "NONE", "outputIndicators": ["x"], "client_trace": {"id": 7}}
    # When the SDK adds them through request_options
    response = co.classify(
        inputs=INPUTS, examples=SPAM_EXAMPLES, request_options={"additional_body_parameters": extra}
    )
    # Then they change nothing
    assert _labels(response) == pytest.approx(_labels(co.classify(inputs=INPUTS, examples=SPAM_EXAMPLES)))
    assert response.meta.billed_units.classifications == len(INPUTS)
