"""Fused scaled-dot-product attention (one kernel: flash, memory-efficient or cuDNN).

Symbols: B batch (windows included), H heads, Tq query length, Tk key length, D head dim, Dv value dim.
Scores Q K^T: 2*D FLOPs per (query, key) pair; P V: 2*Dv per pair. Causal attention computes only the
pairs with key <= query (+ Tk - Tq offset, the KV cache), diagonal included: Tq*(Tq+1)/2 + Tq*(Tk-Tq).
Softmax on CUDA cores: ~5 FLOPs per score (max, subtract, exp, sum, scale); a float bias adds one.
Bytes: Q, K, V, the mask/bias if any (read once, dense: SAM's rel-pos bias is a full B*H*Tq*Tk tensor),
and the output. The score matrix never reaches memory in a fused kernel.
"""

from __future__ import annotations

from dsocr_trace.costs.base import Cost, CostOptions, read_bytes, rule, write_bytes
from dsocr_trace.trace.ir import ATTENTION, OpNode


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
