"""Data movement: copies, concatenation, padding, gathers and scatters, resampling. No tensor-core work.

A gather reads the rows it picks (not the whole table) plus the indices; a scatter writes the rows it puts.
transformers' DynamicCache grows by `cat` every decode step: reading the whole cache and writing it again is
exactly what this rule charges.

Training adds the gradients of these ops: a slice/select gradient is a zero fill of the input's shape plus a
copy of the gradient into the slice; an embedding gradient writes the whole (vocab x hidden) table (zero fill,
then the rows of the looked-up tokens summed per distinct token); an upsample gradient scatters each output
gradient back onto its taps; masked_scatter's gradient picks the masked elements of the gradient.
"""

from __future__ import annotations

from dsocr_trace.costs.base import Cost, CostOptions, call_arg, out_numel, read_bytes, rule, write_bytes
from dsocr_trace.costs.pointwise import pointwise_shape
from dsocr_trace.trace.ir import OpNode


@rule("aten.clone", "aten.contiguous", "aten.cat", "aten.stack", "aten.constant_pad_nd", "aten.copy", "aten.copy_",
      "aten.pad", "aten.repeat", "aten.roll", "aten.flip", "aten._unsafe_index", "aten.tril", "aten.triu")
def copy(node: OpNode, opts: CostOptions) -> Cost:
    shape = pointwise_shape(node)
    if node.op.startswith("aten.copy_"):
        # copy_(dst, src): reads src, writes dst
        src, dst = node.inputs[1], node.inputs[0]
        return Cost(bytes_read=float(src.distinct_numel * src.itemsize), bytes_written=float(dst.nbytes),
                    kind="copy", shape=shape)
    if node.op.startswith("aten.constant_pad_nd") and node.outputs[0].numel > node.inputs[0].numel:
        # a growing pad fills the new tensor, then copies the input into its interior: two kernels (the
        # windowed SAM blocks' self time holds both in the H200 runs); bytes stay the one-pass figure the
        # calibration sweep priced pads by
        return Cost(bytes_read=read_bytes(node), bytes_written=write_bytes(node), kind="copy", shape=shape,
                    kernels=2)
    return Cost(bytes_read=read_bytes(node), bytes_written=write_bytes(node), kind="copy", shape=shape)


@rule("aten.index", "aten.index_select", "aten.gather", "aten.embedding", "aten.take_along_dim")
def gather(node: OpNode, opts: CostOptions) -> Cost:
    out = node.outputs[0]
    indices = sum(t.nbytes for t in node.inputs[1:] if t.dtype in ("int64", "int32", "bool"))
    # the rows picked from the source: as many elements as the output holds
    picked = out.numel * node.inputs[0].itemsize
    return Cost(bytes_read=float(picked + indices), bytes_written=float(out.nbytes), kind="gather",
                shape={"numel": out.numel, "contiguous": False})


@rule("aten.index_put", "aten.index_put_", "aten.scatter", "aten.scatter_", "aten.scatter_add",
      "aten.scatter_add_", "aten.index_add", "aten.index_add_", "aten.index_copy", "aten.index_copy_")
def scatter(node: OpNode, opts: CostOptions) -> Cost:
    values = node.inputs[-1]
    indices = sum(t.nbytes for t in node.inputs[1:-1])
    return Cost(bytes_read=float(values.distinct_numel * values.itemsize + indices),
                bytes_written=float(values.numel * node.inputs[0].itemsize), kind="gather",
                shape={"numel": values.numel, "contiguous": False})


@rule("aten.masked_scatter", "aten.masked_scatter_")
def masked_scatter(node: OpNode, opts: CostOptions) -> Cost:
    # out = self with the masked positions replaced by source: self, mask and source read; out written. CUDA
    # launches six kernels (the calibration sweep's names): the clone of self (a device copy), the broadcast
    # mask made contiguous, cub's scan init and prefix sum over the mask, the size check, the scatter
    return Cost(bytes_read=read_bytes(node), bytes_written=write_bytes(node), kind="gather",
                shape={"numel": out_numel(node), "contiguous": True},
                kernels=6 if node.op.startswith("aten.masked_scatter.") else 5)  # in place: no clone


