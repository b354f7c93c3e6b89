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
    "aten.detach_", "aten._assert_tensor_metadata", "aten.sym_size", "aten._assert_scalar",
    # host-side bookkeeping that torch.export records around vmap (no kernel)
    "_vmap_increment_nesting", "_vmap_decrement_nesting", "_add_batch_dim", "_remove_batch_dim",
    "lazy_load_decompositions",
    # profiler ranges torch.optim opens around each optimizer step (host only)
    "profiler._record_function_enter_new", "profiler._record_function_exit",
)


@rule(*VIEW_OPS)
def view(node: OpNode, opts: CostOptions) -> Cost:
    return Cost(kind="view", kernels=0)


@rule("aten.reshape.default", "aten.contiguous.default", "aten.to.dtype", "aten.to.dtype_layout", "aten.to.device")
def maybe_view(node: OpNode, opts: CostOptions) -> Cost:
    """Ops that copy only when they must (export keeps them; dispatch shows the copy as its own op)."""
    x = node.inputs[0] if node.inputs else None
    out = node.outputs[0] if node.outputs else None
    if x is None or out is None:
        return Cost(kind="view", kernels=0)
    same_dtype = x.dtype == out.dtype
    if same_dtype and (x.is_contiguous or node.op.startswith("aten.to.")):
        return Cost(kind="view", kernels=0)
    return Cost(bytes_read=float(x.distinct_numel * x.itemsize), bytes_written=float(out.nbytes), kind="copy",
                shape={"numel": out.numel, "contiguous": x.is_contiguous, "broadcast": x.is_broadcast})


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
