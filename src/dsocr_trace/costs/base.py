"""The cost-rule registry: op name -> small pure function of the node -> Cost.

Like torch/utils/flop_counter.py: each op family has one function in one file, registered by decorator;
formulas read by eye. FLOPs count 2 per multiply-add (FlopCounterMode's convention). Bytes are the minimum a
kernel must move: each distinct input element read once, each output written once; views move nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrs import field, frozen

from dsocr_trace.costs.routing import Routing
from dsocr_trace.trace.ir import OpNode

# Latency families: the predictor picks an efficiency curve per family.
KINDS = (
    "gemm",  # dense matmul on tensor cores
    "grouped_gemm",  # MoE grouped GEMM over experts
    "conv",  # convolution (implicit GEMM on tensor cores)
    "attention",  # fused attention kernel
    "elementwise",  # pointwise math, contiguous
    "reduction",  # norms, softmax, sums, top-k
    "copy",  # data movement: cat, clone, contiguous, dtype casts, pads
    "gather",  # indexing, embedding, scatter
    "sort",  # sort / histogram / cumsum: few elements, latency-bound
    "view",  # aliasing, free
    "sync",  # host reads a device value
    "alloc",  # empty / zeros / arange / full: an allocation or a fill
)


@frozen
class Cost:
    tc_flops: float = 0.0  # tensor-core FLOPs
    cc_flops: float = 0.0  # CUDA-core FLOPs
    bytes_read: float = 0.0
    bytes_written: float = 0.0
    kind: str = "elementwise"
    kernels: int = 1  # kernel launches the op issues on a GPU (0 for views)
    # what the latency model needs beyond the totals: GEMM m/n/k, attention dims, contiguity, ...
    shape: dict[str, Any] = field(factory=dict)

    @property
    def flops(self) -> float:
        return self.tc_flops + self.cc_flops

    @property
    def bytes(self) -> float:
        return self.bytes_read + self.bytes_written


@frozen
class CostOptions:
    """Knobs of the cost rules that the trace cannot know."""

    # How the MoE router spreads tokens over experts (rows per expert of each grouped GEMM): see costs.routing
    routing: Routing = field(factory=Routing)


DEFAULT_OPTIONS = CostOptions()
Rule = Callable[[OpNode, CostOptions], Cost]
RULES: dict[str, Rule] = {}
RULE_NAMES: dict[str, str] = {}  # op -> rule function name (for reports and docs)


def rule(*ops: str) -> Callable[[Rule], Rule]:
    """Register a cost rule for aten ops given without overload ('aten.mm') or with ('aten.mm.default')."""

    def deco(fn: Rule) -> Rule:
        for op in ops:
            RULES[op] = fn
            RULE_NAMES[op] = fn.__name__
        return fn

    return deco


def find_rule(op: str) -> Rule | None:
    """Exact op first ('aten.add.Tensor'), then the op without its overload ('aten.add')."""
    fn = RULES.get(op)
    if fn is None and op.count(".") >= 2:
        fn = RULES.get(op.rsplit(".", 1)[0])
    return fn


def rule_name(op: str) -> str | None:
    name = RULE_NAMES.get(op)
    if name is None and op.count(".") >= 2:
        name = RULE_NAMES.get(op.rsplit(".", 1)[0])
    return name


def cost_of(node: OpNode, opts: CostOptions = DEFAULT_OPTIONS) -> Cost | None:
    """The node's cost, or None when no rule covers it (it is then reported under coverage.uncosted)."""
    fn = find_rule(node.op)
    return fn(node, opts) if fn is not None else None


# -- helpers shared by the rule files ----------------------------------------------------------------------
def read_bytes(node: OpNode, skip_params: bool = False) -> float:
    """Each distinct input read once; expanded (stride-0) dimensions are stored once."""
    total = 0
    seen: set[tuple[Any, ...]] = set()
    for t in node.inputs:
        if skip_params and t.param is not None:
            continue
        key = (t.producer, t.param, t.shape, t.strides, t.storage_offset)
        if key in seen and (t.producer is not None or t.param is not None):
            continue  # the same tensor passed twice (x * x) is read once
        seen.add(key)
        total += t.distinct_numel * t.itemsize
    return float(total)


def write_bytes(node: OpNode) -> float:
    return float(sum(t.nbytes for t in node.outputs))


def out_numel(node: OpNode) -> int:
    return sum(t.numel for t in node.outputs)


def call_arg(node: OpNode, index: int, name: str, default: Any = None) -> Any:
    """The op's argument at `index` (or keyword `name`) from its recorded call; tensors as their TensorRef."""
    call = node.call or {}
    args, kwargs = call.get("args") or [], call.get("kwargs") or {}
    val = args[index] if index < len(args) else kwargs.get(name, default)
    if isinstance(val, dict) and set(val) == {"t"}:
        return node.inputs[val["t"]]
    return val
