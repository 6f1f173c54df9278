"""Images end to end: `labelwise serve` with the bundled image model, real photos, real HTTP."""

from __future__ import annotations

import base64
import io

import pytest
import requests

from labelwise.settings import Settings
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.model

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def data_uri(pixels) -> str:  # type: ignore[no-untyped-def]
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def photos():  # type: ignore[no-untyped-def]
    settings = Settings.from_environ()
    if not (settings.model_dir / "efficientnet-lite0" / "model.onnx").exists():
        pytest.skip("image model not built: run `make model`")
    from labelwise.modelbuild.image.samples import foolbox_samples, skimage_photos

    return {p.name: p.pixels for p in skimage_photos(settings.cache_dir)}, foolbox_samples(
        settings.cache_dir, "cifar10"
    )


def post(server: LiveServer, path: str, body: object) -> requests.Response:
    return requests.post(f"{server.url}{path}", json=body, headers=server.headers(), timeout=120)


def test_zero_shot_images_and_texts_share_the_label_space(live_server: LiveServer, photos) -> None:  # type: ignore[no-untyped-def]
    named, _ = photos
    # Given photos of a cat, a coffee cup and a rocket, and a text, in one request
    body = {
        "labels": ["a cat", "a cup of coffee", "a rocket"],
        "input": [
            {"image": data_uri(named["chelsea.png"])},
            {"image": data_uri(named["coffee.png"])},
            {
                "image": base64.b64encode(
                    base64.b64decode(data_uri(named["rocket.jpg"]).split(",")[1])
                ).decode()
            },
            "a tabby cat asleep on the sofa",
        ],
    }
    # When classified zero-shot
    r = post(live_server, "/v1/classify", body)
    # Then each photo gets its label, the text too, and the response says the image model answered
    assert r.status_code == 200, r.text
    assert [row["prediction"] for row in r.json()["data"]] == [
        "a cat",
        "a cup of coffee",
        "a rocket",
        "a cat",
    ]
    assert r.json()["model"] == "efficientnet-lite0"
    assert r.headers["x-labelwise-backend"] == "local"


def test_few_shot_image_classifier(live_server: LiveServer, photos) -> None:  # type: ignore[no-untyped-def]
    _, cifar = photos
    # Given a classifier trained on CIFAR-10 sample photos
    examples = [{"image": data_uri(s.pixels), "label": CIFAR10[s.label]} for s in cifar]
    r = post(live_server, "/v1/train", {"input": examples})
    assert r.status_code == 200, r.text
    cid = r.json()["classifier_id"]
    assert r.json()["num_samples"] == len(examples)
    # When it classifies the same photos
    r = post(
        live_server,
        "/v1/classify",
        {"classifier_id": cid, "input": [{"image": e["image"]} for e in examples]},
    )
    # Then it has learned them
    assert r.status_code == 200, r.text
    hits = sum(row["prediction"] == e["label"] for row, e in zip(r.json()["data"], examples, strict=True))
    assert hits >= len(examples) - 1
    # And a text sent to an image classifier is a clear 400
    r = post(live_server, "/v1/classify", {"classifier_id": cid, "input": ["hello"]})
    assert r.status_code == 400 and r.json()["code"] == "INPUT_INVALID_IMAGE"
    # And an update with image examples (a single one, as Jina's update allows) reaches it
    r = post(live_server, "/v1/train", {"classifier_id": cid, "input": examples[0]})
    assert r.status_code == 200 and r.json()["num_samples"] == 1, r.text


def test_image_examples_are_never_learned_by_a_text_classifier(live_server: LiveServer, photos) -> None:  # type: ignore[no-untyped-def]
    _, cifar = photos
    # Given a text classifier
    texts = [
        {"text": "a jet at the gate", "label": "airplane"},
        {"text": "a red sedan", "label": "automobile"},
    ]
    r = post(live_server, "/v1/train", {"input": texts})
    assert r.status_code == 200, r.text
    cid = r.json()["classifier_id"]
    # When an update sends it image examples
    images = [{"image": data_uri(s.pixels), "label": CIFAR10[s.label]} for s in cifar[:2]]
    r = post(live_server, "/v1/train", {"classifier_id": cid, "input": images})
    # Then it is a 400 naming the model mismatch, and the classifier is unchanged
    assert r.status_code == 400 and r.json()["code"] == "INPUT_MODEL_MISMATCH", r.text
    meta = requests.get(f"{live_server.url}/v1/classifiers/{cid}", headers=live_server.headers(), timeout=30)
    assert meta.json()["version"] == 1 and meta.json()["labels"] == ["airplane", "automobile"]


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("http://127.0.0.1:9/cat.png", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://10.0.0.8/cat.png", "private"),
        ("ftp://example.com/cat.png", "http"),
        ("bm90IGFuIGltYWdl", "image"),
    ],
)
def test_bad_images_are_400_naming_the_input(live_server: LiveServer, image: str, reason: str) -> None:
    r = post(live_server, "/v1/classify", {"labels": ["a", "b"], "input": ["fine", {"image": image}]})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "INPUT_INVALID_IMAGE"
    assert "input[1]" in r.json()["detail"] and reason in r.json()["detail"].lower()
