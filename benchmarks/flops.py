"""Floating-point operations per image of an ONNX model, counted from its graph (2 per multiply-add)."""

from __future__ import annotations

import math
from pathlib import Path

import onnx
from onnx import numpy_helper, shape_inference


def _shape(value_info: onnx.ValueInfoProto) -> list[int]:
    # The batch dimension is symbolic; per image it is 1.
    return [dim.dim_value if dim.HasField("dim_value") else 1 for dim in value_info.type.tensor_type.shape.dim]


def flops_per_image(onnx_path: Path) -> int:
    """Multiply-adds of Conv, Gemm and MatMul nodes, times two; element-wise ops and pooling are left out
    (they are memory-bound and a few percent of the total here)."""
    model = shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    graph = model.graph
    shapes = {info.name: _shape(info) for info in [*graph.input, *graph.value_info, *graph.output]}
    shapes.update({init.name: list(numpy_helper.to_array(init).shape) for init in graph.initializer})
    total = 0
    for node in graph.node:
        if node.op_type == "Conv":
            out = shapes[node.output[0]]  # [N, C_out, H, W]
            weight = shapes[node.input[1]]  # [C_out, C_in / groups, kH, kW]
            total += 2 * math.prod(out[1:]) * math.prod(weight[1:])
        elif node.op_type in ("Gemm", "MatMul"):
            a, b = shapes[node.input[0]], shapes[node.input[1]]
            attrs = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
            inner = a[0] if attrs.get("transA") else a[-1]
            outer = b[0] if attrs.get("transB") else b[-1]
            rows = math.prod(a[:-1]) if not attrs.get("transA") else a[-1]
            total += 2 * rows * inner * outer
    return total
