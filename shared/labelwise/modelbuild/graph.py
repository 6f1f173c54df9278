"""One ONNX graph builder for both encoder families (XLM-R and BERT: post-LN, GELU(erf)).

Graph contract (docs/architecture.md): inputs ``input_ids`` / ``attention_mask`` int64
``[batch, seq]``; position ids computed in-graph (``offset + arange(seq)``, right padding);
masked mean pooling then L2 normalisation; output ``sentence_embedding`` float32 ``[batch, dim]``.

Studies only (:class:`GraphVariant`, ``scripts/quant_study.py``): ``fused=True`` uses onnxruntime
contrib ops SkipLayerNormalization and BiasGelu, ``attention="mha"`` com.microsoft.MultiHeadAttention;
the big projections always stay plain ``MatMul`` so dynamic quantisation applies to them.
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
from labelwise.modelbuild.weights import EncoderConfig, EncoderWeights, LayerWeights

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
    """The nodes and initialisers of a graph being built; names ``<base>_<n>`` in creation order."""

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


#: The linears of an encoder layer: query, key, value, attention out, FFN in, FFN out.
LINEARS = ("q", "k", "v", "ao", "fi", "fo")
F32 = np.float32


@dataclass(frozen=True)
class GraphVariant:
    """Graph forms studied (``scripts/quant_study.py``), not used by the shipped models (:data:`PLAIN`).

    ``fused``: SkipLayerNormalization + BiasGelu (else Add/LayerNormalization/Erf).
    ``attention``: ``"matmul"`` (plain ops, masked softmax) or ``"mha"`` (com.microsoft.MultiHeadAttention).
    Measured on CPU (onnxruntime 1.31, int8 e5, single thread, ~16-token inputs): plain ops 2.7-2.9 ms
    CPU per text, SkipLayerNormalization/BiasGelu 4.7, plus MultiHeadAttention 5.2-5.6; onnxruntime's
    own graph optimiser fuses the plain graph well, so plain is the default (same parity)."""

    fused: bool = False
    attention: str = "matmul"


#: The shipped graphs' form: plain ops.
PLAIN = GraphVariant()


def build_graph(
    cfg: EncoderConfig,
    w: EncoderWeights,
    *,
    word_q4: QuantWordTable | None = None,
    linear_quant: Mapping[str, QuantLinear] | None = None,
    accuracy_level: int = 4,
    row_scaled: Collection[str] = (),
    name: str = "encoder",
    variant: GraphVariant = PLAIN,
) -> onnx.ModelProto:
    """The encoder graph of ``w`` (embeddings, ``cfg.layers`` encoder layers, pooling).

    ``word_q4``: the word table as ``GatherBlockQuantized`` codes (else a float ``Gather``).
    ``linear_quant``: per linear node name (``l<i>.<linear>_mm``), ``MatMulNBits`` codes with
    ``accuracy_level`` (else a float ``MatMul``, dynamically quantised later).
    ``row_scaled``: linears (``"fo"``: every layer's FFN-out; ``"l0.fo"``: layer 0's only) whose input
    rows are divided by their max ``|x|`` before the MatMul and multiplied back after. Exact in
    float; under dynamic int8 it turns the per-tensor activation scale into a per-row (per-token) one
    (docs/performance.md).
    ``variant``: a graph form studied (:class:`GraphVariant`); the shipped graphs are :data:`PLAIN`."""
    _check_options(variant.attention, row_scaled, len(w.layers))
    g = _G()
    hidden = _embeddings(g, cfg, w, word_q4)
    mask = _attention_mask(g, cfg, variant.attention)
    if not variant.fused:
        g.const("c_sqrt2", np.array(np.sqrt(2.0), F32))
        g.const("c_half", np.array(0.5, F32))
    linears = _Linears(g, dict(linear_quant or {}), row_scaled, accuracy_level)
    for index, layer in enumerate(w.layers):
        hidden = _encoder_layer(g, cfg, layer, f"l{index}.", hidden, mask, linears, fused=variant.fused)
    _mean_pool_and_normalise(g, hidden, mask.as_float)
    return _model(g, name, cfg.hidden)


def _check_options(attention: str, row_scaled: Collection[str], n_layers: int) -> None:
    if attention not in ("matmul", "mha"):
        raise ValueError(f"attention must be 'matmul' or 'mha', not {attention!r}")
    known = {*LINEARS, *(f"l{i}.{nm}" for i in range(n_layers) for nm in LINEARS)}
    unknown = sorted(set(row_scaled) - known)
    if unknown:
        raise ValueError(
            f"row_scaled: unknown linears {unknown}; use one of {LINEARS}, or 'l<layer>.<linear>'"
        )


def _embeddings(g: _G, cfg: EncoderConfig, w: EncoderWeights, word_table: QuantWordTable | None) -> str:
    """word + (position + type) embeddings -> LayerNorm: the first hidden states ``[B, S, H]``.
    Also defines the int64 constants 0 and 1 (``c_i64_0``, ``c_i64_1``) later blocks use."""
    word = _word_embeddings(g, w, word_table, "input_ids")
    g.const("pos_type_emb", (w.pos[cfg.position_offset :] + w.type[None, :]).astype(F32))
    g.const("c_i64_0", np.array([0], np.int64))
    g.const("c_i64_1", np.array([1], np.int64))
    seq_len = g.op("Shape", ["input_ids"], start=1, end=2)
    position = g.op("Slice", ["pos_type_emb", "c_i64_0", seq_len, "c_i64_0"])  # [S, H]
    g.const("emb_ln_w", w.emb_ln_w.astype(F32))
    g.const("emb_ln_b", w.emb_ln_b.astype(F32))
    summed = g.op("Add", [word, position])
    return g.op("LayerNormalization", [summed, "emb_ln_w", "emb_ln_b"], axis=-1, epsilon=cfg.eps)


def _word_embeddings(g: _G, w: EncoderWeights, word_table: QuantWordTable | None, ids: str) -> str:
    """The word embeddings of ``ids``: a float Gather, or GatherBlockQuantized of ``word_table``."""
    if word_table is None:
        g.const("word_emb", w.word.astype(F32))
        return g.op("Gather", ["word_emb", ids])
    if word_table.bits == 4:  # INT4, two per byte, no zero point (values = code - 8)
        packed = pack_int4(word_table.codes.astype(np.int16) - 8)
        g.inits.append(
            helper.make_tensor(
                "word_q", TensorProto.INT4, list(word_table.codes.shape), packed.tobytes(), raw=True
            )
        )
    elif word_table.bits == 8:  # uint8 codes, default zero point 128
        g.const("word_q", word_table.codes.astype(np.uint8))
    else:
        raise ValueError(f"word table bits must be 4 or 8, not {word_table.bits}")
    g.const("word_scales", word_table.scales.astype(np.float16 if word_table.fp16_scales else F32))
    word = g.op(
        "GatherBlockQuantized",
        ["word_q", ids, "word_scales"],
        domain=MS_DOMAIN,
        block_size=QK,
        gather_axis=0,
        quantize_axis=1,
        bits=word_table.bits,
    )
    if word_table.fp16_scales:
        word = g.op("Cast", [word], to=TensorProto.FLOAT)
    return word


@dataclass(frozen=True)
class _Mask:
    """The attention mask as the blocks use it."""

    as_float: str  # [B, S], 1.0 attended / 0.0 padded (pooling)
    as_int32: str | None  # [B, S] for MultiHeadAttention ("mha")
    additive_bias: str | None  # [B, 1, 1, S]: 0 where attended, -1e9 where padded ("matmul")


def _attention_mask(g: _G, cfg: EncoderConfig, attention: str) -> _Mask:
    """The mask forms the attention needs; also the constants ``c_one`` and, for plain attention,
    the head reshapes (``shape_bsnh``, ``shape_bsh``) and the score scale ``c_scale``."""
    as_float = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    g.const("c_one", np.array(1.0, F32))
    if attention == "mha":
        return _Mask(as_float, g.op("Cast", ["attention_mask"], to=TensorProto.INT32), None)
    g.const("c_neg", np.array(-1e9, F32))
    padded = g.op("Sub", ["c_one", as_float])
    bias = g.op("Unsqueeze", [g.op("Mul", [padded, "c_neg"]), g.const("ax_1_2", np.array([1, 2], np.int64))])
    g.const("shape_bsnh", np.array([0, 0, cfg.heads, cfg.head_dim], np.int64))
    g.const("shape_bsh", np.array([0, 0, cfg.hidden], np.int64))
    g.const("c_scale", np.array(1.0 / np.sqrt(cfg.head_dim), F32))
    return _Mask(as_float, None, bias)


class _Linears:
    """The layers' linear projections ``x @ W.T``: a float MatMul (dynamic int8 later), a row-scaled
    one, or MatMulNBits codes."""

    def __init__(
        self, g: _G, quant: dict[str, QuantLinear], row_scaled: Collection[str], accuracy_level: int
    ) -> None:
        self.g = g
        self.quant = quant
        self.row_scaled = row_scaled
        self.accuracy_level = accuracy_level
        self._row_scales: dict[str, tuple[str, str]] = {}  # input -> (input / r, r)
        if row_scaled:
            g.const("ax_last", np.array([-1], np.int64))
            g.const("c_row_eps", np.array(1e-6, F32))

    def project(self, inp: str, prefix: str, linear: str, weight: npt.NDArray[np.float32]) -> str:
        """``inp @ weight.T`` for the layer's linear ``linear`` (node ``<prefix><linear>_mm``)."""
        node = f"{prefix}{linear}_mm"
        quantised = self.quant.get(node)
        if quantised is not None:
            return self._nbits(inp, prefix, linear, node, quantised)
        if linear in self.row_scaled or f"{prefix}{linear}" in self.row_scaled:
            return self._row_scaled_matmul(inp, prefix, linear, node, weight)
        return self.g.op(
            "MatMul", [inp, self.g.const(f"{prefix}{linear}_w", weight.T.astype(F32))], node=node
        )

    def _row_scaled_matmul(
        self, inp: str, prefix: str, linear: str, node: str, weight: npt.NDArray[np.float32]
    ) -> str:
        # diag(r) (diag(r)^-1 X) W == X W: every row of the MatMul's input has max |x| = 1, so
        # the per-tensor activation scale of dynamic int8 becomes in effect a per-row (per-token)
        # one. Linears reading the same input (q, k, v) share one scaling.
        g = self.g
        if inp not in self._row_scales:
            row_max = g.op("ReduceMax", [g.op("Abs", [inp]), "ax_last"], keepdims=1)
            row_max = g.op("Max", [row_max, "c_row_eps"])
            self._row_scales[inp] = (g.op("Div", [inp, row_max]), row_max)
        scaled, row_max = self._row_scales[inp]
        weight_name = g.const(f"{prefix}{linear}_w", weight.T.astype(F32))
        return g.op("Mul", [g.op("MatMul", [scaled, weight_name], node=node), row_max])

    def _nbits(self, inp: str, prefix: str, linear: str, node: str, quantised: QuantLinear) -> str:
        n_out, k_in = quantised.codes.shape
        per_byte = 8 // quantised.bits
        codes = quantised.codes.reshape(
            n_out, k_in // quantised.block_size, quantised.block_size // per_byte, per_byte
        )
        packed = codes[..., 0].copy() if per_byte == 1 else codes[..., 0] | (codes[..., 1] << 4)
        packed_name = self.g.const(f"{prefix}{linear}_qw", packed.astype(np.uint8))
        scales_name = self.g.const(f"{prefix}{linear}_qs", quantised.scales.reshape(-1).astype(F32))
        return self.g.op(
            "MatMulNBits",
            [inp, packed_name, scales_name],
            domain=MS_DOMAIN,
            node=node,
            K=k_in,
            N=n_out,
            bits=quantised.bits,
            block_size=quantised.block_size,
            accuracy_level=self.accuracy_level,
        )


