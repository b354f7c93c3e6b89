"""Matrix products and convolutions: tensor-core FLOPs, 2 per multiply-add."""

from __future__ import annotations

import itertools
import math

from dsocr_trace.costs.base import Cost, CostOptions, call_arg, read_bytes, rule, write_bytes
from dsocr_trace.trace.ir import OpNode


def _gemm(node: OpNode, m: int, n: int, k: int, batch: int = 1, bias: bool = False) -> Cost:
    # C[b, m, n] = A[b, m, k] @ B[b, k, n]: 2*b*m*n*k FLOPs; a fused bias add is b*m*n more (CUDA cores)
    weight = next((t.param for t in node.inputs if t.param is not None), None)
    return Cost(
        tc_flops=2.0 * batch * m * n * k,
        cc_flops=float(batch * m * n) if bias else 0.0,
        bytes_read=read_bytes(node),
        bytes_written=write_bytes(node),
        kind="gemm",
        shape={"m": batch * m if weight else m, "n": n, "k": k, "batch": 1 if weight else batch,
               "weight": weight or ""},
    )


@rule("aten.mm")
def mm(node: OpNode, opts: CostOptions) -> Cost:
    (m, k), (_, n) = node.inputs[0].shape, node.inputs[1].shape
    return _gemm(node, m, n, k)


@rule("aten.addmm")
def addmm(node: OpNode, opts: CostOptions) -> Cost:
    # addmm(bias, A, B)
    (m, k), (_, n) = node.inputs[1].shape, node.inputs[2].shape
    return _gemm(node, m, n, k, bias=True)


@rule("aten.bmm")
def bmm(node: OpNode, opts: CostOptions) -> Cost:
    (b, m, k), (_, _, n) = node.inputs[0].shape, node.inputs[1].shape
    return _gemm(node, m, n, k, batch=b)


@rule("aten.baddbmm")
def baddbmm(node: OpNode, opts: CostOptions) -> Cost:
    (b, m, k), (_, _, n) = node.inputs[1].shape, node.inputs[2].shape
    return _gemm(node, m, n, k, batch=b, bias=True)


@rule("aten.linear")
def linear(node: OpNode, opts: CostOptions) -> Cost:
    # export path keeps F.linear as one node: x[..., k] @ W[n, k]^T (+ b)
    x, w = node.inputs[0].shape, node.inputs[1].shape
    m = math.prod(x[:-1])
    return _gemm(node, m, w[0], w[1], bias=len(node.inputs) > 2)


@rule("aten.matmul")
def matmul(node: OpNode, opts: CostOptions) -> Cost:
    a, b = node.inputs[0].shape, node.inputs[1].shape
    batch = math.prod(node.outputs[0].shape[:-2]) if len(node.outputs[0].shape) > 2 else 1
    return _gemm(node, a[-2] if len(a) > 1 else 1, b[-1], a[-1], batch=batch)


def moe_layer(module_path: str) -> int:
    """The decoder layer index of an experts module path (…layers.<i>.mlp.experts), 0 when there is none."""
    parts = module_path.split(".")
    for a, b in itertools.pairwise(parts):
        if a == "layers" and b.isdigit():
            return int(b)
    return 0


