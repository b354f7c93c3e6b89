"""Semantic groups: one rule for what a fused kernel of the whole group moves and computes.

In eager execution a group costs what its member aten ops cost (each one a kernel); these rules are used
when the execution profile fuses the group (an optimized engine: fused RMSNorm, grouped-GEMM MoE).
"""

from __future__ import annotations

from dsocr_trace.costs.base import Cost, CostOptions, rule
from dsocr_trace.costs.gemm import moe_layer
from dsocr_trace.trace.ir import MOE_EXPERTS, RMS_NORM, OpNode


@rule(RMS_NORM)
def rms_norm(node: OpNode, opts: CostOptions) -> Cost:
    # y = x * rsqrt(mean(x^2) + eps) * w: square, sum, scale, multiply by w ~ 4 FLOPs per element;
    # one pass: x read once, w read once, y written once
    rows, dim = node.attrs["rows"], node.attrs["dim"]
    x, out = node.inputs[0], node.outputs[0]
    w_bytes = sum(t.nbytes for t in node.inputs if t.param is not None)
    return Cost(cc_flops=4.0 * rows * dim, bytes_read=float(x.nbytes + w_bytes), bytes_written=float(out.nbytes),
                kind="reduction", shape={"numel": rows * dim, "row": dim, "contiguous": True})


@rule(MOE_EXPERTS)
def moe_experts(node: OpNode, opts: CostOptions) -> Cost:
    """Routed experts as a grouped-GEMM engine runs them (T tokens, k of E experts, hidden H, expert width I).

    tensor-core FLOPs = T*k*(2*H*2I + 2*I*H) for a gated (SwiGLU) expert: gate+up, then down;
    weights read = distinct experts touched * 3*H*I; activations: tokens in, the T*k*2I intermediate out and
    back in (between the two GEMMs), T*k*H partial outputs, T*H combined result.
    """
    a = node.attrs
    t, k, e, h, i = a["tokens"], a["top_k"], a["n_experts"], a["hidden"], a["intermediate"]
    item = node.inputs[0].itemsize
    touched = sum(1 for r in opts.routing.rows(moe_layer(node.module_path), t, e, k) if r > 0)
    up = 2 * i if a.get("gated", True) else i
    flops = 2.0 * t * k * h * up + 2.0 * t * k * i * h
    weights = touched * (h * up + i * h) * item
    acts_read = (t * h + t * k * i + t * k * h) * item
    acts_written = (t * k * i + t * k * h + t * h) * item
    return Cost(tc_flops=flops, cc_flops=float(t * k * (4 * i + h)), bytes_read=float(weights + acts_read),
                bytes_written=float(acts_written), kind="grouped_gemm", kernels=4,
                shape={"m": t * k, "n": up, "k": h, "experts": e, "experts_touched": touched, "top_k": k})
