"""The one place onnxruntime sessions are opened (text, image and CLIP models; the build's checks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def cpu_session(
    path: Path,
    *,
    intra_op_threads: int | None = None,
    optimise: bool = True,
    flush_denormals: bool = False,
    providers: Sequence[str] | None = None,
) -> Any:
    """An ``InferenceSession`` on ``path`` (CPU unless ``providers`` says otherwise).

    ``optimise=False`` skips graph optimisation, for a graph saved already optimised by this
    onnxruntime. ``flush_denormals`` treats denormal floats as zero: the attention softmax of a
    padded batch takes exp of the masked scores, which underflow through denormals several times
    more slowly (docs/performance.md); outputs are unchanged. ``intra_op_threads``: None or 0 keeps
    onnxruntime's default (all cores)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimise else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    if flush_denormals:
        opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    if intra_op_threads:
        opts.intra_op_num_threads = intra_op_threads
    return ort.InferenceSession(
        str(path), sess_options=opts, providers=list(providers or ["CPUExecutionProvider"])
    )
