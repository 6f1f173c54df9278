"""EfficientNet-Lite: architecture, ONNX graph (BatchNorm folded into the convolutions) and a naive
numpy forward pass used as the parity reference.

The weights follow the TensorFlow-ported PyTorch naming (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` / ``_bn0`` / ``_depthwise_conv`` / ``_bn1`` / ``_project_conv`` / ``_bn2``,
``_conv_head``, ``_bn1``, ``_fc``). Lite variants have no squeeze-excite, use ReLU6 and a fixed
32-channel stem and 1280-channel head. Convolutions use TensorFlow "SAME" padding (the extra pixel of
an odd total goes at the end), computed here from the static input size. BatchNorm epsilon is TF's 1e-3.

Graph: input ``pixel_values`` float32 ``[batch, 3, S, S]`` (already preprocessed), outputs ``logits``
``[batch, classes]`` and ``features`` ``[batch, head]`` (global average pool before the classifier).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
OPSET = 18
IR_VERSION = 10


@dataclass(frozen=True)
class Stage:
    repeats: int
    kernel: int
    stride: int
    expand: int
    out: int


@dataclass(frozen=True)
class EfficientNetConfig:
    stages: tuple[Stage, ...]
    stem: int = 32
    head: int = 1280
    num_classes: int = 1000
    image_size: int = 224
    bn_eps: float = 1e-3

    def blocks(self) -> list[tuple[int, int, int, int, int]]:
        """(in, out, kernel, stride, expand) for every block in order."""
        out: list[tuple[int, int, int, int, int]] = []
        cin = self.stem
        for st in self.stages:
            for r in range(st.repeats):
                out.append((cin, st.out, st.kernel, st.stride if r == 0 else 1, st.expand))
                cin = st.out
        return out


#: EfficientNet-Lite0 (``efficientnet_lite_builder.py``: width 1.0, depth 1.0, no SE, ReLU6).
LITE0 = EfficientNetConfig(
    stages=(
        Stage(1, 3, 1, 1, 16),
        Stage(2, 3, 2, 6, 24),
        Stage(2, 5, 2, 6, 40),
        Stage(3, 3, 2, 6, 80),
        Stage(3, 5, 1, 6, 112),
        Stage(4, 5, 2, 6, 192),
        Stage(1, 3, 1, 6, 320),
    )
)


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TF "SAME": (pad_before, pad_after, output size) along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


def expected_shapes(cfg: EfficientNetConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor name and shape the state dict must hold (``num_batches_tracked`` excluded)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        for k in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{k}"] = (c,)

    shapes["_conv_stem.weight"] = (cfg.stem, 3, 3, 3)
    bn("_bn0", cfg.stem)
    for i, (cin, cout, k, _s, e) in enumerate(cfg.blocks()):
        p = f"_blocks.{i}"
        mid = cin * e
        if e != 1:
            shapes[f"{p}._expand_conv.weight"] = (mid, cin, 1, 1)
            bn(f"{p}._bn0", mid)
        shapes[f"{p}._depthwise_conv.weight"] = (mid, 1, k, k)
        bn(f"{p}._bn1", mid)
        shapes[f"{p}._project_conv.weight"] = (cout, mid, 1, 1)
        bn(f"{p}._bn2", cout)
    cin = cfg.blocks()[-1][1]
    shapes["_conv_head.weight"] = (cfg.head, cin, 1, 1)
    bn("_bn1", cfg.head)
    shapes["_fc.weight"] = (cfg.num_classes, cfg.head)
    shapes["_fc.bias"] = (cfg.num_classes,)
    return shapes


def check_state_dict(sd: Mapping[str, npt.NDArray[Any]], cfg: EfficientNetConfig) -> None:
    want = expected_shapes(cfg)
    got = {k: tuple(v.shape) for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    if list(got) != list(want) or got != want:
        missing = sorted(set(want) - set(got))[:5]
        extra = sorted(set(got) - set(want))[:5]
        bad = [k for k in want if k in got and got[k] != want[k]][:5]
        raise ValueError(
            f"state dict does not match the config: missing {missing}, extra {extra}, shape {bad}"
        )


def random_state_dict(cfg: EfficientNetConfig, seed: int = 0) -> dict[str, F32]:
    """Random weights of the right shapes (tests): He-scaled convs, BN stats away from identity."""
    rng = np.random.default_rng(seed)
    out: dict[str, F32] = {}
    for name, shape in expected_shapes(cfg).items():
        if name.endswith("running_var"):
            v = rng.uniform(0.5, 2.0, shape)
        elif name.endswith("running_mean") or name.endswith(".bias"):
            v = rng.normal(0.0, 0.1, shape)
        elif len(shape) == 1:  # BN gamma
            v = rng.uniform(0.5, 1.5, shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            v = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        out[name] = v.astype(np.float32)
    return out


# ------------------------------------------------------------------------------ folding
def fold_bn(sd: Mapping[str, npt.NDArray[Any]], conv: str, bn: str, eps: float) -> tuple[F32, F32]:
    """Conv weight and bias with the following BatchNorm folded in (computed in float64)."""
    w = sd[f"{conv}.weight"].astype(np.float64)
    scale = sd[f"{bn}.weight"].astype(np.float64) / np.sqrt(sd[f"{bn}.running_var"].astype(np.float64) + eps)
    bias = sd[f"{bn}.bias"].astype(np.float64) - sd[f"{bn}.running_mean"].astype(np.float64) * scale
    return (w * scale[:, None, None, None]).astype(np.float32), bias.astype(np.float32)


# ------------------------------------------------------------------------------ ONNX graph
def build_graph(sd: Mapping[str, npt.NDArray[Any]], cfg: EfficientNetConfig, *, name: str) -> Any:
    """The float32 ONNX model (BatchNorm folded, ReLU6 as Clip, static TF-SAME pads)."""
    check_state_dict(sd, cfg)
    g = _ConvGraph(sd, cfg)
    x = g.conv("pixel_values", "stem", "_conv_stem", "_bn0", 3, 2, 1, True)
    for i, block in enumerate(cfg.blocks()):
        x = g.mbconv(i, block, x)
    x = g.conv(x, "head", "_conv_head", "_bn1", 1, 1, 1, True)
    g.classifier(x)
    return g.model(name)


class _ConvGraph:
    """The nodes and initialisers of the graph being built, and the current feature-map size."""

    def __init__(self, sd: Mapping[str, npt.NDArray[Any]], cfg: EfficientNetConfig) -> None:
        from onnx import numpy_helper

        self.sd = sd
        self.cfg = cfg
        self.nodes: list[Any] = []
        self.inits: list[Any] = [
            numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min"),
            numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max"),
        ]
        self.size = cfg.image_size

    def conv(
        self, x: str, out: str, conv_name: str, bn_name: str, k: int, s: int, groups: int, act: bool
    ) -> str:
        """Conv ``conv_name`` with BatchNorm ``bn_name`` folded (TF-SAME pads), then ReLU6 if ``act``."""
        from onnx import helper, numpy_helper

        w, b = fold_bn(self.sd, conv_name, bn_name, self.cfg.bn_eps)
        self.inits.append(numpy_helper.from_array(w, f"{out}.w"))
        self.inits.append(numpy_helper.from_array(b, f"{out}.b"))
        before, after, size_out = same_pads(self.size, k, s)
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{out}.w", f"{out}.b"],
                [out + ("_pre" if act else "")],
                name=out,
                kernel_shape=[k, k],
                strides=[s, s],
                pads=[before, before, after, after],
                group=groups,
            )
        )
        self.size = size_out
        if act:
            self.nodes.append(
                helper.make_node("Clip", [out + "_pre", "relu6_min", "relu6_max"], [out], name=out + "_relu6")
            )
        return out

    def mbconv(self, i: int, block: tuple[int, int, int, int, int], x: str) -> str:
        """Block ``i`` (inverted residual): 1x1 expand, depthwise, 1x1 project, skip when shapes allow."""
        from onnx import helper

        cin, cout, k, s, e = block
        p = f"_blocks.{i}"
        h = x
        if e != 1:
            h = self.conv(h, f"b{i}.expand", f"{p}._expand_conv", f"{p}._bn0", 1, 1, 1, True)
        h = self.conv(h, f"b{i}.dw", f"{p}._depthwise_conv", f"{p}._bn1", k, s, cin * e, True)
        h = self.conv(h, f"b{i}.project", f"{p}._project_conv", f"{p}._bn2", 1, 1, 1, False)
        if s == 1 and cin == cout:
            self.nodes.append(helper.make_node("Add", [h, x], [f"b{i}.out"], name=f"b{i}.skip"))
            h = f"b{i}.out"
        return h

    def classifier(self, x: str) -> None:
        """Global average pooling to ``features``, then the ImageNet classifier to ``logits``."""
        from onnx import helper, numpy_helper

        self.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
        self.nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], name="flatten", axis=1))
        self.inits.append(
            numpy_helper.from_array(np.ascontiguousarray(self.sd["_fc.weight"], np.float32), "fc.w")
        )
        self.inits.append(
            numpy_helper.from_array(np.ascontiguousarray(self.sd["_fc.bias"], np.float32), "fc.b")
        )
        self.nodes.append(
            helper.make_node("Gemm", ["features", "fc.w", "fc.b"], ["logits"], name="fc", transB=1)
        )

    def model(self, name: str) -> Any:
        from onnx import TensorProto, helper

        cfg = self.cfg
        graph = helper.make_graph(
            self.nodes,
            name,
            [
                helper.make_tensor_value_info(
                    "pixel_values", TensorProto.FLOAT, ["batch", 3, cfg.image_size, cfg.image_size]
                )
            ],
            [
                helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", cfg.num_classes]),
                helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", cfg.head]),
            ],
            self.inits,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="labelwise"
        )
        model.ir_version = IR_VERSION
        return model


# ------------------------------------------------------------------------------ numpy reference
def _conv_ref(
    x: npt.NDArray[np.float64], w: npt.NDArray[Any], stride: int, depthwise: bool
) -> npt.NDArray[np.float64]:
    """Naive NCHW convolution with TF-SAME padding: a sum over kernel offsets of strided slices."""
    n, _c, hgt, wid = x.shape
    k = w.shape[-1]
    pt, pb, oh = same_pads(hgt, k, stride)
    pl, pr, ow = same_pads(wid, k, stride)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    out = np.zeros((n, w.shape[0], oh, ow), np.float64)
    wd = w.astype(np.float64)
    for i in range(k):
        for j in range(k):
            patch = xp[:, :, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride]
            if depthwise:
                out += patch * wd[:, 0, i, j][None, :, None, None]
            else:
                out += np.einsum("nchw,oc->nohw", patch, wd[:, :, i, j])
    return out


def _bn_ref(
    x: npt.NDArray[np.float64], sd: Mapping[str, npt.NDArray[Any]], p: str, eps: float
) -> npt.NDArray[np.float64]:
    def g(k: str) -> npt.NDArray[np.float64]:
        return sd[f"{p}.{k}"].astype(np.float64)[None, :, None, None]

    return (x - g("running_mean")) / np.sqrt(g("running_var") + eps) * g("weight") + g("bias")


def reference_forward(
    sd: Mapping[str, npt.NDArray[Any]], cfg: EfficientNetConfig, pixels: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(logits, pooled features) in float64, straight from the unfolded state dict."""

    def relu6(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.clip(v, 0.0, 6.0)

    eps = cfg.bn_eps
    x = relu6(
        _bn_ref(_conv_ref(pixels.astype(np.float64), sd["_conv_stem.weight"], 2, False), sd, "_bn0", eps)
    )
    for i, (cin, cout, _k, s, e) in enumerate(cfg.blocks()):
        p = f"_blocks.{i}"
        h = x
        if e != 1:
            h = relu6(_bn_ref(_conv_ref(h, sd[f"{p}._expand_conv.weight"], 1, False), sd, f"{p}._bn0", eps))
        h = relu6(_bn_ref(_conv_ref(h, sd[f"{p}._depthwise_conv.weight"], s, True), sd, f"{p}._bn1", eps))
        h = _bn_ref(_conv_ref(h, sd[f"{p}._project_conv.weight"], 1, False), sd, f"{p}._bn2", eps)
        x = h + x if s == 1 and cin == cout else h
    x = relu6(_bn_ref(_conv_ref(x, sd["_conv_head.weight"], 1, False), sd, "_bn1", eps))
    feats = x.mean(axis=(2, 3))
    logits = feats @ sd["_fc.weight"].astype(np.float64).T + sd["_fc.bias"].astype(np.float64)
    return logits, feats
