"""Data movement: copies, concatenation, padding, gathers and scatters, resampling. No tensor-core work.

A gather reads the rows it picks (not the whole table) plus the indices; a scatter writes the rows it puts.
transformers' DynamicCache grows by `cat` every decode step: reading the whole cache and writing it again is
exactly what this rule charges.
"""

from __future__ import annotations

from dsocr_trace.costs.base import Cost, CostOptions, out_numel, read_bytes, rule, write_bytes
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
    # out = self with the masked positions replaced by source: self, mask and source read; out written
    return Cost(bytes_read=read_bytes(node), bytes_written=write_bytes(node), kind="gather",
                shape={"numel": out_numel(node), "contiguous": True}, kernels=2)  # prefix-sum + scatter


@rule("aten.upsample_bicubic2d", "aten._upsample_bicubic2d_aa", "aten.upsample_bilinear2d",
      "aten._upsample_bilinear2d_aa", "aten.upsample_linear1d", "aten.upsample_nearest2d")
def resample(node: OpNode, opts: CostOptions) -> Cost:
    # taps per output element: bicubic 4x4, bilinear 2x2, linear 2, nearest 1; a multiply-add per tap.
    # Antialiased kernels widen the taps when shrinking: charged as bicubic.
    name = node.op
    taps = 16 if "bicubic" in name else 4 if "bilinear" in name else 2 if "linear1d" in name else 1
    return Cost(cc_flops=2.0 * taps * out_numel(node), bytes_read=read_bytes(node),
                bytes_written=write_bytes(node), kind="elementwise", shape=pointwise_shape(node))