def _taps(op: str) -> int:
    """Interpolation taps per output element: bicubic 4x4, bilinear 2x2, linear 2, nearest 1 (antialiased
    kernels widen the taps when shrinking; not charged)."""
    return 16 if "bicubic" in op else 4 if "bilinear" in op else 2 if "linear1d" in op else 1


@rule("aten.upsample_bicubic2d", "aten._upsample_bicubic2d_aa", "aten.upsample_bilinear2d",
      "aten._upsample_bilinear2d_aa", "aten.upsample_linear1d", "aten.upsample_nearest2d")
def resample(node: OpNode, opts: CostOptions) -> Cost:
    # a multiply-add per tap
    return Cost(cc_flops=2.0 * _taps(node.op) * out_numel(node), bytes_read=read_bytes(node),
                bytes_written=write_bytes(node), kind="elementwise", shape=pointwise_shape(node))


@rule("aten.upsample_bicubic2d_backward", "aten._upsample_bicubic2d_aa_backward", "aten.upsample_bilinear2d_backward",
      "aten._upsample_bilinear2d_aa_backward", "aten.upsample_linear1d_backward", "aten.upsample_nearest2d_backward")
def resample_backward(node: OpNode, opts: CostOptions) -> Cost:
    # the input gradient is zero-filled, then each output gradient is multiplied onto its taps and added
    grad = node.inputs[0]
    return Cost(cc_flops=2.0 * _taps(node.op) * grad.numel, bytes_read=float(grad.distinct_numel * grad.itemsize),
                bytes_written=write_bytes(node), kind="elementwise", kernels=2, shape=pointwise_shape(node))


@rule("aten.slice_backward", "aten.select_backward", "aten.diagonal_backward", "aten.unfold_backward",
      "aten.as_strided_backward")
def view_backward(node: OpNode, opts: CostOptions) -> Cost:
    """Gradient of a view: a zero tensor of the input's shape with the view's gradient copied in."""
    grad, out = node.inputs[0], node.outputs[0]
    return Cost(bytes_read=float(grad.distinct_numel * grad.itemsize), bytes_written=float(out.nbytes + grad.nbytes),
                kind="copy", kernels=2, shape={"numel": out.numel, "contiguous": True, "broadcast": False})


@rule("aten.embedding_dense_backward")
def embedding_backward(node: OpNode, opts: CostOptions) -> Cost:
    """embedding_dense_backward(grad (N, D), indices (N), num_weights, ...) -> the (num_weights, D) gradient.

    CUDA sorts the indices, sums the gradient rows per distinct token and writes a zero-filled table: three
    kernel groups; one add per gradient element."""
    grad, indices = call_arg(node, 0, "grad_output"), call_arg(node, 1, "indices")
    out = node.outputs[0]
    return Cost(cc_flops=float(grad.numel), bytes_read=float(grad.distinct_numel * grad.itemsize + indices.nbytes),
                bytes_written=float(out.nbytes), kind="gather", kernels=3,
                shape={"numel": out.numel, "contiguous": False})


@rule("aten.masked_scatter_backward", "aten.masked_select")
def masked_select(node: OpNode, opts: CostOptions) -> Cost:
    # the masked elements of the first input (as many as the output holds) and the whole mask; a prefix sum
    # over the mask then the gather
    src, out = node.inputs[0], node.outputs[0]
    mask = sum(t.distinct_numel * t.itemsize for t in node.inputs[1:] if t.dtype == "bool")
    return Cost(bytes_read=float(out.numel * src.itemsize + mask), bytes_written=float(out.nbytes), kind="gather",
                kernels=2, shape={"numel": out.numel, "contiguous": False})
