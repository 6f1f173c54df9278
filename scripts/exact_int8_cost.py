#!/usr/bin/env python
"""What the exact-arithmetic weights change and cost (docs/performance.md, "Same answer on every CPU").

For each built text model, a copy with its integer-matmul weights shifted back to int8 (the graph
the build made before ``labelwise/modelbuild/exact_int8.py``: U8S8, which onnxruntime computes with
saturating 16-bit pair sums on x86 CPUs without VNNI) is written to a temporary directory. Reported,
after what a one-node ``MatMulInteger`` (64 inputs of 255 times weights of 127) answers here against
the exact 2,072,640:

* the largest difference between the two graphs' vectors on this CPU (0 on a VNNI or ARM CPU);
* throughput of both, one thread, measured alternately (``--rounds`` pairs, median ratio);
* session creation with the runtime's settings against onnxruntime's own remedy
  (``session.x64quantprecision`` at the extended optimisation level), median of ``--rounds``.

    python scripts/exact_int8_cost.py [--models multilingual-e5-small,all-minilm-l6-v2] [--texts 192]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labelwise.embedding.onnx_embedder import MODEL_FILE, OnnxEmbedder
from labelwise.modelbuild.build import externalize
from labelwise.modelbuild.exact_int8 import SHIFT, WEIGHT_INPUTS
from labelwise.settings import Settings


def signed_copy(model_dir: Path, out: Path) -> int:
    """``model_dir`` copied to ``out`` with every uint8 integer-matmul weight and zero point shifted
    back to int8; returns how many tensors were shifted."""
    import onnx
    from onnx import numpy_helper

    shutil.copytree(model_dir, out)
    model = onnx.load(str(out / MODEL_FILE))
    initializers = {init.name: init for init in model.graph.initializer}
    shifted: set[str] = set()
    for node in model.graph.node:
        for position in WEIGHT_INPUTS.get(node.op_type, ()):
            name = node.input[position] if len(node.input) > position else ""
            if not name or name in shifted or name not in initializers:
                continue
            values = numpy_helper.to_array(initializers[name])
            if values.dtype == np.uint8:
                signed = (values.astype(np.int16) - SHIFT).astype(np.int8)
                initializers[name].CopyFrom(numpy_helper.from_array(signed, name))
                shifted.add(name)
    externalize(out / MODEL_FILE, model)
    return len(shifted)


def saturation_demo() -> tuple[int, int]:
    """onnxruntime's and the exact answer of 64 products ``255 * 127`` summed (U8S8 ``MatMulInteger``)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    weights = np.full((64, 1), 127, dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "g",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [1, 64])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [1, 1])],
        [numpy_helper.from_array(weights, "B")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = np.full((1, 64), 255, dtype=np.uint8)
    exact = inputs.astype(np.int64) @ weights.astype(np.int64)
    return int(session.run(None, {"A": inputs})[0][0, 0]), int(exact[0, 0])


def session_seconds(path: Path, precise: bool, rounds: int) -> float:
    import onnxruntime as ort

    times = []
    for _ in range(rounds):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.add_session_config_entry("session.set_denormal_as_zero", "1")
        if precise:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            opts.add_session_config_entry("session.x64quantprecision", "1")
        else:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        started = time.perf_counter()
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--models", default="multilingual-e5-small,all-minilm-l6-v2")
    ap.add_argument("--texts", type=int, default=192)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    texts = [
        f"Review {i}: the product arrived on time, works as described and the price was fair."
        for i in range(args.texts)
    ]
    got, exact = saturation_demo()
    print(f"MatMulInteger, 64 x (255 * 127): onnxruntime {got:,}, exact {exact:,}")
    root = Settings.from_environ().model_dir
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory(prefix="labelwise-s8-") as tmp:
            signed_dir = Path(tmp) / name
            count = signed_copy(root / name, signed_dir)
            shipped_model = OnnxEmbedder.from_dir(root / name, intra_op_threads=1)
            signed = OnnxEmbedder.from_dir(signed_dir, intra_op_threads=1)
            ours, theirs = shipped_model.embed(texts, "input").vectors, signed.embed(texts, "input").vectors
            diff = float(np.abs(ours - theirs).max())
            ratios = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                shipped_model.embed(texts, "input")
                middle = time.perf_counter()
                signed.embed(texts, "input")
                ratios.append((middle - started) / (time.perf_counter() - middle))
            shipped = session_seconds(root / name / MODEL_FILE, False, args.rounds)
            remedy = session_seconds(signed_dir / MODEL_FILE, True, args.rounds)
        print(
            f"{name}: {count} tensors shifted; max |vector difference| {diff:.4f}; "
            f"embedding time exact / saturating {statistics.median(ratios):.2f}x "
            f"(pairs {min(ratios):.2f}-{max(ratios):.2f}); session {shipped * 1000:.0f} ms shipped, "
            f"{remedy * 1000:.0f} ms with session.x64quantprecision"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