def expert_rows(node: OpNode, opts: CostOptions, experts: int, rows: int, top_k: int) -> tuple[int, ...]:
    """Rows per expert of a grouped GEMM: recorded on the node (a calibration point) or from the routing."""
    given = node.attrs.get("expert_rows")
    if given is not None and len(given) == experts:
        return tuple(int(r) for r in given)
    return opts.routing.rows(moe_layer(node.module_path), max(1, rows // top_k), experts, top_k)


@rule("aten._grouped_mm")
def grouped_mm(node: OpNode, opts: CostOptions) -> Cost:
    """MoE grouped GEMM over G experts; rows are token-expert pairs sorted by expert, `offs` splits them.

    Forward and input gradient, A 2-D (rows x K), B 3-D (G x K x N): FLOPs = 2 * rows * K * N; B's bytes are
    the experts the batch really touches (rows > 0 under the routing assumption), not all G: the kernel skips
    experts with no rows.
    Weight gradient, A 2-D (K x rows, a transposed view) and B 2-D (rows x N), out G x K x N: each expert's
    slice of rows contracts on its own, FLOPs = 2 * K * rows * N; the touched experts' slices are written.
    Both 3-D (a plain batched GEMM): FLOPs = 2 * out numel * K.
    """
    a, w = node.inputs[0], node.inputs[1]
    top_k = int(node.attrs.get("moe_top_k", 1))
    other = sum(t.distinct_numel * t.itemsize for t in node.inputs[2:])  # offsets
    if len(a.shape) == 2 and len(w.shape) == 2:
        out = node.outputs[0]
        k, rows = a.shape
        n, e = w.shape[-1], out.shape[0]
        touched = sum(1 for r in expert_rows(node, opts, e, rows, top_k) if r > 0)
        return Cost(
            tc_flops=2.0 * k * rows * n,
            bytes_read=a.distinct_numel * a.itemsize + w.distinct_numel * w.itemsize + other,
            bytes_written=touched * k * n * out.itemsize,
            kind="grouped_gemm",
            shape={"m": k, "n": n, "k": rows, "experts": e, "experts_touched": touched, "top_k": top_k,
                   "weight": ""},
        )
    if len(a.shape) == 3:
        return Cost(tc_flops=2.0 * node.outputs[0].numel * a.shape[-1], bytes_read=read_bytes(node),
                    bytes_written=write_bytes(node), kind="grouped_gemm",
                    shape={"m": a.shape[-2], "n": w.shape[-1], "k": a.shape[-1], "experts": a.shape[0],
                           "experts_touched": a.shape[0], "top_k": top_k, "weight": w.param or ""})
    rows, k = a.shape[-2], a.shape[-1]
    e, n = w.shape[0], w.shape[-1]
    per = expert_rows(node, opts, e, rows, top_k)
    touched = sum(1 for r in per if r > 0)
    per_expert = k * n * w.itemsize
    return Cost(
        tc_flops=2.0 * rows * k * n,
        bytes_read=a.distinct_numel * a.itemsize + touched * per_expert + other,
        bytes_written=write_bytes(node),
        kind="grouped_gemm",
        shape={"m": rows, "n": n, "k": k, "experts": e, "experts_touched": touched, "top_k": top_k,
               "expert_rows": list(per), "weight": w.param or ""},
    )


@rule("aten.convolution", "aten._convolution", "aten.conv2d")
def convolution(node: OpNode, opts: CostOptions) -> Cost:
    # out[b, co, *s] = sum over ci/groups and the kernel window: 2 * b * co * prod(s) * (ci/groups) * prod(kernel)
    x, w, out = node.inputs[0], node.inputs[1], node.outputs[0]
    b, co, spatial = out.shape[0], out.shape[1], out.shape[2:]
    ci_per_group, kernel = w.shape[1], w.shape[2:]
    bias = len(node.inputs) > 2 and node.inputs[2].param is not None
    return Cost(
        tc_flops=2.0 * b * co * math.prod(spatial) * ci_per_group * math.prod(kernel),
        cc_flops=float(out.numel) if bias else 0.0,
        bytes_read=read_bytes(node),
        bytes_written=write_bytes(node),
        kind="conv",
        shape={"m": b * math.prod(spatial), "n": co, "k": ci_per_group * math.prod(kernel),
               "kernel": list(kernel), "in": list(x.shape), "weight": w.param or ""},
    )


@rule("aten.convolution_backward")
def convolution_backward(node: OpNode, opts: CostOptions) -> Cost:
    """convolution_backward(grad_out, input, weight, ..., output_mask): the input gradient is a transposed
    convolution and the weight gradient a convolution of input with grad_out, each with the forward's FLOPs;
    the bias gradient sums grad_out. output_mask says which of the three autograd needs (one kernel each)."""
    grad, x, w = call_arg(node, 0, "grad_output"), call_arg(node, 1, "input"), call_arg(node, 2, "weight")
    mask = [bool(m) for m in call_arg(node, 10, "output_mask", [True, True, True])]
    b, co, spatial = grad.shape[0], grad.shape[1], grad.shape[2:]
    ci_per_group, kernel = w.shape[1], w.shape[2:]
    forward = 2.0 * b * co * math.prod(spatial) * ci_per_group * math.prod(kernel)
    return Cost(
        tc_flops=forward * (int(mask[0]) + int(mask[1])),
        cc_flops=float(grad.numel) if mask[2] else 0.0,
        bytes_read=read_bytes(node),
        bytes_written=write_bytes(node),
        kind="conv",
        kernels=max(1, sum(mask)),
        shape={"m": b * math.prod(spatial), "n": co, "k": ci_per_group * math.prod(kernel), "kernel": list(kernel),
               "in": list(x.shape), "weight": w.param or "", "output_mask": mask},
    )


@rule("aten.einsum")
def einsum(node: OpNode, opts: CostOptions) -> Cost:
    """A contraction: 2 FLOPs per point of the full index space (every letter's size multiplied once)."""
    eq = str(node.attrs.get("equation", ""))
    sizes: dict[str, int] = {}
    for letters, t in zip(eq.split("->")[0].split(","), node.inputs, strict=False):
        for ch, n in zip(letters.strip(), t.shape, strict=False):
            sizes[ch] = max(sizes.get(ch, 1), n)
    return Cost(tc_flops=2.0 * math.prod(sizes.values()), bytes_read=read_bytes(node), bytes_written=write_bytes(node),
                kind="gemm", shape={"m": node.outputs[0].numel, "n": 1, "k": 1, "weight": ""})
