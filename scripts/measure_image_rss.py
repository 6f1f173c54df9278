"""Peak memory of one request's images: decode + preprocess through ``ImageModel`` in a fresh process.

    PYTHONPATH=shared .venv/bin/python scripts/measure_image_rss.py

Each scenario runs in its own child process: the PNGs (base64) are made by the parent and read from
a file, the child notes its peak RSS (``ru_maxrss``), runs ``ImageModel.zero_shot_vectors`` with a
router that preprocesses each batch as the bundled model does (224 px crops) and returns zeros, and
reports how much the peak grew. ``LABELWISE_MAX_REQUEST_PIXELS`` is raised to let the 128 MP
scenario through (it is refused at the default 64 MP budget before anything is decoded).
"""

from __future__ import annotations

import base64
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

SCENARIOS = {
    "8 x 16 MP (128 MP)": (8, (4000, 4000)),
    "32 x 2 MP (64 MP)": (32, (2000, 1000)),
}


def child(path: str) -> None:
    import numpy as np

    from labelwise.classify.image_models import ImageModel
    from labelwise.embedding.manifest import ImagePreprocessing, ModelManifest, Prefixes
    from labelwise.embedding.pixels import preprocess_batch
    from labelwise.images import ImageLoader
    from labelwise.settings import Settings

    spec = ImagePreprocessing()

    class Preprocessing:
        def zero_shot_vectors(self, images: list[np.ndarray]) -> np.ndarray:
            preprocess_batch(images, spec)
            return np.zeros((len(images), 4), np.float32)

    manifest = ModelManifest(
        name="rss-image", aliases=(), family="efficientnet", dimension=4, window=1, max_input_tokens=1,
        prefixes=Prefixes(input="", label=""), cls_token_id=0, sep_token_id=0, pad_token_id=0,
        temperature=1.0, modality="image", image=spec,
    )  # fmt: skip
    references = json.loads(Path(path).read_text())
    settings = Settings.from_environ({**os.environ, "LABELWISE_MAX_REQUEST_PIXELS": str(10**9)})
    model = ImageModel(manifest=manifest, router=Preprocessing(), loader=ImageLoader.from_settings(settings))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model.zero_shot_vectors(references)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_growth_mb": (after - before) / 1024}))


def main() -> None:
    from PIL import Image

    for name, (count, size) in SCENARIOS.items():
        buf = io.BytesIO()
        Image.new("RGB", size, (200, 30, 60)).save(buf, format="PNG")
        reference = base64.b64encode(buf.getvalue()).decode("ascii")
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump([reference] * count, fh)
        try:
            out = subprocess.run(
                [sys.executable, __file__, "--child", fh.name], capture_output=True, text=True, check=True
            ).stdout
        finally:
            os.unlink(fh.name)
        growth = json.loads(out.strip().splitlines()[-1])["peak_growth_mb"]
        print(f"{name}: body {len(reference) * count / 1024:.0f} KiB, peak RSS grew {growth:.0f} MB")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
