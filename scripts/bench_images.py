"""Images per second of the bundled image model, in-process on CPU.

    python scripts/bench_images.py [--model-dir DIR] [--batch 8] [--threads N] [--rounds 5]

Times preprocessing (decode excluded: images are already ``uint8`` arrays) and the onnxruntime
forward pass separately, over the foolbox ImageNet photos and scikit-image's sample photos.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from labelwise.embedding.efficientnet import EfficientNetEmbedder
from labelwise.embedding.pixels import preprocess_batch
from labelwise.evaluation.arguments import image_model_parser
from labelwise.modelbuild.image.samples import foolbox_samples, skimage_photos
from labelwise.settings import Settings


def main(argv: list[str] | None = None) -> int:
    ap = image_model_parser(__doc__, Settings.from_environ())
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: default)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)

    emb = EfficientNetEmbedder.from_dir(
        args.model_dir / args.model, intra_op_threads=args.threads or None, batch_size=args.batch
    )
    spec = emb.manifest.image
    assert spec is not None
    images = [s.pixels for s in foolbox_samples(args.cache_dir, "imagenet")]
    images += [s.pixels for s in skimage_photos(args.cache_dir)]
    images = (images * ((args.batch * 4) // len(images) + 1))[: max(args.batch * 3, len(images))]
    session = emb._session  # the forward pass alone
    emb.features(images[: args.batch])  # warm-up

    pre_s, run_s, n = 0.0, 0.0, 0
    for _ in range(args.rounds):
        for b0 in range(0, len(images) - args.batch + 1, args.batch):
            t = time.perf_counter()
            x = preprocess_batch(images[b0 : b0 + args.batch], spec)
            t1 = time.perf_counter()
            session.run(["logits", "features"], {"pixel_values": x})
            t2 = time.perf_counter()
            pre_s += t1 - t
            run_s += t2 - t1
            n += args.batch
    t = time.perf_counter()
    for _ in range(args.rounds):
        emb.vectors(images)
    e2e = args.rounds * len(images) / (time.perf_counter() - t)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"model {emb.manifest.name} ({emb.manifest.quantization}), batch {args.batch}, cpus {os.cpu_count()}"
    )
    print(f"  forward only      {n / run_s:7.1f} images/s")
    print(f"  preprocess only   {n / pre_s:7.1f} images/s  (Pillow bicubic resize + crop + normalise)")
    print(f"  both (sequential) {n / (pre_s + run_s):7.1f} images/s")
    print(f"  EfficientNetEmbedder.vectors end to end: {e2e:.1f} images/s  (load average {load:.1f})")
    print(f"  mean image size {np.mean([im.shape[0] * im.shape[1] for im in images]) / 1e3:.0f} kpx")
    return 0


if __name__ == "__main__":
    sys.exit(main())
