"""Fused scaled-dot-product attention (one kernel: flash, memory-efficient or cuDNN).

Symbols: B batch (windows included), H heads, Tq query length, Tk key length, D head dim, Dv value dim.
Scores Q K^T: 2*D FLOPs per (query, key) pair; P V: 2*Dv per pair. Causal attention computes only the
pairs with key <= query (+ Tk - Tq offset, the KV cache), diagonal included: Tq*(Tq+1)/2 + Tq*(Tk-Tq).
Softmax on CUDA cores: ~5 FLOPs per score (max, subtract, exp, sum, scale); a float bias adds one.
Bytes: Q, K, V, the mask/bias if any (read once, dense: SAM's rel-pos bias is a full B*H*Tq*Tk tensor),
and the output. The score matrix never reaches memory in a fused kernel.

Backward (flash / memory-efficient / cuDNN kernels, as autograd runs them in a training step): the scores are
recomputed from Q, K and the saved log-sum-exp, then dV = P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dO * O)),
dQ = dS K, dK = dS^T Q: five products, 2*pairs*(3*D + 2*Dv) tensor-core FLOPs.
"""

from __future__ import annotations

from dsocr_trace.costs.base import Cost, CostOptions, call_arg, read_bytes, rule, write_bytes
from dsocr_trace.trace.ir import ATTENTION, OpNode, op_base


def attended_pairs(tq: int, tk: int, causal: bool) -> int:
    """(query, key) pairs a kernel computes per batch and head."""
    if not causal:
        return tq * tk
    offset = max(tk - tq, 0)  # cached keys every query sees
    return tq * (tq + 1) // 2 + tq * offset


@rule(ATTENTION)
def attention(node: OpNode, opts: CostOptions) -> Cost:
    a = node.attrs
    b, h, tq, tk, d, dv = a["batch"], a["heads"], a["q_len"], a["kv_len"], a["head_dim"], a["v_head_dim"]
    pairs = b * h * attended_pairs(tq, tk, a["causal"])
    per_score = 5 + (1 if a["mask"] != "none" else 0)
    return Cost(
        tc_flops=2.0 * pairs * (d + dv),
        cc_flops=float(per_score * pairs),
        bytes_read=read_bytes(node),
        bytes_written=write_bytes(node),
        kind="attention",
        shape={"batch": b, "heads": h, "q_len": tq, "kv_len": tk, "head_dim": d, "causal": a["causal"],
               "mask": a["mask"], "pairs": pairs},
    )


def attention_flops_full(node: OpNode) -> float:
    """FLOPs as FlopCounterMode counts SDPA: 4*B*H*Tq*Tk*D, every pair, no causal discount."""
    a = node.attrs
    return 2.0 * a["batch"] * a["heads"] * a["q_len"] * a["kv_len"] * (a["head_dim"] + a["v_head_dim"])


# backward op -> (positions of query, key, value, attn_bias (-1: none) and is_causal in its arguments, kernels).
# Kernels: FlashAttention-2's backward launches three (dO.O row sums, the main dQ/dK/dV loop, dQ conversion);
# the CUTLASS memory-efficient backward two (a zero fill of the dQ accumulator, the main loop); cuDNN one.
_BACKWARD_ARGS: dict[str, tuple[int, int, int, int, int, int]] = {
    "aten._scaled_dot_product_flash_attention_backward": (1, 2, 3, -1, 11, 3),
    "aten._scaled_dot_product_efficient_attention_backward": (1, 2, 3, 4, 11, 2),
    "aten._scaled_dot_product_cudnn_attention_backward": (1, 2, 3, 8, 14, 1),
}
_ARG_NAMES = ("query", "key", "value", "attn_bias", "is_causal")


def _backward_dims(node: OpNode) -> tuple[int, int, int, int, int, int, bool, bool]:
    """(B*H, Tq, Tk, D, Dv, kernels, causal, has bias) of a fused attention backward, from its recorded call."""
    base = op_base(node.op)
    iq, ik, iv, ib, ic, kernels = _BACKWARD_ARGS[base]
    q, k, v = (call_arg(node, i, n) for i, n in zip((iq, ik, iv), _ARG_NAMES, strict=False))
    bias = call_arg(node, ib, "attn_bias") if ib >= 0 else None
    causal = bool(call_arg(node, ic, "is_causal", False))
    bh = q.numel // (q.shape[-2] * q.shape[-1])
    return bh, q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1], kernels, causal, bias is not None


@rule(*_BACKWARD_ARGS)
def attention_backward(node: OpNode, opts: CostOptions) -> Cost:
    bh, tq, tk, d, dv, kernels, causal, has_bias = _backward_dims(node)
    pairs = bh * attended_pairs(tq, tk, causal)
    # recompute P = exp(S*scale - lse): 3; dS = P * (dP - delta) and its scale: 3; a bias adds one
    per_score = 6 + (1 if has_bias else 0)
    return Cost(
        tc_flops=2.0 * pairs * (3 * d + 2 * dv),
        cc_flops=float(per_score * pairs),
        bytes_read=read_bytes(node),
        bytes_written=write_bytes(node),
        kind="attention",
        kernels=kernels,
        shape={"batch": bh, "heads": 1, "q_len": tq, "kv_len": tk, "head_dim": d, "causal": causal,
               "mask": "float" if has_bias else "none", "pairs": pairs, "backward": True},
    )


def attention_backward_flops_full(node: OpNode) -> float:
    """FLOPs as FlopCounterMode counts an SDPA backward: five products over every pair, no causal discount."""
    bh, tq, tk, d, dv, *_ = _backward_dims(node)
    return 2.0 * bh * tq * tk * (3 * d + 2 * dv)
