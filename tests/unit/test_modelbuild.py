"""Unit tests of the model build recipe: weight readers, Q4_0, the ONNX graph builder."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest

pytest.importorskip("onnx")
import onnxruntime as ort

from labelwise.modelbuild import reference
from labelwise.modelbuild.graph import GraphVariant, QuantWordTable, build_graph, quantize_linear
from labelwise.modelbuild.sources import (
    QK,
    bert_from_safetensors,
    pack_int4,
    q4_0_decode,
    q4_0_quantize,
    read_e5_container,
    read_safetensors,
    write_safetensors,
)
from labelwise.modelbuild.weights import random_weights
from tests.support.tiny import tiny_config

SEQS = [[2, 10, 11, 12, 3], [2, 20, 3], [2, 5, 6, 7, 8, 9, 13, 14, 15, 3], [2, 3]]


def _pad(seqs: list[list[int]], pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
    n, s = len(seqs), max(len(x) for x in seqs)
    ids = np.full((n, s), pad, np.int64)
    mask = np.zeros((n, s), np.int64)
    for i, x in enumerate(seqs):
        ids[i, : len(x)] = x
        mask[i, : len(x)] = 1
    return ids, mask


def _run(model, seqs: list[list[int]]) -> np.ndarray:  # type: ignore[no-untyped-def]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ids, mask = _pad(seqs)
    return sess.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})[0]


# ----------------------------------------------------------------------------- graph vs numpy
VARIANTS = [(False, "matmul"), (True, "matmul"), (True, "mha"), (False, "mha")]


@pytest.mark.parametrize("family", ["bert", "xlm-roberta"])
@pytest.mark.parametrize(("fused", "attention"), VARIANTS)
def test_graph_matches_numpy_reference(family: str, fused: bool, attention: str) -> None:
    # Given a tiny random-weight encoder of either family
    cfg = tiny_config(family)
    w = random_weights(cfg, seed=1)
    # When the ONNX graph (plain or with contrib ops) embeds a padded batch
    got = _run(build_graph(cfg, w, variant=GraphVariant(fused, attention)), SEQS)
    # Then it matches the naive numpy forward pass run on each unpadded sequence
    np.testing.assert_allclose(got, reference.encode(cfg, w, SEQS), atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(("fused", "attention"), VARIANTS)
def test_graph_is_padding_invariant(fused: bool, attention: str) -> None:
    # Given a tiny model and one sequence
    cfg = tiny_config("xlm-roberta")
    model = build_graph(cfg, random_weights(cfg, seed=2), variant=GraphVariant(fused, attention))
    alone = _run(model, [SEQS[0]])
    # When the same sequence is embedded inside a batch padded to a longer length
    batched = _run(model, [SEQS[2], SEQS[0], SEQS[3]])
    # Then its vector does not change
    np.testing.assert_allclose(batched[1], alone[0], atol=1e-5)


@pytest.mark.parametrize(("fp16_scales", "atol"), [(False, 2e-5), (True, 1e-3)])
def test_int4_word_table_graph_matches_dequantised_reference(fp16_scales: bool, atol: float) -> None:
    # Given a word table quantised to Q4_0 nibbles and scales
    cfg = tiny_config("xlm-roberta")
    w = random_weights(cfg, seed=3)
    nib, d = q4_0_quantize(w.word)
    deq = ((nib.astype(np.float32) - 8).reshape(cfg.vocab, -1, QK) * d[:, :, None]).reshape(w.word.shape)
    # When the graph gathers from it with GatherBlockQuantized
    got = _run(build_graph(cfg, w, word_q4=QuantWordTable(nib, d, 4, fp16_scales)), SEQS)
    # Then it equals the float graph run on the dequantised table (fp16 rows: to fp16 rounding)
    np.testing.assert_allclose(got, reference.encode(cfg, dataclasses.replace(w, word=deq), SEQS), atol=atol)


def test_int8_word_table_and_nbits_linears_match_dequantised_reference() -> None:
    # Given a word table and every layer linear block-quantised to 8 bits
    cfg = tiny_config("bert")
    w = random_weights(cfg, seed=6)
    wt = quantize_linear(w.word, 8)
    lq = {
        f"l{i}.{k}_mm": quantize_linear(getattr(ly, k + "_w"), 8)
        for i, ly in enumerate(w.layers)
        for k in ("q", "k", "v", "ao", "fi", "fo")
    }

    def deq(q) -> np.ndarray:  # type: ignore[no-untyped-def]
        n, k = q.codes.shape
        return ((q.codes.astype(np.float32) - 128).reshape(n, k // QK, QK) * q.scales[:, :, None]).reshape(
            n, k
        )

    layers = tuple(
        dataclasses.replace(
            ly, **{f"{k}_w": deq(lq[f"l{i}.{k}_mm"]) for k in ("q", "k", "v", "ao", "fi", "fo")}
        )
        for i, ly in enumerate(w.layers)
    )
    want = reference.encode(cfg, dataclasses.replace(w, word=deq(wt), layers=layers), SEQS)
    # When built with GatherBlockQuantized (8-bit) and MatMulNBits (8-bit, exact float activations)
    model = build_graph(
        cfg, w, word_q4=QuantWordTable(wt.codes, wt.scales, 8, False), linear_quant=lq, accuracy_level=0
    )
    # Then the graph equals the float reference on the dequantised weights
    np.testing.assert_allclose(_run(model, SEQS), want, atol=5e-5)


def test_graph_is_deterministic() -> None:
    # Given one tiny model
    cfg = tiny_config()
    model = build_graph(cfg, random_weights(cfg, seed=4))
    # When the same batch runs twice / the builder runs twice
    # Then the outputs and serialised graphs are identical
    np.testing.assert_array_equal(_run(model, SEQS), _run(model, SEQS))
    assert build_graph(cfg, random_weights(cfg, seed=4)).SerializeToString() == model.SerializeToString()


def test_graph_declares_ir10_and_contract_io() -> None:
    cfg = tiny_config()
    model = build_graph(cfg, random_weights(cfg))
    assert model.ir_version == 10
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in model.graph.output] == ["sentence_embedding"]


# ----------------------------------------------------------------------------- Q4_0
def _naive_q4_0(raw: bytes, nrows: int, ncols: int) -> np.ndarray:
    out = np.zeros((nrows, ncols), np.float32)
    nb = ncols // QK
    for r in range(nrows):
        for b in range(nb):
            off = (r * nb + b) * 18
            (d,) = struct.unpack("<e", raw[off : off + 2])
            for j in range(16):
                byte = raw[off + 2 + j]
                out[r, b * QK + j] = ((byte & 0x0F) - 8) * d
                out[r, b * QK + j + 16] = ((byte >> 4) - 8) * d
    return out


def test_q4_0_decode_matches_naive_per_element_reference() -> None:
    # Given random Q4_0 blocks (random scales and nibbles)
    rng = np.random.default_rng(0)
    nrows, ncols = 3, 64
    raw = bytearray()
    for _ in range(nrows * ncols // QK):
        raw += struct.pack("<e", float(rng.normal()))
        raw += bytes(rng.integers(0, 256, 16, dtype=np.uint8))
    # When decoded with the vectorised decoder
    got = q4_0_decode(bytes(raw), nrows, ncols)
    # Then every element equals the per-element reference
    np.testing.assert_array_equal(got, _naive_q4_0(bytes(raw), nrows, ncols))


def test_q4_0_quantize_round_trip_error_is_within_half_a_step() -> None:
    # Given random values
    x = np.random.default_rng(1).normal(size=(5, 96)).astype(np.float32)
    # When quantised ggml-style and dequantised
    nib, d = q4_0_quantize(x)
    deq = ((nib.astype(np.float32) - 8).reshape(5, 3, QK) * d[:, :, None]).reshape(5, 96)
    # Then unclipped values are within half a step (plus fp16 scale rounding), clipped ones within one
    step = np.repeat(np.abs(d), QK, axis=1)
    err = np.abs(deq - x)
    assert np.all(err[nib < 15] <= step[nib < 15] * 0.51 + 1e-6)
    assert np.all(err <= step * 1.01 + 1e-6)


def test_pack_int4_puts_even_elements_in_the_low_nibble() -> None:
    packed = pack_int4(np.array([[1, -1, -8, 7]]))
    assert packed.tolist() == [[0xF1, 0x78]]


# ----------------------------------------------------------------------------- safetensors
def test_safetensors_round_trip() -> None:
    # Given tensors of several dtypes
    t = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.array([[1, 2]], np.int64),
        "c": np.ones(4, np.float16),
    }
    # When written and read back
    back = read_safetensors(write_safetensors(t))
    # Then names, dtypes, shapes and values survive
    assert set(back) == set(t)
    for k, v in t.items():
        assert back[k].dtype == v.dtype
        np.testing.assert_array_equal(back[k], v)


def test_bert_from_safetensors_maps_hf_names() -> None:
    cfg = tiny_config("bert", layers=1)
    w = random_weights(cfg)
    ly = w.layers[0]
    p = "encoder.layer.0."
    t = {
        "embeddings.word_embeddings.weight": w.word,
        "embeddings.position_embeddings.weight": w.pos,
        "embeddings.token_type_embeddings.weight": np.stack([w.type, w.type * 0]),
        "embeddings.LayerNorm.weight": w.emb_ln_w,
        "embeddings.LayerNorm.bias": w.emb_ln_b,
        p + "attention.self.query.weight": ly.q_w,
        p + "attention.self.query.bias": ly.q_b,
        p + "attention.self.key.weight": ly.k_w,
        p + "attention.self.key.bias": ly.k_b,
        p + "attention.self.value.weight": ly.v_w,
        p + "attention.self.value.bias": ly.v_b,
        p + "attention.output.dense.weight": ly.ao_w,
        p + "attention.output.dense.bias": ly.ao_b,
        p + "attention.output.LayerNorm.weight": ly.aln_w,
        p + "attention.output.LayerNorm.bias": ly.aln_b,
        p + "intermediate.dense.weight": ly.fi_w,
        p + "intermediate.dense.bias": ly.fi_b,
        p + "output.dense.weight": ly.fo_w,
        p + "output.dense.bias": ly.fo_b,
        p + "output.LayerNorm.weight": ly.oln_w,
        p + "output.LayerNorm.bias": ly.oln_b,
    }
    config = {
        "num_hidden_layers": 1,
        "hidden_size": cfg.hidden,
        "num_attention_heads": cfg.heads,
        "intermediate_size": cfg.ffn,
        "vocab_size": cfg.vocab,
        "max_position_embeddings": cfg.max_positions,
    }
    got_cfg, got = bert_from_safetensors(read_safetensors(write_safetensors(t)), config)
    assert got_cfg.hidden == cfg.hidden and got_cfg.layers == 1
    np.testing.assert_array_equal(got.layers[0].fo_w, ly.fo_w)
    np.testing.assert_array_equal(got.type, w.type)


# ----------------------------------------------------------------------------- E5S1 container
def _q4_bytes(x: np.ndarray) -> bytes:
    nib, d = q4_0_quantize(x)
    out = bytearray()
    r, c = x.shape
    for i in range(r):
        for b in range(c // QK):
            out += np.float16(d[i, b]).tobytes()
            blk = nib[i, b * QK : (b + 1) * QK]
            out += bytes((blk[:16] | (blk[16:] << 4)).astype(np.uint8))
    return bytes(out)


def _write_e5s1(cfg, w) -> bytes:  # type: ignore[no-untyped-def]
    h, ff = cfg.hidden, cfg.ffn
    tensors: list[tuple[str, int, bytes]] = [
        ("emb.word", 2, _q4_bytes(w.word)),
        ("emb.pos", 0, w.pos.astype("<f4").tobytes()),
        ("emb.type", 0, np.stack([w.type, w.type]).astype("<f4").tobytes()),
        ("emb.ln.w", 0, w.emb_ln_w.tobytes()),
        ("emb.ln.b", 0, w.emb_ln_b.tobytes()),
    ]
    for i, ly in enumerate(w.layers):
        for nm in ("q", "k", "v", "ao", "fi", "fo"):
            tensors.append((f"l{i}.{nm}.w", 2, _q4_bytes(getattr(ly, f"{nm}_w"))))
            tensors.append((f"l{i}.{nm}.b", 0, getattr(ly, f"{nm}_b").tobytes()))
        for nm in ("aln", "oln"):
            tensors.append((f"l{i}.{nm}.w", 0, getattr(ly, f"{nm}_w").tobytes()))
            tensors.append((f"l{i}.{nm}.b", 0, getattr(ly, f"{nm}_b").tobytes()))
    head = b"E5S1" + struct.pack(
        "<I7ifi", 1, h, cfg.layers, cfg.heads, ff, cfg.vocab, cfg.max_positions, 2, cfg.eps, QK
    )
    pieces = [b"<s>", b"<pad>", b"</s>", b"<unk>"]
    blob = b"".join(pieces)
    offs = np.cumsum([0] + [len(p) for p in pieces]).astype("<u4").tobytes()
    head += (
        struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob)) + offs + np.zeros(4, "<f4").tobytes() + blob
    )
    head += struct.pack("<iI", 0, 0)
    dir_size = 4 + sum(2 + len(n) + 1 + 4 + 16 for n, _, _ in tensors)
    off = len(head) + dir_size
    d = struct.pack("<i", len(tensors))
    body = b""
    for name, dt, data in tensors:
        d += (
            struct.pack("<H", len(name))
            + name.encode()
            + bytes([dt])
            + struct.pack("<IQQ", 0, off, len(data))
        )
        body += data
        off += len(data)
    return head + d + body


def test_read_e5_container_parses_header_and_dequantises_tensors() -> None:
    # Given an E5S1 file written from known weights (Q4_0 matrices, f32 vectors)
    cfg = tiny_config("xlm-roberta", layers=2)
    cfg = dataclasses.replace(cfg, position_offset=0)
    w = random_weights(cfg, seed=5)
    # When it is parsed
    c = read_e5_container(_write_e5s1(cfg, w))
    # Then the config, special ids and tensors come back (matrices within Q4_0 error)
    assert (c.config.hidden, c.config.layers, c.config.heads, c.config.ffn) == (64, 2, 4, 128)
    assert (c.bos, c.eos, c.pad, c.unk) == (0, 2, 1, 3)
    np.testing.assert_array_equal(c.weights.pos, w.pos)
    np.testing.assert_array_equal(c.weights.layers[1].oln_b, w.layers[1].oln_b)
    nib, d = q4_0_quantize(w.layers[1].fi_w)
    np.testing.assert_allclose(
        c.weights.layers[1].fi_w,
        ((nib.astype(np.float32) - 8).reshape(128, 2, QK) * d[:, :, None]).reshape(128, 64),
    )
    np.testing.assert_array_equal(c.word_nibbles, q4_0_quantize(w.word)[0])


# ----------------------------------------------------------------------------- row-scaled linears
def test_row_scaled_linears_leave_the_float_graph_unchanged() -> None:
    # Given a tiny encoder
    cfg = tiny_config("bert")
    w = random_weights(cfg, seed=7)
    # When FFN-out (and every other linear) reads row-scaled inputs, diag(r) (diag(r)^-1 X) W
    got = _run(build_graph(cfg, w, row_scaled=("q", "k", "v", "ao", "fi", "fo")), SEQS)
    # Then, in float, the graph still equals the naive forward pass
    np.testing.assert_allclose(got, reference.encode(cfg, w, SEQS), atol=2e-5)


def _with_outlier_token(cfg, w):  # type: ignore[no-untyped-def]
    """Weights where one FFN neuron of layer 0 fires ~50x harder than anything else, for one token
    only: the per-token outlier pattern of real encoders' special tokens."""
    pre: list[np.ndarray] = []
    real_gelu = reference._gelu

    def spy(x: np.ndarray) -> np.ndarray:
        pre.append(x)
        return real_gelu(x)

    reference._gelu = spy  # capture layer 0's FFN pre-activations [tokens, ffn]
    try:
        reference.encode(cfg, w, SEQS)
    finally:
        reference._gelu = real_gelu
    acts = np.concatenate(pre[:: cfg.layers])  # layer 0 of every sequence
    top2 = np.sort(acts, axis=0)[-2:]
    j = int(np.argmax(top2[1] - top2[0]))  # the neuron whose top token stands out most
    thr = (top2[0, j] + top2[1, j]) / 2
    s = 50 * float(np.abs(acts).max()) / float(top2[1, j] - thr)
    ly0 = w.layers[0]
    fi_w, fi_b = ly0.fi_w.copy(), ly0.fi_b.copy()
    fi_w[j] *= s
    fi_b[j] = s * (fi_b[j] - thr)  # s * (a - thr): positive for the top token only
    layers = (dataclasses.replace(ly0, fi_w=fi_w, fi_b=fi_b), *w.layers[1:])
    return dataclasses.replace(w, layers=layers)


