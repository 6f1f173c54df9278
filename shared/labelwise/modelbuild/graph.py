"""One ONNX graph builder for both encoder families (XLM-R and BERT: post-LN, GELU(erf)).

Graph contract (docs/architecture.md): inputs ``input_ids`` / ``attention_mask`` int64
``[batch, seq]``; position ids computed in-graph (``offset + arange(seq)``, right padding);
masked mean pooling then L2 normalisation; output ``sentence_embedding`` float32 ``[batch, dim]``.

``fused=True`` uses onnxruntime contrib ops SkipLayerNormalization and BiasGelu,
``attention="mha"`` com.microsoft.MultiHeadAttention; the big projections always stay plain
``MatMul`` so dynamic quantisation applies to them.
``word_q4`` replaces the float word table with ``com.microsoft.GatherBlockQuantized`` (int4).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from labelwise.modelbuild.sources import QK, pack_int4, q4_0_quantize
from labelwise.modelbuild.weights import EncoderConfig, EncoderWeights

OPSET = 18
MS_DOMAIN = "com.microsoft"
IR_VERSION = 10  # onnxruntime 1.31 rejects newer IR versions


@dataclass(frozen=True)
class QuantWordTable:
    """A block-quantised word table for ``com.microsoft.GatherBlockQuantized``: unsigned codes
    (value = (code - 2**(bits-1)) * scale; 4-bit = Q4_0 nibbles in weight order) and per-32-block scales."""

    codes: npt.NDArray[np.uint8]  # [vocab, hidden]
    scales: npt.NDArray[np.float32]  # [vocab, hidden / 32]
    bits: int = 4
    # fp16 scales (exact for Q4_0, whose scales are fp16) halve the scale table; the gathered rows are
    # then fp16 (relative rounding 2^-11, far below the 4-bit error) and cast to float32.
    fp16_scales: bool = True


WordTableQ4 = QuantWordTable


@dataclass(frozen=True)
class QuantLinear:
    """Block-quantised weight of one linear ``[nout, nin]`` for ``com.microsoft.MatMulNBits``:
    unsigned codes (zero point ``2**(bits-1)``: value = (code - zp) * scale), blocks along ``nin``."""

    codes: npt.NDArray[np.uint8]  # [nout, nin]
    scales: npt.NDArray[np.float32]  # [nout, nin / block_size]
    bits: int = 4
    block_size: int = QK


def quantize_linear(w: npt.NDArray[np.float32], bits: int = 8, block_size: int = QK) -> QuantLinear:
    """Symmetric block quantisation of a float ``[nout, nin]`` weight (4-bit: ggml Q4_0)."""
    if bits == 4 and block_size == QK:
        codes, d = q4_0_quantize(w)
        return QuantLinear(codes, d, 4, QK)
    n, k = w.shape
    blocks = w.astype(np.float32).reshape(n, k // block_size, block_size)
    zp = 1 << (bits - 1)
    d = np.abs(blocks).max(axis=2) / (zp - 1)
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    codes = np.clip(np.rint(blocks * inv[:, :, None]) + zp, 0, 2 * zp - 1).astype(np.uint8)
    return QuantLinear(codes.reshape(n, k), d.astype(np.float32), bits, block_size)


class _G:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, name: str, arr: npt.NDArray[np.generic]) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def op(
        self,
        op_type: str,
        inputs: list[str],
        *,
        out: str | None = None,
        domain: str = "",
        node: str | None = None,
        **attrs: Any,
    ) -> str:
        o = out or self.name(op_type.lower())
        self.nodes.append(
            helper.make_node(op_type, inputs, [o], name=node or self.name(op_type), domain=domain, **attrs)
        )
        return o


def build_graph(
    cfg: EncoderConfig,
    w: EncoderWeights,
    *,
    fused: bool = False,
    attention: str = "matmul",
    word_q4: QuantWordTable | None = None,
    linear_quant: Mapping[str, QuantLinear] | None = None,
    accuracy_level: int = 4,
    row_scaled: Collection[str] = (),
    name: str = "encoder",
) -> onnx.ModelProto:
    """``fused``: SkipLayerNormalization + BiasGelu (else Add/LayerNormalization/Erf).
    ``attention``: ``"matmul"`` (plain ops, masked softmax) or ``"mha"`` (com.microsoft.MultiHeadAttention).
    Measured on CPU (onnxruntime 1.31, int8 e5, single thread, ~16-token inputs): plain ops 2.7-2.9 ms
    CPU per text, SkipLayerNormalization/BiasGelu 4.7, plus MultiHeadAttention 5.2-5.6; onnxruntime's
    own graph optimiser fuses the plain graph well, so plain is the default (same parity).
    ``row_scaled``: linears (``"fo"``: every layer's FFN-out; ``"l0.fo"``: layer 0's only) whose input
    rows are divided by their max ``|x|`` before the MatMul and multiplied back after. Exact in
    float; under dynamic int8 it turns the per-tensor activation scale into a per-row (per-token) one
    (docs/performance.md)."""
    if attention not in ("matmul", "mha"):
        raise ValueError(f"attention must be 'matmul' or 'mha', not {attention!r}")
    linears = ("q", "k", "v", "ao", "fi", "fo")
    known = {*linears, *(f"l{i}.{nm}" for i in range(len(w.layers)) for nm in linears)}
    unknown = sorted(set(row_scaled) - known)
    if unknown:
        raise ValueError(
            f"row_scaled: unknown linears {unknown}; use one of {linears}, or 'l<layer>.<linear>'"
        )
    g = _G()
    h, nh, hd = cfg.hidden, cfg.heads, cfg.head_dim
    f32 = np.float32

    ids, mask = "input_ids", "attention_mask"
    # ---- embeddings: word + (pos + type) -> LayerNorm
    if word_q4 is not None:
        if word_q4.bits == 4:  # INT4, two per byte, no zero point (values = code - 8)
            packed = pack_int4(word_q4.codes.astype(np.int16) - 8)
            data = helper.make_tensor(
                "word_q", TensorProto.INT4, list(word_q4.codes.shape), packed.tobytes(), raw=True
            )
            g.inits.append(data)
        elif word_q4.bits == 8:  # uint8 codes, default zero point 128
            g.const("word_q", word_q4.codes.astype(np.uint8))
        else:
            raise ValueError(f"word table bits must be 4 or 8, not {word_q4.bits}")
        g.const("word_scales", word_q4.scales.astype(np.float16 if word_q4.fp16_scales else f32))
        word = g.op(
            "GatherBlockQuantized",
            ["word_q", ids, "word_scales"],
            domain=MS_DOMAIN,
            block_size=QK,
            gather_axis=0,
            quantize_axis=1,
            bits=word_q4.bits,
        )
        if word_q4.fp16_scales:
            word = g.op("Cast", [word], to=TensorProto.FLOAT)
    else:
        g.const("word_emb", w.word.astype(f32))
        word = g.op("Gather", ["word_emb", ids])
    pos_table = (w.pos[cfg.position_offset :] + w.type[None, :]).astype(f32)
    g.const("pos_type_emb", pos_table)
    g.const("c_i64_0", np.array([0], np.int64))
    g.const("c_i64_1", np.array([1], np.int64))
    seq = g.op("Shape", [ids], start=1, end=2)
    pos = g.op("Slice", ["pos_type_emb", "c_i64_0", seq, "c_i64_0"])  # [S, H]
    g.const("emb_ln_w", w.emb_ln_w.astype(f32))
    g.const("emb_ln_b", w.emb_ln_b.astype(f32))
    summed = g.op("Add", [word, pos])
    x = g.op("LayerNormalization", [summed, "emb_ln_w", "emb_ln_b"], axis=-1, epsilon=cfg.eps)

    maskf = g.op("Cast", [mask], to=TensorProto.FLOAT)  # [B, S]
    g.const("c_one", np.array(1.0, f32))
    if attention == "mha":
        mask_i32 = g.op("Cast", [mask], to=TensorProto.INT32)
    else:
        # additive bias [B, 1, 1, S]: 0 where attended, -1e9 where padded
        g.const("c_neg", np.array(-1e9, f32))
        inv = g.op("Sub", ["c_one", maskf])
        bias4 = g.op(
            "Unsqueeze", [g.op("Mul", [inv, "c_neg"]), g.const("ax_1_2", np.array([1, 2], np.int64))]
        )
        g.const("shape_bsnh", np.array([0, 0, nh, hd], np.int64))
        g.const("shape_bsh", np.array([0, 0, h], np.int64))
        g.const("c_scale", np.array(1.0 / np.sqrt(hd), f32))
    if not fused:
        g.const("c_sqrt2", np.array(np.sqrt(2.0), f32))
        g.const("c_half", np.array(0.5, f32))

    quant = dict(linear_quant or {})
    row_scales: dict[str, tuple[str, str]] = {}  # input -> (input / r, r)
    if row_scaled:
        g.const("ax_last", np.array([-1], np.int64))
        g.const("c_row_eps", np.array(1e-6, f32))

    def mm(inp: str, p: str, nm: str, lin: dict[str, npt.NDArray[np.float32]]) -> str:
        """``inp @ W.T`` for the layer's linear ``nm``: plain MatMul (dynamic int8 later) or MatMulNBits."""
        node = f"{p}{nm}_mm"
        ql = quant.get(node)
        if ql is None and (nm in row_scaled or f"{p}{nm}" in row_scaled):
            # diag(r) (diag(r)^-1 X) W == X W: every row of the MatMul's input has max |x| = 1, so
            # the per-tensor activation scale of dynamic int8 becomes in effect a per-row (per-token)
            # one. Linears reading the same input (q, k, v) share one scaling.
            if inp not in row_scales:
                r = g.op("ReduceMax", [g.op("Abs", [inp]), "ax_last"], keepdims=1)
                r = g.op("Max", [r, "c_row_eps"])
                row_scales[inp] = (g.op("Div", [inp, r]), r)
            scaled, r = row_scales[inp]
            w_nm = g.const(f"{p}{nm}_w", lin[nm].T.astype(f32))
            return g.op("Mul", [g.op("MatMul", [scaled, w_nm], node=node), r])
        if ql is None:
            return g.op("MatMul", [inp, g.const(f"{p}{nm}_w", lin[nm].T.astype(f32))], node=node)
        n_out, k_in = ql.codes.shape
        per_byte = 8 // ql.bits
        codes = ql.codes.reshape(n_out, k_in // ql.block_size, ql.block_size // per_byte, per_byte)
        packed = codes[..., 0].copy() if per_byte == 1 else codes[..., 0] | (codes[..., 1] << 4)
        b = g.const(f"{p}{nm}_qw", packed.astype(np.uint8))
        sc = g.const(f"{p}{nm}_qs", ql.scales.reshape(-1).astype(f32))
        return g.op(
            "MatMulNBits",
            [inp, b, sc],
            domain=MS_DOMAIN,
            node=node,
            K=k_in,
            N=n_out,
            bits=ql.bits,
            block_size=ql.block_size,
            accuracy_level=accuracy_level,
        )

    for i, ly in enumerate(w.layers):
        p = f"l{i}."
        lin = {nm: getattr(ly, nm + "_w") for nm in ("q", "k", "v", "ao", "fi", "fo")}
        for nm, arr in (
            ("ao_b", ly.ao_b),
            ("aln_w", ly.aln_w),
            ("aln_b", ly.aln_b),
            ("fi_b", ly.fi_b),
            ("fo_b", ly.fo_b),
            ("oln_w", ly.oln_w),
            ("oln_b", ly.oln_b),
        ):
            g.const(p + nm, arr.astype(f32))
        q = mm(x, p, "q", lin)
        k = mm(x, p, "k", lin)
        v = mm(x, p, "v", lin)
        # ---- self-attention
        if attention == "mha":
            qkv_b = g.const(p + "qkv_b", np.concatenate([ly.q_b, ly.k_b, ly.v_b]).astype(f32))
            ctx = g.op("MultiHeadAttention", [q, k, v, qkv_b, mask_i32], domain=MS_DOMAIN, num_heads=nh)
        else:
            q = g.op("Add", [q, g.const(p + "q_b", ly.q_b.astype(f32))])
            k = g.op("Add", [k, g.const(p + "k_b", ly.k_b.astype(f32))])
            v = g.op("Add", [v, g.const(p + "v_b", ly.v_b.astype(f32))])
            qh = g.op("Transpose", [g.op("Reshape", [q, "shape_bsnh"])], perm=[0, 2, 1, 3])
            kh = g.op("Transpose", [g.op("Reshape", [k, "shape_bsnh"])], perm=[0, 2, 3, 1])
            vh = g.op("Transpose", [g.op("Reshape", [v, "shape_bsnh"])], perm=[0, 2, 1, 3])
            scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [qh, kh]), "c_scale"]), bias4])
            probs = g.op("Softmax", [scores], axis=-1)
            ctxh = g.op("MatMul", [probs, vh])
            ctx = g.op("Reshape", [g.op("Transpose", [ctxh], perm=[0, 2, 1, 3]), "shape_bsh"])
        a = mm(ctx, p, "ao", lin)
        # ---- residual + LayerNorm, FFN with GELU(erf), residual + LayerNorm
        if fused:
            x = g.op(
                "SkipLayerNormalization",
                [a, x, p + "aln_w", p + "aln_b", p + "ao_b"],
                domain=MS_DOMAIN,
                epsilon=cfg.eps,
            )
            m = mm(x, p, "fi", lin)
            m = g.op("BiasGelu", [m, p + "fi_b"], domain=MS_DOMAIN)
            o = mm(m, p, "fo", lin)
            x = g.op(
                "SkipLayerNormalization",
                [o, x, p + "oln_w", p + "oln_b", p + "fo_b"],
                domain=MS_DOMAIN,
                epsilon=cfg.eps,
            )
        else:
            a = g.op("Add", [a, p + "ao_b"])
            x = g.op(
                "LayerNormalization",
                [g.op("Add", [a, x]), p + "aln_w", p + "aln_b"],
                axis=-1,
                epsilon=cfg.eps,
            )
            m = g.op("Add", [mm(x, p, "fi", lin), p + "fi_b"])
            erf = g.op("Erf", [g.op("Div", [m, "c_sqrt2"])])
            m = g.op("Mul", [g.op("Mul", [m, g.op("Add", [erf, "c_one"])]), "c_half"])
            o = g.op("Add", [mm(m, p, "fo", lin), p + "fo_b"])
            x = g.op(
                "LayerNormalization",
                [g.op("Add", [o, x]), p + "oln_w", p + "oln_b"],
                axis=-1,
                epsilon=cfg.eps,
            )

    # ---- masked mean pooling + L2 normalisation
    m3 = g.op("Unsqueeze", [maskf, g.const("ax_2", np.array([2], np.int64))])  # [B, S, 1]
    pooled_sum = g.op("ReduceSum", [g.op("Mul", [x, m3]), "c_i64_1"], keepdims=0)  # [B, H]
    count = g.op("ReduceSum", [maskf, "c_i64_1"], keepdims=1)  # [B, 1]
    count = g.op("Max", [count, g.const("c_min_count", np.array(1e-9, f32))])
    mean = g.op("Div", [pooled_sum, count])
    norm = g.op("Sqrt", [g.op("ReduceSumSquare", [mean, "c_i64_1"], keepdims=1)])
    norm = g.op("Max", [norm, g.const("c_min_norm", np.array(1e-12, f32))])
    g.op("Div", [mean, norm], out="sentence_embedding")

    graph = helper.make_graph(
        g.nodes,
        name,
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", h])],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
        producer_name="labelwise.modelbuild",
    )
    model.ir_version = IR_VERSION
    return model
