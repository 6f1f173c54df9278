"""The built int8 text models give the vectors of exact integer arithmetic on this CPU, whatever it is
(issue 11, section 2: the same request gets the same answer on every machine).

onnxruntime's U8S8 kernels add pairs of products in 16 bits with saturation on x86 CPUs without
VNNI; its option ``session.x64quantprecision`` (at the extended optimisation level) computes the
same graph exactly. The build stores the weights unsigned (``modelbuild/exact_int8.py``), so the
shipped graph must match that exact reference with the runtime's own, faster session settings."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from labelwise.embedding import onnx_embedder
from labelwise.embedding.manifest import MANIFEST_FILE
from labelwise.embedding.onnx_embedder import MODEL_FILE, OnnxEmbedder
from labelwise.modelbuild.exact_int8 import WEIGHT_INPUTS
from labelwise.settings import Settings

pytestmark = pytest.mark.model
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TEXTS = [
    "The Space Race of the 1960s was a breathtaking testament to human ingenuity",
    "Confirm your email address",
    "Das Essen war in Ordnung, der Service eher langsam.",
    "服务一般，价格还可以。",
    "NASA was founded in 1958 as America's response, and they poured an astounding $28 billion "
    "into the Apollo program between 1960 and 1973",
]


def _model_dir(name: str):
    root = Settings.from_environ().model_dir
    if not (root / name / MANIFEST_FILE).exists():
        pytest.skip(f"{name} not built in {root} (make model)")
    return root / name


def _exact_session(path, **_: object):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.add_session_config_entry("session.x64quantprecision", "1")
    opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", ["multilingual-e5-small", "all-minilm-l6-v2"])
def test_integer_matmuls_take_unsigned_weights(name: str) -> None:
    # Given a built text model's graph
    graph = onnx.load(str(_model_dir(name) / MODEL_FILE), load_external_data=False).graph
    types = {init.name: init.data_type for init in graph.initializer}
    # Then every integer matmul's weight is uint8 (U8U8: exact on every CPU)
    matmuls = [node for node in graph.node if node.op_type in WEIGHT_INPUTS]
    assert matmuls
    for node in matmuls:
        assert types[node.input[WEIGHT_INPUTS[node.op_type][0]]] == onnx.TensorProto.UINT8, node.name


@pytest.mark.parametrize("name", ["multilingual-e5-small", "all-minilm-l6-v2"])
def test_vectors_are_those_of_exact_integer_arithmetic(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the runtime's embedder and one whose session onnxruntime makes exact on any CPU
    model_dir = _model_dir(name)
    served = OnnxEmbedder.from_dir(model_dir, intra_op_threads=1)
    monkeypatch.setattr(onnx_embedder, "cpu_session", _exact_session)
    exact = OnnxEmbedder.from_dir(model_dir, intra_op_threads=1)
    # When both embed the same texts
    got = served.embed(TEXTS, "input").vectors
    want = exact.embed(TEXTS, "input").vectors
    # Then the vectors agree to float rounding (saturated sums moved them by up to 0.02)
    assert_allclose(got, want, atol=1e-5)
    assert np.isfinite(got).all()
