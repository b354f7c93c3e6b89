"""A stable key for "this op with these shapes, strides, dtypes and arguments": what an operator benchmark
measures once and what a prediction looks up. Computed from the IR only, identically on every machine."""

from __future__ import annotations

import hashlib

import orjson

from dsocr_trace.trace.ir import ATTENTION, OpNode


def op_signature(node: OpNode) -> dict[str, object] | None:
    """What determines the kernel(s) an op launches; None when the op cannot be replayed standalone."""
    if node.members or node.is_view:
        return None
    tensors = [[list(t.shape), list(t.strides), t.dtype, t.storage_offset] for t in node.inputs]
    if node.op == ATTENTION:
        a = node.attrs
        return {"op": node.op, "tensors": tensors, "causal": a["causal"], "mask": a["mask"], "scale": a["scale"]}
    if node.call is None:
        return None
    return {"op": node.op, "tensors": tensors, "call": node.call}


def op_key(node: OpNode) -> str | None:
    sig = op_signature(node)
    if sig is None:
        return None
    blob = orjson.dumps(sig, option=orjson.OPT_SORT_KEYS)
    return f"{node.op}#{hashlib.sha1(blob).hexdigest()[:16]}"
