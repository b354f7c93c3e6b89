"""Reductions and normalisations (CUDA cores): norms, softmax, sums, top-k, sort, histogram, scan.

FLOPs are per input element: LayerNorm ~8 (mean, centre, square, sum, rsqrt, scale, affine w and b),
softmax ~5 (max, subtract, exp, sum, divide), sum/mean 1, top-k ~log2(k)+1 compares, sort ~log2(n)
compares, histogram and scan 1.
"""

from __future__ import annotations

import math

from dsocr_trace.costs.base import Cost, CostOptions, read_bytes, rule, write_bytes
from dsocr_trace.trace.ir import OpNode


def _reduce(node: OpNode, per_element: float, kind: str = "reduction") -> Cost:
    x = node.inputs[0]
    rows_len = x.shape[-1] if x.shape else 1
    return Cost(
        cc_flops=per_element * x.numel,
        bytes_read=read_bytes(node),
        bytes_written=write_bytes(node),
        kind=kind,
        shape={"numel": x.numel, "row": rows_len, "contiguous": x.is_contiguous},
    )


@rule("aten.native_layer_norm", "aten.layer_norm")
def layer_norm(node: OpNode, opts: CostOptions) -> Cost:
    return _reduce(node, 8)


@rule("aten._softmax", "aten.softmax", "aten._safe_softmax", "aten._log_softmax")
def softmax(node: OpNode, opts: CostOptions) -> Cost:
    return _reduce(node, 5)


@rule("aten.sum", "aten.mean", "aten.amax", "aten.amin", "aten.max", "aten.min", "aten.argmax", "aten.argmin",
      "aten.all", "aten.any", "aten._is_all_true", "aten.var_mean", "aten.norm", "aten.linalg_vector_norm",
      "aten.prod")
def reduce(node: OpNode, opts: CostOptions) -> Cost:
    return _reduce(node, 1)


@rule("aten.topk")
def topk(node: OpNode, opts: CostOptions) -> Cost:
    k = int(node.outputs[0].shape[-1]) if node.outputs and node.outputs[0].shape else 1
    return _reduce(node, math.log2(max(k, 2)) + 1)


@rule("aten.sort", "aten.argsort")
def sort(node: OpNode, opts: CostOptions) -> Cost:
    x = node.inputs[0]
    n = x.shape[-1] if x.shape else 1
    return _reduce(node, math.log2(max(n, 2)), kind="sort")


@rule("aten.histc", "aten.bincount", "aten.cumsum", "aten.cumprod")
def scan(node: OpNode, opts: CostOptions) -> Cost:
    return _reduce(node, 1, kind="sort")
