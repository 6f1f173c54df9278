"""Unit tests of CLIP support: the BPE tokenizer (real vocabulary from the open-clip-torch wheel)
and ClipEmbedder on tiny random-weight CLIP-architecture models generated here."""

from __future__ import annotations

import itertools
import zipfile
from pathlib import Path

import numpy as np
import pytest

from labelwise.embedding.clip.embedder import ClipEmbedder
from labelwise.embedding.clip.sources import HF_FILES, download_hub, resolve_clip_source
from labelwise.embedding.clip.tokenizer import ClipTokenizer, bytes_to_unicode, pre_tokenize
from labelwise.embedding.image_factory import image_embedder_factory
from labelwise.embedding.pixels import IMAGE_TOKENS, preprocess_batch
from labelwise.errors import EmbedderUnavailable, InputTooLong

OPEN_CLIP_BPE = "open_clip/bpe_simple_vocab_16e6.txt.gz"


@pytest.fixture(scope="session")
def bpe_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from labelwise.modelbuild.sources import WheelSpec, fetch_wheel
    from labelwise.settings import Settings

    try:
        wheel = fetch_wheel(
            WheelSpec("open-clip-torch", "2.26.1"), Settings.from_environ().cache_dir / "wheels"
        )
    except Exception as exc:  # no network and no cached wheel
        pytest.skip(f"open-clip-torch wheel unavailable: {exc}")
    d = tmp_path_factory.mktemp("bpe")
    target = d / "bpe_simple_vocab_16e6.txt.gz"
    target.write_bytes(zipfile.ZipFile(wheel).read(OPEN_CLIP_BPE))
    return target


@pytest.fixture(scope="session")
def tok(bpe_file: Path) -> ClipTokenizer:
    return ClipTokenizer.from_file(bpe_file)


# ------------------------------------------------------------------------------ tokenizer
def test_vocabulary_layout_is_clips(tok: ClipTokenizer) -> None:
    # 256 bytes + 256 bytes</w> + 48894 merges + 2 specials
    assert tok.vocab_size == 49408
    assert (tok.sot_id, tok.eot_id) == (49406, 49407)
    assert len(bytes_to_unicode()) == 256


def test_known_tokenisations(tok: ClipTokenizer) -> None:
    # The ids of CLIP's README example ("a diagram", "a dog", "a cat") and its usual prompt
    assert tok.encode("a diagram") == [320, 22697]
    assert tok.encode("a dog") == [320, 1929]
    assert tok.encode("a cat") == [320, 2368]
    assert tok.encode("A photo of a CAT") == [320, 1125, 539, 320, 2368]


def test_whole_words_in_the_vocabulary_are_single_tokens(tok: ClipTokenizer) -> None:
    # Given words whose "word</w>" entry exists in the vocabulary (derived from the merges)
    for word in ("photo", "diagram", "elephant", "bicycle", "the"):
        # Then each encodes to exactly that entry
        assert tok.encode(word) == [tok.encoder[word + "</w>"]]


def test_bpe_pieces_are_vocabulary_entries_that_cannot_merge_further(tok: ClipTokenizer) -> None:
    # Given a word unlikely to be one token
    ids = tok.encode("labelwisification")
    pieces = [tok.decoder[i] for i in ids]
    # Then the pieces spell the word, the last ends the word, and no adjacent pair is a merge
    assert "".join(pieces) == "labelwisification</w>"
    assert all((a, b) not in tok.ranks for a, b in itertools.pairwise(pieces))
    assert len(ids) > 1


def test_pre_tokenizer_follows_clips_pattern() -> None:
    assert pre_tokenize("it's 2024, ok?!") == ["it", "'s", "2", "0", "2", "4", ",", "ok", "?!"]
    assert pre_tokenize("naïve café<|endoftext|>") == ["naïve", "café", "<|endoftext|>"]
    assert pre_tokenize("a_b") == ["a", "_", "b"]


def test_decode_round_trips_cleaned_text(tok: ClipTokenizer) -> None:
    text = "Hello,   world! It's 2024 — naïve café &amp; 東京"
    assert tok.decode(tok.encode(text)) == "hello , world ! it 's 2 0 2 4 — naïve café & 東京"


