"""The int8 model computes exact integer products on every CPU (issue 11, section 2: the same request
gets the same answer wherever it runs). onnxruntime's U8S8 kernels saturate 16-bit pair sums on x86
CPUs without VNNI; :func:`unsigned_weights` makes the weights uint8 so that the product is U8U8,
which every CPU computes exactly."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from labelwise.modelbuild.exact_int8 import shift_to_unsigned, unsigned_weights

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

K, N = 64, 5


def _weights() -> np.ndarray:
    # Columns whose adjacent products u8 * s8 sum past 32767 (the 16-bit limit) when the input is 255
    rng = np.random.default_rng(0)
    w = np.empty((K, N), dtype=np.int8)
    w[:, 0], w[:, 1], w[:, 3] = 127, -128, 100
    w[:, 2] = rng.integers(-128, 128, K)
    w[:, 4] = rng.integers(-128, 128, K)
    return w


def _inputs() -> np.ndarray:
    rng = np.random.default_rng(1)
    a = np.full((3, K), 255, dtype=np.uint8)
    a[1] = rng.integers(0, 256, K)
    a[2] = rng.integers(200, 256, K)
    return a


def _matmul_integer_model(with_zero_point: bool) -> onnx.ModelProto:
    inputs = ["A", "B", "", "B_zero"] if with_zero_point else ["A", "B"]
    initializers = [numpy_helper.from_array(_weights(), "B")]
    if with_zero_point:
        initializers.append(numpy_helper.from_array(np.zeros(N, dtype=np.int8), "B_zero"))
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", inputs, ["Y"], name="mm")],
        "g",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [None, K])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [None, N])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _dynamic_quantize_matmul_model() -> onnx.ModelProto:
    scale = np.full(N, 0.01, dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node(
                "DynamicQuantizeMatMul", ["X", "B", "B_scale"], ["Y"], name="dq", domain="com.microsoft"
            )
        ],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, K])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, N])],
        [numpy_helper.from_array(_weights(), "B"), numpy_helper.from_array(scale, "B_scale")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 8
    return model


def _run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, feed)[0])


def test_shift_to_unsigned_matches_a_naive_loop():
    # Given every int8 value
    values = np.arange(-128, 128, dtype=np.int8)
    # When shifted
    shifted = shift_to_unsigned(values)
    # Then each is v + 128 as uint8, in order, and the input is untouched
    assert shifted.dtype == np.uint8
    assert_array_equal(shifted, np.array([int(v) + 128 for v in values], dtype=np.uint8))
    assert_array_equal(values, np.arange(-128, 128, dtype=np.int8))
    with pytest.raises(ValueError):
        shift_to_unsigned(np.zeros(2, dtype=np.uint8))


@pytest.mark.parametrize("with_zero_point", [True, False])
def test_rewritten_integer_matmul_is_exact_on_this_cpu(with_zero_point: bool):
    # Given an integer matmul whose u8 x s8 products overflow 16-bit pair sums
    model = _matmul_integer_model(with_zero_point)
    a = _inputs()
    exact = a.astype(np.int64) @ _weights().astype(np.int64)
    # When its weights are rewritten to uint8
    assert unsigned_weights(model) == 1
    # Then the weights and zero point are uint8, and onnxruntime's answer is the exact product
    types = {init.name: numpy_helper.to_array(init).dtype for init in model.graph.initializer}
    assert set(types.values()) == {np.dtype(np.uint8)}
    assert len(model.graph.node[0].input) == 4
    assert_array_equal(_run(model, {"A": a}), exact)


def test_rewritten_dynamic_quantize_matmul_matches_exact_integer_arithmetic():
    # Given onnxruntime's fused dynamic int8 matmul (activations quantised at run time), no zero point
    model = _dynamic_quantize_matmul_model()
    x = np.random.default_rng(2).normal(size=(4, K)).astype(np.float32)
    x[0] = np.abs(x[0]) * 10  # large activations: quantised values near 255 side by side
    # When rewritten
    assert unsigned_weights(model) == 1
    out = _run(model, {"X": x})
    # Then it equals the exact arithmetic of dynamic quantisation (ONNX DynamicQuantizeLinear)
    lo, hi = min(0.0, float(x.min())), max(0.0, float(x.max()))
    scale = (hi - lo) / 255
    zero = np.clip(np.round(-lo / scale), 0, 255)
    q = np.clip(np.round(x / scale) + zero, 0, 255)
    reference = ((q - zero) @ _weights().astype(np.float64)) * scale * 0.01
    assert_allclose(out, reference, rtol=1e-5, atol=1e-5)


def test_graphs_without_int8_weights_are_left_alone():
    # Given a model already rewritten
    model = _matmul_integer_model(True)
    unsigned_weights(model)
    before = model.SerializeToString()
    # When rewritten again
    # Then nothing changes
    assert unsigned_weights(model) == 0
    assert model.SerializeToString() == before
