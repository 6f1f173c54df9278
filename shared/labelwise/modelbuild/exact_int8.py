"""Unsigned int8 weights, so that every CPU computes the int8 model's products exactly.

onnxruntime multiplies uint8 activations by int8 weights (U8S8) on x86 with ``vpmaddubsw`` where the
CPU has no VNNI instructions (AVX2, AVX-512 without VNNI): it adds pairs of products in 16 bits with
saturation, so ``255 * 127 + 255 * 127`` comes out as 32767. CPUs with VNNI (and ARM's ``sdot``)
add in 32 bits and are exact. The same request therefore got different answers on different CPUs
(the README's examples, made on a VNNI machine, were off by up to 0.2 in score on an AVX2 one;
docs/performance.md, "Same answer on every CPU"). onnxruntime's own remedy, the session option
``session.x64quantprecision``, rewrites the weights at load, which needs the extended graph
optimisation level at every cold start (twice the session creation time) and only runs on the CPUs
it considers affected, so the shipped graph would depend on the machine that built it.

:func:`unsigned_weights` does the same rewrite once, at build time, on every machine alike:
``W_u8 = W_s8 + 128`` with the weight zero point moved by the same 128, an identity of the integer
arithmetic (``(a - a0)(W - w0) = (a - a0)((W + 128) - (w0 + 128))``). The product is then U8U8,
which onnxruntime computes with 32-bit sums on every CPU (x86 with or without VNNI, ARM), so the
vectors are those of exact integer arithmetic everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Integer matmul nodes and the input positions of their weight and weight zero point (ONNX
#: ``MatMulInteger``; onnxruntime's fused ``MatMulIntegerToFloat`` and ``DynamicQuantizeMatMul``).
WEIGHT_INPUTS: dict[str, tuple[int, int]] = {
    "MatMulInteger": (1, 3),
    "MatMulIntegerToFloat": (1, 5),
    "DynamicQuantizeMatMul": (1, 3),
}
#: Where each node type keeps the weight scale (its shape is the zero point's shape).
SCALE_INPUT: dict[str, int] = {"MatMulInteger": -1, "MatMulIntegerToFloat": 3, "DynamicQuantizeMatMul": 2}
SHIFT = 128


def shift_to_unsigned(values: np.ndarray) -> np.ndarray:
    """``int8 -> uint8`` by adding 128: ``-128 -> 0``, ``0 -> 128``, ``127 -> 255``.

    >>> shift_to_unsigned(np.array([-128, 0, 127], dtype=np.int8)).tolist()
    [0, 128, 255]
    """
    if values.dtype != np.int8:
        raise ValueError(f"expected int8 values, got {values.dtype}")
    return (values.astype(np.int16) + SHIFT).astype(np.uint8)


def _zero_point_shape(node: Any, initializers: dict[str, Any]) -> tuple[int, ...]:
    """The weight zero point's shape when the node has none: the weight scale's (one per channel)."""
    from onnx import numpy_helper

    position = SCALE_INPUT[node.op_type]
    if position < 0 or len(node.input) <= position or node.input[position] not in initializers:
        return ()
    return tuple(numpy_helper.to_array(initializers[node.input[position]]).shape)


def _set_input(node: Any, position: int, name: str) -> None:
    while len(node.input) <= position:
        node.input.append("")
    node.input[position] = name


def _append_unsigned(graph: Any, name: str, values: np.ndarray) -> str:
    """Append ``values`` shifted to uint8 as initializer ``<name>_u8``; returns its name."""
    from onnx import numpy_helper

    new_name = f"{name}_u8"
    graph.initializer.append(numpy_helper.from_array(shift_to_unsigned(values), new_name))
    return new_name


def unsigned_weights(model: Any) -> int:
    """Rewrite ``model`` (an ``onnx.ModelProto``, in place) so that every integer matmul with a
    constant int8 weight takes it as uint8 (:func:`shift_to_unsigned`), its zero point moved by the
    same 128 (a missing zero point, i.e. 0, becomes 128). Returns how many nodes were rewritten.
    Weights shared between nodes are converted once; anything else in the graph is left as is."""
    from onnx import numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    converted: dict[str, str] = {}

    def unsigned(name: str) -> str:
        if name not in converted:
            converted[name] = _append_unsigned(graph, name, numpy_helper.to_array(initializers[name]))
        return converted[name]

    rewritten = 0
    for node in graph.node:
        positions = WEIGHT_INPUTS.get(node.op_type)
        if positions is None or len(node.input) <= positions[0]:
            continue
        weight_at, zero_at = positions
        weight = initializers.get(node.input[weight_at])
        if weight is None or numpy_helper.to_array(weight).dtype != np.int8:
            continue
        zero_name = node.input[zero_at] if len(node.input) > zero_at else ""
        if zero_name and zero_name not in initializers:
            continue  # a zero point computed at run time: leave the node alone
        _set_input(node, weight_at, unsigned(weight.name))
        if zero_name:
            _set_input(node, zero_at, unsigned(zero_name))
        else:
            zeros = np.zeros(_zero_point_shape(node, initializers), dtype=np.int8)
            _set_input(node, zero_at, _append_unsigned(graph, f"{node.name}_weight_zero_point", zeros))
        rewritten += 1
    used = {name for node in graph.node for name in node.input}
    for init in [init for init in graph.initializer if init.name in converted and init.name not in used]:
        graph.initializer.remove(init)
    return rewritten