@dataclass(frozen=True)
class _LayerBlock:
    """What the blocks of one encoder layer build with: the graph, the config, the layer's weights,
    its name prefix (``l<i>.``) and the linear projections."""

    g: _G
    cfg: EncoderConfig
    weights: LayerWeights
    prefix: str
    linears: _Linears


def _encoder_layer(
    g: _G,
    cfg: EncoderConfig,
    layer: LayerWeights,
    prefix: str,
    hidden: str,
    mask: _Mask,
    linears: _Linears,
    *,
    fused: bool,
) -> str:
    """One post-LN encoder layer: self-attention, residual + LayerNorm, FFN with GELU(erf),
    residual + LayerNorm. Its output hidden states."""
    for const_name in ("ao_b", "aln_w", "aln_b", "fi_b", "fo_b", "oln_w", "oln_b"):
        g.const(prefix + const_name, getattr(layer, const_name).astype(F32))
    query = linears.project(hidden, prefix, "q", layer.q_w)
    key = linears.project(hidden, prefix, "k", layer.k_w)
    value = linears.project(hidden, prefix, "v", layer.v_w)
    if mask.as_int32 is not None:
        qkv_bias = g.const(prefix + "qkv_b", np.concatenate([layer.q_b, layer.k_b, layer.v_b]).astype(F32))
        context = g.op(
            "MultiHeadAttention",
            [query, key, value, qkv_bias, mask.as_int32],
            domain=MS_DOMAIN,
            num_heads=cfg.heads,
        )
    else:
        context = _plain_attention(g, layer, prefix, query, key, value, mask)
    attention_out = linears.project(context, prefix, "ao", layer.ao_w)
    block = _LayerBlock(g, cfg, layer, prefix, linears)
    if fused:
        return _fused_residual_and_ffn(block, hidden, attention_out)
    return _residual_and_ffn(block, hidden, attention_out)


