"""Reductions and normalisations (CUDA cores): norms, softmax, sums, top-k, sort, histogram, scan.

FLOPs are per input element: LayerNorm ~8 (mean, centre, square, sum, rsqrt, scale, affine w and b),
softmax ~5 (max, subtract, exp, sum, divide), sum/mean 1, top-k ~log2(k)+1 compares, sort ~log2(n)
compares, histogram and scan 1.

Training adds the backward ops: LayerNorm backward ~13 per element (dx ~10, dgamma 2, dbeta 1, two kernels),
softmax and log-softmax backward 4 (a row sum of grad * y, a subtract, a multiply), and the loss:
nll_loss_forward picks one log-probability per row (reads N values, not the N x C table), nll_loss_backward
writes the whole N x C gradient (a zero fill, then -1/N scattered at the targets).
"""

from __future__ import annotations

import math

from attrs import evolve

from dsocr_trace.costs.base import Cost, CostOptions, call_arg, read_bytes, rule, write_bytes
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


# ATen's CUDA sort along a dim of at most this many elements sorts in place in one block (bitonic or radix
# sortKVInPlace) around three device copies and the index fill: 5 launches; longer dims go to cub's onesweep
# radix sort: a divider, memsets, histogram, exclusive sum, one memset + onesweep pass per 8-bit digit, a copy
# (21 launches for int64 keys). Both counts are the kernel names of the H200 sweep's aten.sort points.
SMALL_SORT_MAX = 4096
SMALL_SORT_LAUNCHES = 5
RADIX_SORT_LAUNCHES = 21


@rule("aten.sort", "aten.argsort")
def sort(node: OpNode, opts: CostOptions) -> Cost:
    x = node.inputs[0]
    n = x.shape[-1] if x.shape else 1
    launches = SMALL_SORT_LAUNCHES if n <= SMALL_SORT_MAX else RADIX_SORT_LAUNCHES
    return evolve(_reduce(node, math.log2(max(n, 2)), kind="sort"), kernels=launches)


@rule("aten.histc", "aten.bincount", "aten.cumsum", "aten.cumprod")
def scan(node: OpNode, opts: CostOptions) -> Cost:
    return _reduce(node, 1, kind="sort")


@rule("aten.native_layer_norm_backward")
def layer_norm_backward(node: OpNode, opts: CostOptions) -> Cost:
    # inputs: grad_out, x, mean, rstd, weight, bias: dx in one kernel, dgamma/dbeta column sums in another
    return evolve(_reduce(node, 13), kernels=2)


@rule("aten._softmax_backward_data", "aten._log_softmax_backward_data")
def softmax_backward(node: OpNode, opts: CostOptions) -> Cost:
    return _reduce(node, 4)


@rule("aten.nll_loss_forward", "aten.nll_loss2d_forward")
def nll_loss(node: OpNode, opts: CostOptions) -> Cost:
    logp, target = call_arg(node, 0, "self"), call_arg(node, 1, "target")
    rows = target.numel
    return Cost(cc_flops=float(rows), bytes_read=float(rows * logp.itemsize + target.nbytes),
                bytes_written=write_bytes(node), kind="reduction",
                shape={"numel": rows, "row": 1, "contiguous": False})


@rule("aten.nll_loss_backward", "aten.nll_loss2d_backward")
def nll_loss_backward(node: OpNode, opts: CostOptions) -> Cost:
    target = call_arg(node, 2, "target")
    out = node.outputs[0]
    return Cost(cc_flops=float(target.numel), bytes_read=float(target.nbytes + target.numel * out.itemsize),
                bytes_written=float(out.nbytes), kind="copy", kernels=2,
                shape={"numel": out.numel, "contiguous": True, "broadcast": False})
