"""Optimizer steps: foreach ops over tensor lists and the fused AdamW/Adam/SGD kernels (CUDA cores).

A foreach op applies one pointwise formula to every tensor of its lists; on a GPU `multi_tensor_apply` packs
the tensors into launches of at most `max_tensors[depth]` tensors and 320 blocks of 65,536 elements (depth =
number of tensor lists the kernel walks), so launches = max(ceil(tensors / max_tensors), ceil(chunks / 320)).
FLOPs = per-element count x elements of the first list; bytes = every distinct input read once, the updated
lists (in-place ops) or the outputs written once.

Fused AdamW (`_fused_adamw_`, HF Trainer's default `adamw_torch_fused`), per element of a parameter:
decoupled weight decay p *= 1 - lr*wd (1), m = b1*m + (1-b1)*g (3), v = b2*v + (1-b2)*g^2 (4),
denominator sqrt(v)/sqrt(bc2) + eps (3), p -= step_size * m / denominator (3): 14 FLOPs; reads p, g, m, v,
writes p, m, v. Fused SGD: p -= lr * (g + wd*p) (3, momentum buffer +2).
"""

from __future__ import annotations

import math

from dsocr_trace.costs.base import Cost, CostOptions, read_bytes, rule, write_bytes
from dsocr_trace.trace.ir import OpNode, TensorRef, op_base

MAX_TENSORS = (110, 64, 48, 36, 30)  # per launch, by depth 1..5 (ATen MultiTensorApply.cuh)
MAX_BLOCKS = 320
CHUNK = 65536

# FLOPs per element of the first list
_FOREACH_PER_ELEMENT: dict[str, int] = {
    "aten._foreach_add": 1, "aten._foreach_add_": 1, "aten._foreach_sub": 1, "aten._foreach_sub_": 1,
    "aten._foreach_mul": 1, "aten._foreach_mul_": 1, "aten._foreach_div": 1, "aten._foreach_div_": 1,
    "aten._foreach_neg": 1, "aten._foreach_neg_": 1, "aten._foreach_sqrt": 1, "aten._foreach_sqrt_": 1,
    "aten._foreach_reciprocal": 1, "aten._foreach_reciprocal_": 1, "aten._foreach_pow": 1, "aten._foreach_pow_": 1,
    "aten._foreach_maximum": 1, "aten._foreach_maximum_": 1, "aten._foreach_clamp_min_": 1,
    "aten._foreach_clamp_max_": 1, "aten._foreach_sign": 1, "aten._foreach_abs": 1,
    "aten._foreach_addcmul": 2, "aten._foreach_addcmul_": 2, "aten._foreach_addcdiv": 2, "aten._foreach_addcdiv_": 2,
    "aten._foreach_lerp": 3, "aten._foreach_lerp_": 3,
    "aten._foreach_norm": 2,  # square and accumulate
    "aten._foreach_copy_": 0, "aten._foreach_zero_": 0,
}
_FUSED_PER_ELEMENT = {"aten._fused_adamw_": 14, "aten._fused_adam_": 14, "aten._fused_sgd_": 3}


def tensor_lists(node: OpNode) -> list[list[TensorRef]]:
    """The op's tensor-list arguments, in order, as TensorRefs (scalars and single tensors skipped)."""
    out: list[list[TensorRef]] = []
    for val in (node.call or {}).get("args") or []:
        if isinstance(val, list) and val and all(isinstance(v, dict) and set(v) == {"t"} for v in val):
            out.append([node.inputs[v["t"]] for v in val])
    return out


def multi_tensor_launches(tensors: list[TensorRef], depth: int) -> int:
    if not tensors:
        return 0
    max_tensors = MAX_TENSORS[min(max(depth, 1), len(MAX_TENSORS)) - 1]
    chunks = sum(math.ceil(t.numel / CHUNK) for t in tensors)
    return max(math.ceil(len(tensors) / max_tensors), math.ceil(chunks / MAX_BLOCKS))


def _elementwise(node: OpNode, per: int, written: float, kernels: int, kind: str = "elementwise") -> Cost:
    lists = tensor_lists(node)
    first = lists[0] if lists else node.inputs
    numel = sum(t.numel for t in first)
    return Cost(cc_flops=float(per * numel), bytes_read=read_bytes(node), bytes_written=written, kind=kind,
                kernels=kernels, shape={"numel": numel, "contiguous": True, "broadcast": False,
                                        "tensors": len(first)})


@rule(*_FOREACH_PER_ELEMENT)
def foreach(node: OpNode, opts: CostOptions) -> Cost:
    base = op_base(node.op)
    lists = tensor_lists(node)
    first = lists[0] if lists else []
    inplace = base.endswith("_")
    written = float(sum(t.nbytes for t in first)) if inplace else write_bytes(node)
    depth = len(lists) + (0 if inplace else 1)  # out-of-place ops walk their output list too
    kernels = multi_tensor_launches(first, depth)
    if base == "aten._foreach_copy_" and len(lists) == 2 and any(
            a.dtype != b.dtype for a, b in zip(lists[0], lists[1], strict=False)):
        kernels = len(first)  # a dtype-converting copy leaves the fast path: one copy kernel per tensor
    if base == "aten._foreach_norm":  # a second kernel reduces the per-chunk partial sums
        return _elementwise(node, _FOREACH_PER_ELEMENT[base], written, kernels + 1, kind="reduction")
    return _elementwise(node, _FOREACH_PER_ELEMENT[base], written, kernels)


@rule(*_FUSED_PER_ELEMENT)
def fused_optimizer(node: OpNode, opts: CostOptions) -> Cost:
    """One multi-tensor kernel updating params and their states in place (lists: params, grads, states...)."""
    base = op_base(node.op)
    lists = [lst for lst in tensor_lists(node) if lst]
    params = lists[0] if lists else []
    # updated in place: params and the per-element state lists (not grads, not the scalar step counters)
    numel = sum(t.numel for t in params)
    updated = [params] + [lst for lst in lists[2:] if sum(t.numel for t in lst) == numel]
    written = float(sum(t.nbytes for lst in updated for t in lst))
    per = _FUSED_PER_ELEMENT[base]
    if base == "aten._fused_sgd_" and len(updated) > 1:
        per += 2  # momentum buffer: buf = momentum * buf + g
    depth = 2 + (len(updated) - 1)  # params, grads, states
    return _elementwise(node, per, written, multi_tensor_launches(params, depth))
