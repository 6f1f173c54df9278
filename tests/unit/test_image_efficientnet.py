"""Unit tests of the image model build: the legacy PyTorch reader and the EfficientNet ONNX graph."""

from __future__ import annotations

import contextlib
import io
import pickle
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnx")
import onnx
import onnxruntime as ort

from labelwise.modelbuild.image.efficientnet import (
    EfficientNetConfig,
    Stage,
    build_graph,
    check_state_dict,
    fold_bn,
    random_state_dict,
    reference_forward,
    same_pads,
)
from labelwise.modelbuild.image.torch_legacy import LEGACY_MAGIC, load_legacy_state_dict

# stride-2 stem, a skip block, a k5 stride-2 block; 37 px exercises TF-SAME's asymmetric padding
TINY = EfficientNetConfig(
    stages=(Stage(1, 3, 1, 1, 8), Stage(2, 3, 2, 2, 12), Stage(1, 5, 2, 3, 16)),
    stem=8,
    head=24,
    num_classes=10,
    image_size=37,
)


def _session(model: Any) -> Any:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


# ------------------------------------------------------------------------------ legacy .pth reader
def _fake_torch() -> dict[str, types.ModuleType]:
    """Stand-in ``torch`` and ``torch._utils`` modules: what a legacy file's pickle names."""
    fake_torch = types.ModuleType("torch")
    fake_utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    FloatStorage.__module__ = "torch"
    FloatStorage.__qualname__ = "FloatStorage"

    def _rebuild_tensor_v2(*args: Any) -> None:
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    fake_torch.FloatStorage = FloatStorage  # type: ignore[attr-defined]
    fake_utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    return {"torch": fake_torch, "torch._utils": fake_utils}