# ------------------------------------------------------------------------------ embedder
@pytest.fixture(scope="session", params=["labelwise", "hf"])
def tiny_clip(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, bpe_file: Path):
    pytest.importorskip("onnx")
    from tests.support.tiny_clip import write_tiny_clip

    d = tmp_path_factory.mktemp(f"tiny-clip-{request.param}")
    weights = write_tiny_clip(d, bpe_file, layout=request.param)
    return d, weights


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_text_tower_matches_the_numpy_reference(tiny_clip) -> None:
    from tests.support.tiny_clip import TinyClipConfig, reference_text

    # Given a tiny CLIP directory (our layout or a Hugging Face export layout)
    d, w = tiny_clip
    emb = ClipEmbedder.from_dir(d, intra_op_threads=1)
    texts = ["a cat", "a much longer sentence about dogs and cats playing", "x"]
    # When label texts are embedded
    batch = emb.embed(texts, "label")
    ids, cut = emb.tokenize(texts, "label")
    # Then the vectors are the reference's, normalised; tokens counted with sot/eot; prefix applied
    np.testing.assert_allclose(batch.vectors, _unit(reference_text(w, TinyClipConfig(), ids)), atol=1e-5)
    assert batch.token_counts == [len(emb.tokenizer.encode("a photo of " + t)) + 2 for t in texts]
    assert cut == [False] * 3
    assert emb.count_tokens(texts, "label") == batch.token_counts


def test_image_tower_matches_the_numpy_reference(tiny_clip) -> None:
    from tests.support.tiny_clip import TinyClipConfig, reference_image

    d, w = tiny_clip
    emb = ClipEmbedder.from_dir(d)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40 + 7 * i, 50, 3), dtype=np.uint8) for i in range(3)]
    got = emb.zero_shot_vectors(images)
    assert emb.manifest.image is not None
    ref = reference_image(w, TinyClipConfig(), preprocess_batch(images, emb.manifest.image))
    np.testing.assert_allclose(got.vectors, _unit(ref), atol=1e-5)
    assert got.token_counts == [IMAGE_TOKENS] * 3
    np.testing.assert_allclose(emb.features(images).vectors, got.vectors, atol=1e-6)  # no feature mean


def test_long_texts_are_cut_to_the_context_or_refused(tiny_clip) -> None:
    d, _ = tiny_clip
    emb = ClipEmbedder.from_dir(d)
    long = " ".join(["word"] * 100)
    ids, cut = emb.tokenize([long, "short"], "input", "end")
    assert ids.shape[1] == 77 and cut == [True, False]
    assert ids[0, 0] == emb.tokenizer.sot_id and ids[0, 76] == emb.tokenizer.eot_id
    batch = emb.embed([long], "input")
    assert batch.truncated == [True] and batch.token_counts == [77]
    with pytest.raises(InputTooLong):
        emb.embed([long], "input", "none")


def test_manifest_and_factory(tiny_clip) -> None:
    d, _ = tiny_clip
    emb = ClipEmbedder.from_dir(d, name="my-clip")
    assert emb.manifest.family == "clip" and emb.manifest.modality == "image"
    assert emb.manifest.dimension == 8 and emb.manifest.window == 77
    if (d / "manifest.json").exists():
        assert isinstance(image_embedder_factory(d), ClipEmbedder)
        assert "jina-clip-v2" in emb.manifest.aliases
    else:
        assert emb.manifest.name == "my-clip"


def test_missing_files_are_unavailable(tmp_path: Path) -> None:
    with pytest.raises(EmbedderUnavailable):
        ClipEmbedder.from_dir(tmp_path)


# ------------------------------------------------------------------------------ sources
def test_local_path_resolves_to_itself(tmp_path: Path) -> None:
    assert resolve_clip_source(str(tmp_path)) == tmp_path


def test_s3_source_is_downloaded_once(tmp_path: Path, bpe_file: Path) -> None:
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    pytest.importorskip("onnx")
    from tests.support.tiny_clip import write_tiny_clip

    # Given a tiny CLIP model uploaded under an S3 prefix
    src = tmp_path / "src"
    write_tiny_clip(src, bpe_file)
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="models")
        for f in src.rglob("*"):
            if f.is_file():
                s3.upload_file(str(f), "models", f"clip/v1/{f.relative_to(src)}")
        # When the source is resolved and loaded
        d = resolve_clip_source("s3://models/clip/v1", tmp_path / "dl", s3_client=s3)
        emb = ClipEmbedder.from_dir(d)
        # Then the files are there and a second resolve does not download again
        assert emb.manifest.name == "tiny-clip"
        s3.delete_object(Bucket="models", Key="clip/v1/manifest.json")
        assert resolve_clip_source("s3://models/clip/v1", tmp_path / "dl", s3_client=s3) == d


def test_empty_s3_prefix_is_unavailable(tmp_path: Path) -> None:
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="models")
        with pytest.raises(EmbedderUnavailable):
            resolve_clip_source("s3://models/nothing", tmp_path, s3_client=s3)


