"""Real photos for calibration, tests and evaluation, read from PyPI wheels (no install).

- ``foolbox==3.3.4``: ``foolbox/data/<set>_<index>_<label>.png|jpg``: 20 ImageNet photos (label =
  ImageNet class index), 20 CIFAR-10, 20 CIFAR-100, 20 MNIST and 20 Fashion-MNIST images.
- ``scikit-image==0.24.0``: ``skimage/data/``: astronaut, coffee, chelsea (a cat), rocket.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from labelwise.modelbuild.sources import WheelSpec, fetch_wheel

FOOLBOX = WheelSpec("foolbox", "3.3.4")
SKIMAGE = WheelSpec("scikit-image", "0.24.0")

SKIMAGE_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)

_FOOLBOX_NAME = re.compile(r"^foolbox/data/(?P<set>[A-Za-z0-9]+)_(?P<index>\d+)_(?P<label>\d+)\.(png|jpg)$")


@dataclass(frozen=True)
class Sample:
    name: str
    label: int  # class index in its data set (-1: none)
    pixels: npt.NDArray[np.uint8]  # [H, W, 3] RGB


def decode_rgb(data: bytes) -> npt.NDArray[np.uint8]:
    """Decode PNG/JPEG bytes to ``uint8 [H, W, 3]`` RGB (Pillow)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def foolbox_samples(cache_dir: Path, dataset: str) -> list[Sample]:
    """The foolbox sample images of ``dataset`` (``imagenet``, ``cifar10``, ``cifar100``,
    ``fashionMNIST``, ``mnist``), in index order."""
    wheel = fetch_wheel(FOOLBOX, cache_dir / "wheels")
    out: list[tuple[int, Sample]] = []
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            m = _FOOLBOX_NAME.match(member)
            if m and m["set"] == dataset:
                sample = Sample(Path(member).name, int(m["label"]), decode_rgb(zf.read(member)))
                out.append((int(m["index"]), sample))
    if not out:
        raise FileNotFoundError(f"no foolbox samples for {dataset!r} in {wheel.name}")
    return [s for _, s in sorted(out, key=lambda t: t[0])]


def skimage_photos(cache_dir: Path) -> list[Sample]:
    """scikit-image's colour sample photos (astronaut, coffee, chelsea the cat, rocket)."""
    wheel = fetch_wheel(SKIMAGE, cache_dir / "wheels")
    with zipfile.ZipFile(wheel) as zf:
        return [Sample(name, -1, decode_rgb(zf.read(f"skimage/data/{name}"))) for name in SKIMAGE_PHOTOS]


def calibration_images(cache_dir: Path) -> list[npt.NDArray[np.uint8]]:
    """Photos the feature mean is computed on: foolbox ImageNet + CIFAR-10 + scikit-image photos."""
    samples = foolbox_samples(cache_dir, "imagenet") + foolbox_samples(cache_dir, "cifar10")
    return [s.pixels for s in samples + skimage_photos(cache_dir)]