def _plain_attention(
    g: _G, layer: LayerWeights, prefix: str, query: str, key: str, value: str, mask: _Mask
) -> str:
    """softmax(Q K^T / sqrt(head_dim) + mask bias) V per head, in plain ops: the context ``[B, S, H]``."""
    assert mask.additive_bias is not None
    query = g.op("Add", [query, g.const(prefix + "q_b", layer.q_b.astype(F32))])
    key = g.op("Add", [key, g.const(prefix + "k_b", layer.k_b.astype(F32))])
    value = g.op("Add", [value, g.const(prefix + "v_b", layer.v_b.astype(F32))])
    query_heads = g.op("Transpose", [g.op("Reshape", [query, "shape_bsnh"])], perm=[0, 2, 1, 3])
    key_heads_t = g.op("Transpose", [g.op("Reshape", [key, "shape_bsnh"])], perm=[0, 2, 3, 1])
    value_heads = g.op("Transpose", [g.op("Reshape", [value, "shape_bsnh"])], perm=[0, 2, 1, 3])
    scores = g.op(
        "Add", [g.op("Mul", [g.op("MatMul", [query_heads, key_heads_t]), "c_scale"]), mask.additive_bias]
    )
    probabilities = g.op("Softmax", [scores], axis=-1)
    context_heads = g.op("MatMul", [probabilities, value_heads])
    return g.op("Reshape", [g.op("Transpose", [context_heads], perm=[0, 2, 1, 3]), "shape_bsh"])


