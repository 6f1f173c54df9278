"""A naive numpy forward pass of the encoder: the parity reference for the ONNX graph.

Each sequence is run on its own (no padding), so padding bugs in the graph show up as mismatches.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import erf

import numpy as np
import numpy.typing as npt

from labelwise.modelbuild.weights import EncoderConfig, EncoderWeights

_erf = np.vectorize(erf, otypes=[np.float64])


def _ln(
    x: npt.NDArray[np.float64], w: npt.NDArray[np.float32], b: npt.NDArray[np.float32], eps: float
) -> npt.NDArray[np.float64]:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    try:
        from scipy.special import erf as sp_erf

        e = sp_erf(x / np.sqrt(2.0))
    except ImportError:  # pragma: no cover - scipy is optional
        e = _erf(x / np.sqrt(2.0))
    return 0.5 * x * (1.0 + e)


def encode_one(cfg: EncoderConfig, w: EncoderWeights, ids: Sequence[int]) -> npt.NDArray[np.float32]:
    """Unit sentence vector of one unpadded token sequence (float64 internally)."""
    n = len(ids)
    idx = np.asarray(ids, dtype=np.int64)
    x = w.word[idx].astype(np.float64) + w.pos[cfg.position_offset : cfg.position_offset + n] + w.type
    x = _ln(x, w.emb_ln_w, w.emb_ln_b, cfg.eps)
    nh, hd = cfg.heads, cfg.head_dim
    for ly in w.layers:
        q = (x @ ly.q_w.T + ly.q_b).reshape(n, nh, hd).transpose(1, 0, 2)
        k = (x @ ly.k_w.T + ly.k_b).reshape(n, nh, hd).transpose(1, 0, 2)
        v = (x @ ly.v_w.T + ly.v_b).reshape(n, nh, hd).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, cfg.hidden)
        x = _ln(x + ctx @ ly.ao_w.T + ly.ao_b, ly.aln_w, ly.aln_b, cfg.eps)
        m = _gelu(x @ ly.fi_w.T + ly.fi_b)
        x = _ln(x + m @ ly.fo_w.T + ly.fo_b, ly.oln_w, ly.oln_b, cfg.eps)
    mean = x.mean(0)
    return (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32)


def encode(cfg: EncoderConfig, w: EncoderWeights, batch: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
    return (
        np.stack([encode_one(cfg, w, ids) for ids in batch])
        if batch
        else np.zeros((0, cfg.hidden), np.float32)
    )