@contextlib.contextmanager
def _modules_replaced(modules: dict[str, types.ModuleType]) -> Iterator[None]:
    """``sys.modules`` with ``modules`` in it, restored after."""
    saved = {k: sys.modules.get(k) for k in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def _legacy_pth(tensors: dict[str, tuple[np.ndarray, int, tuple[int, ...], tuple[int, ...]]]) -> bytes:
    """A legacy-format file written the way torch does, with stand-in torch classes: every value is
    (storage array, offset, size, stride); equal storage arrays (by id) are written once."""
    fakes = _fake_torch()
    FloatStorage = fakes["torch"].FloatStorage
    _rebuild_tensor_v2 = fakes["torch._utils"]._rebuild_tensor_v2

    class S:  # a storage: written as a persistent id
        def __init__(self, key: str, storage: np.ndarray) -> None:
            self.key, self.storage = key, storage

    class T:  # a tensor: rebuilt from its storage
        def __init__(self, key: str, storage: np.ndarray, offset: int, size: Any, stride: Any) -> None:
            self.s, self.args = S(key, storage), (offset, size, stride)

        def __reduce__(self) -> Any:
            return (_rebuild_tensor_v2, (self.s, *self.args, False, OrderedDict()))

    keys: dict[int, str] = {}
    objs = OrderedDict()
    for name, (storage, offset, size, stride) in tensors.items():
        key = keys.setdefault(id(storage), str(len(keys)))
        objs[name] = T(key, storage, offset, size, stride)
    storages = {keys[id(s)]: s for s, *_ in tensors.values()}

    class P(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            if isinstance(obj, S):
                return ("storage", FloatStorage, obj.key, "cpu", obj.storage.size, None)
            return None

    buf = io.BytesIO()
    with _modules_replaced(fakes):
        for head in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(head, buf, protocol=2)
        P(buf, protocol=2).dump(objs)
    pickle.dump(list(storages), buf, protocol=2)
    for s in storages.values():
        buf.write(np.int64(s.size).tobytes())
        buf.write(s.astype("<f4").tobytes())
    return buf.getvalue()


def test_legacy_reader_restores_tensors_views_and_order() -> None:
    # Given a legacy file with a plain tensor, a transposed view and a slice sharing one storage
    a = np.arange(6, dtype=np.float32)
    shared = np.arange(10, dtype=np.float32) * 0.5
    data = _legacy_pth(
        {
            "conv.weight": (a, 0, (2, 3), (3, 1)),
            "transposed": (a, 0, (3, 2), (1, 3)),
            "tail": (shared, 4, (3,), (1,)),
        }
    )
    # When it is read without PyTorch
    sd = load_legacy_state_dict(data)
    # Then names keep their order and every tensor has its values, shape and layout
    assert list(sd) == ["conv.weight", "transposed", "tail"]
    np.testing.assert_array_equal(sd["conv.weight"], a.reshape(2, 3))
    np.testing.assert_array_equal(sd["transposed"], a.reshape(2, 3).T)
    np.testing.assert_array_equal(sd["tail"], shared[4:7])
    assert sd["tail"].dtype == np.float32


def test_legacy_reader_refuses_other_files_and_classes() -> None:
    # Given a zip-format-like blob and a pickle naming an arbitrary callable
    # Then both are refused instead of executed
    with pytest.raises(Exception, match="legacy"):
        load_legacy_state_dict(pickle.dumps(123, protocol=2))
    evil = io.BytesIO()
    for head in (LEGACY_MAGIC, 1001, {"little_endian": True}):
        pickle.dump(head, evil, protocol=2)
    pickle.dump(OrderedDict(x=print), evil, protocol=2)  # print is builtins.print
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_legacy_state_dict(evil.getvalue())


# ------------------------------------------------------------------------------ graph
def test_same_pads_matches_tensorflow() -> None:
    # TF: out = ceil(in / s); total = max((out - 1) s + k - in, 0); extra pixel at the end
    assert same_pads(224, 3, 2) == (0, 1, 112)
    assert same_pads(112, 5, 2) == (1, 2, 56)
    assert same_pads(37, 3, 2) == (1, 1, 19)
    assert same_pads(14, 5, 1) == (2, 2, 14)


def test_fold_bn_equals_conv_then_batchnorm() -> None:
    # Given a 1x1 conv followed by BatchNorm
    sd = random_state_dict(TINY, seed=1)
    w, b = fold_bn(sd, "_blocks.0._project_conv", "_blocks.0._bn2", TINY.bn_eps)
    x = np.random.default_rng(0).normal(size=(5, sd["_blocks.0._project_conv.weight"].shape[1]))
    # When applied folded and unfolded
    conv = x @ sd["_blocks.0._project_conv.weight"][:, :, 0, 0].T
    g = {k: sd[f"_blocks.0._bn2.{k}"] for k in ("weight", "bias", "running_mean", "running_var")}
    unfolded = (conv - g["running_mean"]) / np.sqrt(g["running_var"] + TINY.bn_eps) * g["weight"] + g["bias"]
    # Then they agree
    np.testing.assert_allclose(x @ w[:, :, 0, 0].T + b, unfolded, rtol=1e-5, atol=1e-5)


def test_onnx_graph_matches_naive_numpy_forward() -> None:
    # Given random weights of a tiny Lite config and a batch of random inputs
    sd = random_state_dict(TINY, seed=0)
    model = build_graph(sd, TINY, name="tiny-efficientnet")
    onnx.checker.check_model(model)
    x = np.random.default_rng(0).normal(size=(3, 3, 37, 37)).astype(np.float32)
    # When run by onnxruntime and by the unfolded float64 reference
    logits, feats = _session(model).run(["logits", "features"], {"pixel_values": x})
    ref_logits, ref_feats = reference_forward(sd, TINY, x)
    # Then they agree to float32 precision
    assert logits.shape == (3, 10) and feats.shape == (3, 24)
    np.testing.assert_allclose(feats, ref_feats, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-4)


def test_onnx_graph_rows_are_independent_of_batch() -> None:
    sd = random_state_dict(TINY, seed=2)
    sess = _session(build_graph(sd, TINY, name="t"))
    x = np.random.default_rng(1).normal(size=(4, 3, 37, 37)).astype(np.float32)
    (together,) = sess.run(["logits"], {"pixel_values": x})
    (alone,) = sess.run(["logits"], {"pixel_values": x[2:3]})
    np.testing.assert_allclose(together[2:3], alone, rtol=1e-5, atol=1e-5)


def test_state_dict_of_another_shape_is_refused() -> None:
    sd = random_state_dict(TINY)
    sd["_fc.weight"] = np.zeros((11, 24), np.float32)
    with pytest.raises(ValueError, match=r"_fc\.weight"):
        check_state_dict(sd, TINY)


def test_the_image_recipe_hashes_its_builder_and_the_runtime_modules_it_depends_on():
    # Given the image builder's source hash (part of every image model's recipe)
    from labelwise.modelbuild.image import build as image_build

    embedding = Path(image_build.__file__).parents[2] / "embedding"
    # Then every run-time module it names exists (a rename must update the recipe, not crash the build)
    assert all((embedding / name).is_file() for name in image_build.RUNTIME_SOURCES)
    # And the hash is computed and stable
    assert image_build._source_hash() == image_build._source_hash()