def _int8(model, tmp_path, name: str):  # type: ignore[no-untyped-def]
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = tmp_path / f"{name}.onnx", tmp_path / f"{name}.int8.onnx"
    onnx.save(model, str(src))
    quantize_dynamic(
        src,
        dst,
        per_channel=True,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
        extra_options={"MatMulConstBOnly": True},
    )
    return onnx.load(str(dst))


def test_row_scaled_ffn_out_keeps_int8_close_to_float_despite_an_outlier_token(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Given a tiny encoder with one outlier token in layer 0's FFN, and its float vectors
    cfg = tiny_config("bert")
    w = _with_outlier_token(cfg, random_weights(cfg, seed=8))
    want = reference.encode(cfg, w, SEQS)
    # When it is quantised to dynamic int8 with FFN-out plain (one activation scale for the batch)
    # and with FFN-out row-scaled (in effect one scale per token)
    plain = _run(_int8(build_graph(cfg, w), tmp_path, "plain"), SEQS)
    rows = _run(_int8(build_graph(cfg, w, row_scaled=("fo",)), tmp_path, "rows"), SEQS)
    # Then the row-scaled int8 vectors stay much closer to the float ones
    err_plain = 1 - (plain * want).sum(1)
    err_rows = 1 - (rows * want).sum(1)
    assert err_rows.mean() < err_plain.mean() / 3, (err_rows, err_plain)
    assert (rows * want).sum(1).min() > 0.99


@pytest.mark.parametrize("bad", ["f0", "l9.fo", "l0.ffn", "L0.fo"])
def test_row_scaled_names_must_be_linears_of_the_model(bad: str) -> None:
    # Given a 2-layer model, When a row-scaled linear is misspelt or out of range
    cfg = tiny_config("bert")
    # Then the build refuses it instead of silently scaling nothing
    with pytest.raises(ValueError, match="row_scaled"):
        build_graph(cfg, random_weights(cfg), row_scaled=(bad,))


def test_row_scaling_one_layer_touches_only_that_layer() -> None:
    # Given a tiny encoder
    cfg = tiny_config("bert")
    w = random_weights(cfg, seed=9)
    # When only layer 0's FFN-out is row-scaled
    model = build_graph(cfg, w, row_scaled=("l0.fo",))
    # Then exactly one scaling (one ReduceMax) is in the graph, and the float output is unchanged
    assert [n.op_type for n in model.graph.node].count("ReduceMax") == 1
    np.testing.assert_allclose(_run(model, SEQS), reference.encode(cfg, w, SEQS), atol=2e-5)
