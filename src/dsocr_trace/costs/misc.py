"""Views (free), allocations and fills, and host-blocking reads."""

from __future__ import annotations

from dsocr_trace.costs.base import Cost, CostOptions, rule, write_bytes
from dsocr_trace.trace.ir import OpNode

# Aliasing ops: new metadata over the same storage. No kernel, no bytes.
VIEW_OPS = (
    "aten.view", "aten._unsafe_view", "aten.reshape", "aten.t", "aten.transpose", "aten.permute", "aten.unsqueeze",
    "aten.squeeze", "aten.expand", "aten.expand_as", "aten.slice", "aten.select", "aten.split", "aten.split_with_sizes",
    "aten.unbind", "aten.chunk", "aten.narrow", "aten.alias", "aten.detach", "aten.as_strided", "aten.unflatten",
    "aten.flatten", "aten.view_as", "aten.lift_fresh", "aten.diagonal", "aten.movedim", "aten.unfold",
    "aten.view_as_real", "aten.view_as_complex", "aten.real", "aten.imag", "aten.numpy_T",
)


@rule(*VIEW_OPS)
def view(node: OpNode, opts: CostOptions) -> Cost:
    return Cost(kind="view", kernels=0)


@rule("aten.empty", "aten.empty_like", "aten.new_empty", "aten.empty_strided", "aten.new_empty_strided")
def allocation(node: OpNode, opts: CostOptions) -> Cost:
    """Caching-allocator work on the host; no kernel runs."""
    return Cost(kind="alloc", kernels=0)


@rule("aten.zeros", "aten.zeros_like", "aten.ones", "aten.ones_like", "aten.full", "aten.full_like",
      "aten.new_zeros", "aten.new_ones", "aten.new_full", "aten.arange", "aten.fill", "aten.fill_", "aten.zero_",
      "aten.scalar_tensor", "aten.lift_fresh_copy", "aten.linspace", "aten.eye")
def fill(node: OpNode, opts: CostOptions) -> Cost:
    return Cost(bytes_written=write_bytes(node), kind="alloc", shape={"numel": sum(t.numel for t in node.outputs),
                                                                       "contiguous": True})


@rule("sync.item")
def sync(node: OpNode, opts: CostOptions) -> Cost:
    """`.item()` and friends: a device-to-host copy of one value; the host waits for the GPU to catch up."""
    return Cost(bytes_read=float(sum(t.itemsize for t in node.inputs)), kind="sync", kernels=1)
