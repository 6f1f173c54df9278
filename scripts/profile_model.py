#!/usr/bin/env python
"""The measurements behind docs/performance.md that are not `make bench`.

    python scripts/profile_model.py ops [--model all-minilm-l6-v2] [--no-flush-denormals]
    python scripts/profile_model.py softmax
    python scripts/profile_model.py session [--model all-minilm-l6-v2]

* ``ops``: onnxruntime's profiler over the benchmark's 512 sentences (one thread, batch 32). It
  prints each operator's share of kernel time, with the runtime's denormal flush or without it.
* ``softmax``: one Softmax over ``[32, 12, 25, 25]`` random scores, with none masked and with 3 key
  positions masked by each of -1e9, -1e4 and -200, with and without the denormal flush. Each setting
  runs in a fresh process, because the flush sticks to the thread that ran a flushing session.
* ``session``: time to open the first session of a fresh process, for the built model (weights
  as external data) and for a single-file copy of it. Five processes each, interleaved.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def ops(model: str, flush: bool) -> None:
    from labelwise.embedding.onnx_embedder import OnnxEmbedder
    from labelwise.evaluation.datasets import bench_texts
    from labelwise.settings import Settings

    settings = Settings.from_environ()
    model_dir = settings.model_dir / model
    # not OnnxEmbedder.from_dir: its session would flush denormals on this thread for every session
    from tokenizers import Tokenizer

    from labelwise.embedding.manifest import ModelManifest

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    with tempfile.TemporaryDirectory() as tmp:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.intra_op_num_threads = 1
        if flush:
            opts.add_session_config_entry("session.set_denormal_as_zero", "1")
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(model_dir / "model.onnx"), sess_options=opts)
        emb = OnnxEmbedder(session, tokenizer, ModelManifest.load(model_dir), batch_size=32)
        texts = bench_texts(settings.cache_dir, 512, 13)
        for i in range(0, len(texts), 32):
            emb.embed(texts[i : i + 32], "input")
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: collections.Counter[str] = collections.Counter()
    for ev in events:
        if ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time"):
            per_op[ev["args"]["op_name"]] += ev["dur"]
    total = sum(per_op.values())
    print(f"{model}, denormals {'flushed' if flush else 'kept'}: {total / 1e3:.0f} ms of kernel time")
    for op, dur in per_op.most_common():
        print(f"  {op:28s} {100 * dur / total:5.1f}%")


SOFTMAX_CHILD = """
import sys, time, numpy as np, onnxruntime as ort
from onnx import TensorProto, helper
mask, flush = float(sys.argv[1]), sys.argv[2] == "1"
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["a", "b", "c", "d"])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b", "c", "d"])
g = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"], axis=-1)], "g", [x], [y])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]); m.ir_version = 10
o = ort.SessionOptions(); o.intra_op_num_threads = 1
if flush: o.add_session_config_entry("session.set_denormal_as_zero", "1")
s = ort.InferenceSession(m.SerializeToString(), o, providers=["CPUExecutionProvider"])
a = np.random.default_rng(0).standard_normal((32, 12, 25, 25)).astype(np.float32)
if mask: a[..., -3:] = mask
s.run(None, {"x": a}); t = time.perf_counter()
for _ in range(30): s.run(None, {"x": a})
print((time.perf_counter() - t) / 30 * 1e3)
"""


def softmax() -> None:
    print("| masked keys set to | denormals kept (ms) | denormals flushed (ms) |")
    print("|---|---:|---:|")
    for mask in (0.0, -1e9, -1e4, -200.0):
        ms = [
            float(
                subprocess.run(
                    [sys.executable, "-c", SOFTMAX_CHILD, repr(mask), flush],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            for flush in ("0", "1")
        ]
        print(f"| {'none' if not mask else f'{mask:g}'} | {ms[0]:.2f} | {ms[1]:.2f} |")


SESSION_CHILD = """
import sys, time
import onnxruntime as ort
t = time.perf_counter()
o = ort.SessionOptions(); o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
o.intra_op_num_threads = 1
ort.InferenceSession(sys.argv[1], sess_options=o, providers=["CPUExecutionProvider"])
print((time.perf_counter() - t) * 1e3)
"""


def session(model: str) -> None:
    import onnx

    from labelwise.settings import Settings

    built = Settings.from_environ().model_dir / model / "model.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        single = Path(tmp) / "model.onnx"
        onnx.save(onnx.load(str(built)), str(single))  # weights back inside the protobuf
        times: dict[str, list[float]] = {"external data (built)": [], "single file": []}
        for _ in range(5):
            for name, path in (("external data (built)", built), ("single file", single)):
                out = subprocess.run(
                    [sys.executable, "-c", SESSION_CHILD, str(path)],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                times[name].append(float(out))
    for name, ts in times.items():
        print(
            f"{model} {name}: first session {statistics.median(ts):.0f} ms "
            f"(median of 5; {[round(t) for t in ts]})"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("ops", "softmax", "session"))
    ap.add_argument("--model", default="all-minilm-l6-v2")
    ap.add_argument("--no-flush-denormals", action="store_true")
    args = ap.parse_args()
    t = time.perf_counter()
    if args.what == "ops":
        ops(args.model, not args.no_flush_denormals)
    elif args.what == "softmax":
        softmax()
    else:
        session(args.model)
    print(f"({time.perf_counter() - t:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
