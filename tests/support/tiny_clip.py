"""A tiny random-weight model of CLIP's architecture (tests): ONNX towers + a numpy reference.

Text tower (OpenAI CLIP): token + position embeddings, pre-LN transformer blocks with a causal mask
and QuickGELU, final LayerNorm, the features at the end-of-text token (``argmax(input_ids)``), a
projection. Image tower (ViT): patch convolution, class token, position embeddings, ``ln_pre``,
the same blocks (no mask), ``ln_post`` on the class token, a projection.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from labelwise.embedding.manifest import ImagePreprocessing, ModelManifest

F = npt.NDArray[np.float32]
OPSET = 18
IR_VERSION = 10


@dataclass(frozen=True)
class TinyClipConfig:
    vocab: int = 49408
    context: int = 77
    width: int = 16
    heads: int = 2
    layers: int = 1
    embed_dim: int = 8
    image_size: int = 32
    patch: int = 16


def random_weights(cfg: TinyClipConfig, seed: int = 0) -> dict[str, F]:
    rng = np.random.default_rng(seed)
    w: dict[str, F] = {}

    def n(name: str, *shape: int, scale: float = 0.2) -> None:
        w[name] = (rng.normal(0, scale, shape)).astype(np.float32)

    for tower in ("t", "v"):
        for i in range(cfg.layers):
            p = f"{tower}{i}"
            for ln in ("ln1", "ln2"):
                w[f"{p}.{ln}.g"] = (1 + rng.normal(0, 0.1, cfg.width)).astype(np.float32)
                n(f"{p}.{ln}.b", cfg.width, scale=0.1)
            n(f"{p}.qkv.w", cfg.width, 3 * cfg.width)
            n(f"{p}.qkv.b", 3 * cfg.width, scale=0.05)
            n(f"{p}.out.w", cfg.width, cfg.width)
            n(f"{p}.out.b", cfg.width, scale=0.05)
            n(f"{p}.fc.w", cfg.width, 4 * cfg.width)
            n(f"{p}.fc.b", 4 * cfg.width, scale=0.05)
            n(f"{p}.proj.w", 4 * cfg.width, cfg.width)
            n(f"{p}.proj.b", cfg.width, scale=0.05)
        w[f"{tower}.lnf.g"] = np.ones(cfg.width, np.float32)
        n(f"{tower}.lnf.b", cfg.width, scale=0.1)
        n(f"{tower}.projection", cfg.width, cfg.embed_dim)
    n("t.tok", cfg.vocab, cfg.width, scale=0.5)
    n("t.pos", cfg.context, cfg.width, scale=0.1)
    n("v.patch", cfg.width, 3, cfg.patch, cfg.patch, scale=0.05)
    n("v.cls", cfg.width, scale=0.5)
    n("v.pos", (cfg.image_size // cfg.patch) ** 2 + 1, cfg.width, scale=0.1)
    w["v.lnpre.g"] = np.ones(cfg.width, np.float32)
    n("v.lnpre.b", cfg.width, scale=0.1)
    return w


# ------------------------------------------------------------------------------ numpy reference
def _ln(x: npt.NDArray[np.float64], g: F, b: F) -> npt.NDArray[np.float64]:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * g + b


def _blocks(
    w: dict[str, F], cfg: TinyClipConfig, tower: str, x: npt.NDArray[np.float64], causal: bool
) -> npt.NDArray[np.float64]:
    n, s, d = x.shape
    hd = d // cfg.heads
    for i in range(cfg.layers):
        p = f"{tower}{i}"
        h = _ln(x, w[f"{p}.ln1.g"], w[f"{p}.ln1.b"]) @ w[f"{p}.qkv.w"] + w[f"{p}.qkv.b"]
        q, k, v = (
            h[..., j * d : (j + 1) * d].reshape(n, s, cfg.heads, hd).transpose(0, 2, 1, 3) for j in range(3)
        )
        att = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd)
        if causal:
            att = att + np.triu(np.full((s, s), -1e9), 1)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        o = (att @ v).transpose(0, 2, 1, 3).reshape(n, s, d)
        x = x + o @ w[f"{p}.out.w"] + w[f"{p}.out.b"]
        h = _ln(x, w[f"{p}.ln2.g"], w[f"{p}.ln2.b"]) @ w[f"{p}.fc.w"] + w[f"{p}.fc.b"]
        h = h * (1 / (1 + np.exp(-1.702 * h)))
        x = x + h @ w[f"{p}.proj.w"] + w[f"{p}.proj.b"]
    return x


def reference_text(
    w: dict[str, F], cfg: TinyClipConfig, ids: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    x = w["t.tok"][ids].astype(np.float64) + w["t.pos"][: ids.shape[1]]
    x = _ln(_blocks(w, cfg, "t", x, True), w["t.lnf.g"], w["t.lnf.b"])
    return x[np.arange(len(ids)), ids.argmax(1)] @ w["t.projection"]


def reference_image(
    w: dict[str, F], cfg: TinyClipConfig, pixels: npt.NDArray[Any]
) -> npt.NDArray[np.float64]:
    n = pixels.shape[0]
    g = cfg.image_size // cfg.patch
    patches = (
        pixels.reshape(n, 3, g, cfg.patch, g, cfg.patch).transpose(0, 2, 4, 1, 3, 5).reshape(n, g * g, -1)
    )
    x = patches.astype(np.float64) @ w["v.patch"].reshape(cfg.width, -1).T
    x = np.concatenate([np.broadcast_to(w["v.cls"], (n, 1, cfg.width)), x], axis=1) + w["v.pos"]
    x = _blocks(w, cfg, "v", _ln(x, w["v.lnpre.g"], w["v.lnpre.b"]), False)
    return _ln(x[:, 0], w["v.lnf.g"], w["v.lnf.b"]) @ w["v.projection"]


# ------------------------------------------------------------------------------ ONNX
class _G:
    def __init__(self, w: dict[str, F]) -> None:
        from onnx import numpy_helper

        self.nodes: list[Any] = []
        self.inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
        self._n = 0

    def const(self, value: npt.NDArray[Any]) -> str:
        from onnx import numpy_helper

        self._n += 1
        name = f"c{self._n}"
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op: str, inputs: list[str], **attrs: Any) -> str:
        from onnx import helper

        self._n += 1
        out = f"{op.lower()}{self._n}"
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def ln(self, x: str, p: str) -> str:
        return self.op("LayerNormalization", [x, f"{p}.g", f"{p}.b"], axis=-1, epsilon=1e-5)

    def blocks(self, cfg: TinyClipConfig, tower: str, x: str, mask: str | None) -> str:
        d, hd = cfg.width, cfg.width // cfg.heads
        split = self.const(np.array([d, d, d], np.int64))
        heads_shape = self.const(np.array([0, 0, cfg.heads, hd], np.int64))
        merge_shape = self.const(np.array([0, 0, d], np.int64))
        scale = self.const(np.array(1 / np.sqrt(hd), np.float32))
        for i in range(cfg.layers):
            p = f"{tower}{i}"
            h = self.op("Add", [self.op("MatMul", [self.ln(x, f"{p}.ln1"), f"{p}.qkv.w"]), f"{p}.qkv.b"])
            from onnx import helper

            qkv = [f"{p}.q", f"{p}.k", f"{p}.v"]
            self.nodes.append(helper.make_node("Split", [h, split], qkv, axis=-1))
            q, k, v = (
                self.op("Transpose", [self.op("Reshape", [t, heads_shape])], perm=[0, 2, 1, 3]) for t in qkv
            )
            att = self.op(
                "Mul", [self.op("MatMul", [q, self.op("Transpose", [k], perm=[0, 1, 3, 2])]), scale]
            )
            if mask is not None:
                att = self.op("Add", [att, mask])
            o = self.op("MatMul", [self.op("Softmax", [att], axis=-1), v])
            o = self.op("Reshape", [self.op("Transpose", [o], perm=[0, 2, 1, 3]), merge_shape])
            x = self.op("Add", [x, self.op("Add", [self.op("MatMul", [o, f"{p}.out.w"]), f"{p}.out.b"])])
            h = self.op("Add", [self.op("MatMul", [self.ln(x, f"{p}.ln2"), f"{p}.fc.w"]), f"{p}.fc.b"])
            k17 = self.const(np.array(1.702, np.float32))
            h = self.op("Mul", [h, self.op("Sigmoid", [self.op("Mul", [h, k17])])])
            x = self.op("Add", [x, self.op("Add", [self.op("MatMul", [h, f"{p}.proj.w"]), f"{p}.proj.b"])])
        return x


def _model(g: _G, name: str, inputs: list[Any], output: str, out_name: str, dim: int) -> Any:
    from onnx import TensorProto, helper

    g.nodes.append(helper.make_node("Identity", [output], [out_name]))
    graph = helper.make_graph(
        g.nodes,
        name,
        inputs,
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["batch", dim])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def text_model(w: dict[str, F], cfg: TinyClipConfig, *, attention_mask_input: bool = False) -> Any:
    from onnx import TensorProto, helper

    g = _G({k: v for k, v in w.items() if k.startswith("t")})
    seq = g.op("Gather", [g.op("Shape", ["input_ids"]), g.const(np.array([1], np.int64))])
    zero = g.const(np.array([0], np.int64))
    pos = g.op("Slice", ["t.pos", zero, seq, zero])
    x = g.op("Add", [g.op("Gather", ["t.tok", "input_ids"]), pos])
    full = np.triu(np.full((cfg.context, cfg.context), -1e9, np.float32), 1)
    mask = g.op(
        "Slice", [g.const(full), g.const(np.array([0, 0], np.int64)), g.op("Concat", [seq, seq], axis=0)]
    )
    x = g.ln(g.blocks(cfg, "t", x, mask), "t.lnf")
    eot = g.op("ArgMax", ["input_ids"], axis=1, keepdims=1)
    pooled = g.op("GatherND", [x, eot], batch_dims=1)
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])]
    if attention_mask_input:  # declared like Hugging Face exports; causal attention makes it moot
        inputs.append(helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]))
    return _model(
        g, "tiny-clip-text", inputs, g.op("MatMul", [pooled, "t.projection"]), "text_embeds", cfg.embed_dim
    )


def vision_model(w: dict[str, F], cfg: TinyClipConfig) -> Any:
    from onnx import TensorProto, helper

    g = _G({k: v for k, v in w.items() if k.startswith("v")})
    conv = g.op(
        "Conv", ["pixel_values", "v.patch"], kernel_shape=[cfg.patch, cfg.patch], strides=[cfg.patch] * 2
    )
    tokens = g.op(
        "Transpose", [g.op("Flatten", [g.op("Transpose", [conv], perm=[0, 2, 3, 1])], axis=0)], perm=[0, 1]
    )
    n_patch = (cfg.image_size // cfg.patch) ** 2
    batch = g.op("Gather", [g.op("Shape", ["pixel_values"]), g.const(np.array([0], np.int64))])
    tokens = g.op(
        "Reshape",
        [tokens, g.op("Concat", [batch, g.const(np.array([n_patch, cfg.width], np.int64))], axis=0)],
    )
    cls = g.op(
        "Expand",
        [
            g.op("Reshape", ["v.cls", g.const(np.array([1, 1, cfg.width], np.int64))]),
            g.op("Concat", [batch, g.const(np.array([1, cfg.width], np.int64))], axis=0),
        ],
    )
    x = g.op("Add", [g.op("Concat", [cls, tokens], axis=1), "v.pos"])
    x = g.blocks(cfg, "v", g.ln(x, "v.lnpre"), None)
    first = g.op("Gather", [x, g.const(np.array(0, np.int64))], axis=1)
    out = g.op("MatMul", [g.ln(first, "v.lnf"), "v.projection"])
    size = cfg.image_size
    inputs = [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, size, size])]
    return _model(g, "tiny-clip-vision", inputs, out, "image_embeds", cfg.embed_dim)


def write_tiny_clip(
    model_dir: Path,
    bpe_file: Path,
    *,
    cfg: TinyClipConfig | None = None,
    seed: int = 0,
    layout: str = "labelwise",
) -> dict[str, F]:
    """Write a tiny CLIP model directory and return its weights.

    ``layout="labelwise"``: ``vision_model.onnx``, ``text_model.onnx``, the BPE file and our
    ``manifest.json``. ``layout="hf"``: ``onnx/*.onnx`` (text tower also declaring
    ``attention_mask``), ``merges.txt``, ``config.json`` and ``preprocessor_config.json``.
    """
    import onnx

    cfg = cfg or TinyClipConfig()
    w = random_weights(cfg, seed)
    model_dir.mkdir(parents=True, exist_ok=True)
    hf = layout == "hf"
    onnx_dir = model_dir / "onnx" if hf else model_dir
    onnx_dir.mkdir(exist_ok=True)
    onnx.save(vision_model(w, cfg), str(onnx_dir / "vision_model.onnx"))
    onnx.save(text_model(w, cfg, attention_mask_input=hf), str(onnx_dir / "text_model.onnx"))
    if hf:
        _write_hf_files(model_dir, bpe_file, cfg)
    else:
        _write_labelwise_files(model_dir, bpe_file, cfg)
    return w


def _write_hf_files(model_dir: Path, bpe_file: Path, cfg: TinyClipConfig) -> None:
    """``merges.txt``, ``config.json`` and ``preprocessor_config.json`` (Hugging Face's layout)."""
    import gzip

    raw = bpe_file.read_bytes()
    merges = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    (model_dir / "merges.txt").write_bytes(merges)
    (model_dir / "config.json").write_text(
        json.dumps(
            {
                "projection_dim": cfg.embed_dim,
                "text_config": {"max_position_embeddings": cfg.context},
                "vision_config": {"image_size": cfg.image_size},
            }
        )
    )
    (model_dir / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "crop_size": {"height": cfg.image_size, "width": cfg.image_size},
                "size": {"shortest_edge": cfg.image_size},
                "resample": 3,
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711],
            }
        )
    )


def _write_labelwise_files(model_dir: Path, bpe_file: Path, cfg: TinyClipConfig) -> None:
    """The BPE file and our ``manifest.json``."""
    from labelwise.embedding.clip import CLIP_MEAN, CLIP_PREFIXES, CLIP_STD

    shutil.copyfile(bpe_file, model_dir / bpe_file.name)
    ModelManifest(
        name="tiny-clip",
        aliases=("jina-clip-v1", "jina-clip-v2"),
        family="clip",
        modality="image",
        dimension=cfg.embed_dim,
        feature_dimension=cfg.embed_dim,
        window=cfg.context,
        max_input_tokens=cfg.context,
        prefixes=CLIP_PREFIXES,
        image=ImagePreprocessing(size=cfg.image_size, resize=cfg.image_size, mean=CLIP_MEAN, std=CLIP_STD),
        quantization="none (random test weights)",
        source="tests.support.tiny_clip",
    ).save(model_dir)