@pytest.fixture()
def hub(tmp_path: Path, bpe_file: Path):  # type: ignore[no-untyped-def]
    """A loopback stand-in for the Hugging Face hub serving one tiny CLIP export as
    ``/<org>/<name>/resolve/<revision>/<file>``; yields (base URL, the paths it was asked for)."""
    import http.server
    import threading

    pytest.importorskip("onnx")
    from tests.support.tiny_clip import write_tiny_clip

    export = tmp_path / "export"
    write_tiny_clip(export, bpe_file, layout="hf")
    asked: list[str] = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            asked.append(self.path)
            prefix = "/org/tiny-clip/resolve/v1/"
            file = export / self.path.removeprefix(prefix)
            if not self.path.startswith(prefix) or not file.is_file():
                self.send_error(404)
                return
            body = file.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def test_hub_export_is_downloaded_once(tmp_path: Path, hub) -> None:  # type: ignore[no-untyped-def]
    base, asked = hub
    # Given a hub that serves a tiny CLIP export at revision v1
    dest = tmp_path / "dl"
    # When it is downloaded
    assert download_hub("org/tiny-clip", dest, revision="v1", endpoint=base) == dest
    # Then every file of the export is there, loadable, with no partial file left
    assert sorted(asked) == sorted(f"/org/tiny-clip/resolve/v1/{rel}" for rel in HF_FILES)
    assert ClipEmbedder.from_dir(dest).manifest.family == "clip"
    assert not list(dest.rglob("*.part"))
    # And a second download asks for nothing
    download_hub("org/tiny-clip", dest, revision="v1", endpoint=base)
    assert len(asked) == len(HF_FILES)


def test_missing_hub_file_is_unavailable_and_leaves_no_partial_file(tmp_path: Path, hub) -> None:  # type: ignore[no-untyped-def]
    base, _ = hub
    # Given a revision the hub does not have
    # When it is downloaded
    with pytest.raises(EmbedderUnavailable, match="cannot download"):
        download_hub("org/tiny-clip", tmp_path / "dl", revision="v2", endpoint=base)
    # Then nothing half-written stays behind
    assert not [f for f in (tmp_path / "dl").rglob("*") if f.is_file()]


def test_served_as_renames_a_shared_model(tiny_clip) -> None:  # type: ignore[no-untyped-def]
    d, _ = tiny_clip
    # Given a loaded CLIP model
    emb = ClipEmbedder.from_dir(d)
    original = emb.manifest
    # When a deployment serves it under its own name and aliases
    served = emb.served_as("clip", ("jina-clip-v2", "clip-*"))
    # Then the copy answers to them, is its own text model, and embeds like the original
    assert (served.manifest.name, served.manifest.aliases) == ("clip", ("jina-clip-v2", "clip-*"))
    assert served.manifest.text_model == "clip"
    assert emb.manifest == original
    np.testing.assert_array_equal(
        served.embed(["a cat"], "label").vectors, emb.embed(["a cat"], "label").vectors
    )


def test_unrecognised_source_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(EmbedderUnavailable):
        resolve_clip_source("not-a-path-or-hub-id", tmp_path)


# ------------------------------------------------------------------------------ serving a configured CLIP
def test_configured_clip_answers_jina_clip_requests(
    tiny_clip, tmp_path: Path, api_event, lambda_context
) -> None:  # type: ignore[no-untyped-def]
    import base64
    import io
    import json

    import numpy as np
    from PIL import Image

    from labelwise.api.app import create_app
    from labelwise.runtime import build_services
    from labelwise.settings import Settings

    model_dir, _ = tiny_clip
    # Given a deployment whose CLIP weights are configured by path (no other models built)
    settings = Settings.from_environ(
        {
            "LABELWISE_DATA_DIR": str(tmp_path / "data"),
            "LABELWISE_CACHE_DIR": str(tmp_path / "cache"),
            "LABELWISE_MODEL_DIR": str(tmp_path / "models"),
            "LABELWISE_CLIP_SOURCE": str(model_dir),
            "LABELWISE_REQUIRE_AUTH": "false",
            "LABELWISE_DEFAULT_MODEL": "clip",
        }
    )
    services = build_services(settings)
    app = create_app(services)
    buf = io.BytesIO()
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(buf, format="PNG")
    image = base64.b64encode(buf.getvalue()).decode()
    # When a Jina client asks jina-clip-v2 for an image and a text against labels
    body = {"model": "jina-clip-v2", "labels": ["a photo", "a text"], "input": [{"image": image}, "hello"]}
    response = app.resolve(api_event("POST", "/v1/classify", body), lambda_context)
    out = json.loads(response["body"])
    # Then CLIP answers (its name in the response), with a distribution per input
    assert response["statusCode"] == 200, out
    assert out["model"] == "clip"
    for row in out["data"]:
        assert abs(sum(p["score"] for p in row["predictions"]) - 1) < 1e-5
    assert services.images.matches("jina-clip-v1") == "clip"