def _residual_and_ffn(block: _LayerBlock, hidden: str, attention_out: str) -> str:
    """Plain ops: Add + LayerNormalization, FFN with GELU(erf) = x (1 + erf(x / sqrt 2)) / 2."""
    g, cfg, layer, prefix, linears = block.g, block.cfg, block.weights, block.prefix, block.linears
    attention_out = g.op("Add", [attention_out, prefix + "ao_b"])
    hidden = g.op(
        "LayerNormalization",
        [g.op("Add", [attention_out, hidden]), prefix + "aln_w", prefix + "aln_b"],
        axis=-1,
        epsilon=cfg.eps,
    )
    inner = g.op("Add", [linears.project(hidden, prefix, "fi", layer.fi_w), prefix + "fi_b"])
    erf = g.op("Erf", [g.op("Div", [inner, "c_sqrt2"])])
    inner = g.op("Mul", [g.op("Mul", [inner, g.op("Add", [erf, "c_one"])]), "c_half"])
    ffn_out = g.op("Add", [linears.project(inner, prefix, "fo", layer.fo_w), prefix + "fo_b"])
    return g.op(
        "LayerNormalization",
        [g.op("Add", [ffn_out, hidden]), prefix + "oln_w", prefix + "oln_b"],
        axis=-1,
        epsilon=cfg.eps,
    )


def _fused_residual_and_ffn(block: _LayerBlock, hidden: str, attention_out: str) -> str:
    """The same with onnxruntime's SkipLayerNormalization and BiasGelu."""
    g, cfg, layer, prefix, linears = block.g, block.cfg, block.weights, block.prefix, block.linears
    hidden = g.op(
        "SkipLayerNormalization",
        [attention_out, hidden, prefix + "aln_w", prefix + "aln_b", prefix + "ao_b"],
        domain=MS_DOMAIN,
        epsilon=cfg.eps,
    )
    inner = linears.project(hidden, prefix, "fi", layer.fi_w)
    inner = g.op("BiasGelu", [inner, prefix + "fi_b"], domain=MS_DOMAIN)
    ffn_out = linears.project(inner, prefix, "fo", layer.fo_w)
    return g.op(
        "SkipLayerNormalization",
        [ffn_out, hidden, prefix + "oln_w", prefix + "oln_b", prefix + "fo_b"],
        domain=MS_DOMAIN,
        epsilon=cfg.eps,
    )


def _mean_pool_and_normalise(g: _G, hidden: str, mask_float: str) -> None:
    """Masked mean pooling then L2 normalisation into the output ``sentence_embedding`` ``[B, H]``."""
    mask_3d = g.op("Unsqueeze", [mask_float, g.const("ax_2", np.array([2], np.int64))])  # [B, S, 1]
    pooled_sum = g.op("ReduceSum", [g.op("Mul", [hidden, mask_3d]), "c_i64_1"], keepdims=0)  # [B, H]
    count = g.op("ReduceSum", [mask_float, "c_i64_1"], keepdims=1)  # [B, 1]
    count = g.op("Max", [count, g.const("c_min_count", np.array(1e-9, F32))])
    mean = g.op("Div", [pooled_sum, count])
    norm = g.op("Sqrt", [g.op("ReduceSumSquare", [mean, "c_i64_1"], keepdims=1)])
    norm = g.op("Max", [norm, g.const("c_min_norm", np.array(1e-12, F32))])
    g.op("Div", [mean, norm], out="sentence_embedding")


def _model(g: _G, name: str, hidden_size: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        g.nodes,
        name,
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden_size])],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
        producer_name="labelwise.modelbuild",
    )
    model.ir_version = IR_VERSION
    return model
