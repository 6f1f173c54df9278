"""Smoke-test a built ModelLayer the way Lambda sees it: only the layer on sys.path, no site-packages.

Usage: python3.12 -I -B layers/model/smoke.py <layer dir: .aws-sam/build/ModelLayer>

Imports numpy, onnxruntime and tokenizers from ``<layer>/python`` and, for each model under
``<layer>/models``, loads tokenizer.json, opens an InferenceSession on model.onnx and embeds one text.
Uses nothing but the standard library and the layer itself (run it with CPython 3.12, x86_64).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(layer: Path) -> int:
    sys.path.insert(0, str(layer / "python"))
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    print(f"numpy {np.__version__}, onnxruntime {ort.__version__}, providers {ort.get_available_providers()}")
    models = sorted(p for p in (layer / "models").iterdir() if p.is_dir())
    if not models:
        print("no models in the layer", file=sys.stderr)
        return 1
    for model_dir in models:
        manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        ids = tokenizer.encode("query: the layer works").ids[: int(manifest.get("window", 512))]
        session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
        feed = {
            "input_ids": np.asarray([ids], dtype=np.int64),
            "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
        }
        (embedding,) = session.run(["sentence_embedding"], feed)
        norm = float(np.linalg.norm(embedding[0]))
        print(f"{model_dir.name}: {len(ids)} tokens -> dim {embedding.shape[1]}, |e|={norm:.4f}")
        if embedding.shape[1] != int(manifest["dimension"]) or abs(norm - 1.0) > 1e-3:
            print(f"{model_dir.name}: unexpected embedding", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(main(Path(sys.argv[1])))
