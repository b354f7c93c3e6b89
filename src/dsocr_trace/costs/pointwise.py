"""Pointwise ops (CUDA cores): FLOPs per output element times the output size; bytes in and out.

A broadcast input (a stride-0 dimension) is read once per distinct element but the kernel walks it with a
strided index: the latency model runs such ops, and ones with non-contiguous operands, below peak bandwidth.
"""

from __future__ import annotations

from dsocr_trace.costs.base import Cost, CostOptions, out_numel, read_bytes, rule, write_bytes
from dsocr_trace.trace.ir import OpNode, op_base

# FLOPs per output element. Transcendentals count 1 (one SFU op); GELU (erf form) and SiLU count their
# arithmetic: x*0.5*(1+erf(x/sqrt2)) ~ 4 + erf; x*sigmoid(x) ~ 4.
_PER_ELEMENT: dict[str, int] = {
    "aten.add": 1, "aten.sub": 1, "aten.rsub": 1, "aten.mul": 1, "aten.div": 1, "aten.neg": 1, "aten.floor_divide": 1,
    "aten.isin": 1,  # one compare per element against a small test set (generate()'s eos check)
    "aten.pow": 1, "aten.rsqrt": 1, "aten.sqrt": 1, "aten.exp": 1, "aten.log": 1, "aten.cos": 1, "aten.sin": 1,
    "aten.tanh": 1, "aten.abs": 1, "aten.reciprocal": 1, "aten.remainder": 1, "aten.fmod": 1,
    "aten.sigmoid": 4, "aten.silu": 4, "aten.gelu": 8, "aten.erf": 1,
    "aten.clamp": 1, "aten.clamp_min": 1, "aten.clamp_max": 1, "aten.minimum": 1, "aten.maximum": 1,
    "aten.eq": 1, "aten.ne": 1, "aten.le": 1, "aten.lt": 1, "aten.ge": 1, "aten.gt": 1,
    "aten.bitwise_and": 1, "aten.bitwise_or": 1, "aten.bitwise_not": 1, "aten.logical_and": 1,
    "aten.logical_or": 1, "aten.logical_not": 1, "aten.where": 1, "aten.masked_fill": 1,
    "aten.masked_fill_": 1, "aten.add_": 1, "aten.mul_": 1, "aten.div_": 1, "aten.sub_": 1,
    "aten.__and__": 1, "aten.__or__": 1, "aten.lerp": 3, "aten.addcmul": 2, "aten.addcdiv": 2,
    # activation gradients (training): grad * f'(x)
    "aten.threshold_backward": 1,  # grad where x > threshold
    "aten.sigmoid_backward": 3,  # grad * y * (1 - y)
    "aten.tanh_backward": 3,  # grad * (1 - y^2)
    "aten.silu_backward": 9,  # s = sigmoid(x) (4); grad * s * (1 + x * (1 - s)) (5)
    "aten.gelu_backward": 10,  # grad * (cdf(x) + x * pdf(x)): erf, exp and their arithmetic
}


def pointwise_shape(node: OpNode) -> dict[str, object]:
    out = node.outputs[0] if node.outputs else None
    tensors = [t for t in node.inputs if t.numel > 1] + ([out] if out is not None else [])
    return {
        "numel": out_numel(node),
        "contiguous": all(t.is_contiguous for t in tensors),
        "broadcast": any(t.is_broadcast or (out is not None and t.numel < out.numel and t.numel > 1)
                         for t in node.inputs),
    }


@rule(*_PER_ELEMENT)
def pointwise(node: OpNode, opts: CostOptions) -> Cost:
    base = op_base(node.op)
    per = _PER_ELEMENT.get(base, 1)
    return Cost(
        cc_flops=float(per * out_numel(node)),
        bytes_read=read_bytes(node),
        bytes_written=write_bytes(node),
        kind="elementwise",
        shape=pointwise_shape(node),
    )


@rule("aten._to_copy", "aten.to", "aten.type_as")
def cast(node: OpNode, opts: CostOptions) -> Cost:
    """dtype/device cast: a copy (reads the source dtype, writes the new one)."""
    return Cost(bytes_read=read_bytes(node), bytes_written=write_bytes(node), kind="copy",
                shape=pointwise_shape(node))
