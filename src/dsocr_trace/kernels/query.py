"""What a kernel-family model needs to know about one op: its family, its class within the family, its size
features, and the ideal work (FLOPs, bytes) the cost rules gave it.

The same function (`query_of`) describes a traced node for a prediction and a calibration point for a fit:
calibration specs become OpNodes (`node_of_spec`, shapes of the outputs from a meta-device run of the op) and
go through the same cost rules as the trace.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from dsocr_trace.costs.base import Cost
from dsocr_trace.trace.ir import ATTENTION, OpNode, TensorRef, op_base

FAMILIES = ("gemm", "conv", "grouped_gemm", "attention", "memory")
_GEMM_OPS = {"aten.mm": "mm", "aten.addmm": "addmm", "aten.bmm": "bmm", "aten.baddbmm": "baddbmm",
             "aten.linear": "addmm", "aten.matmul": "bmm"}
_DTYPE_SHORT = {"bfloat16": "bf16", "float16": "f16", "float32": "f32", "float64": "f64", "int64": "i64",
                "int32": "i32", "bool": "b", "uint8": "u8", "int8": "i8"}


@frozen
class Query:
    family: str  # one of FAMILIES
    cls: tuple[Any, ...]  # the class within the family: points of one class share a curve
    x: tuple[float, ...]  # size features (> 0), interpolated in log space
    tc_flops: float
    cc_flops: float
    bytes: float
    kernels: int = 1
    # family details: gemm (m, n, k, batch), grouped_gemm (expert_rows, n, k), attention (b, h, tq, tk, d)
    detail: tuple[Any, ...] = ()


def _role(t: TensorRef, out: TensorRef | None) -> str:
    """How an input is walked relative to the output: f full contiguous, t full strided (a transposing read),
    b broadcast (fewer elements than the output or stride-0 dimensions), s a single element."""
    if t.numel <= 1:
        return "s"
    if t.is_broadcast or (out is not None and t.numel < out.numel):
        return "b"
    return "f" if t.is_contiguous else "t"


def pattern_of(node: OpNode) -> str:
    """Access pattern of a memory-bound op: one role letter per tensor input (see _role), the output's
    contiguity after a slash. A cat/stack's inputs are each smaller than its output by nature: their roles are
    taken against the largest input (a KV-cache append is "fb": the cache and one new position)."""
    out = node.outputs[0] if node.outputs else None
    ref = out
    if op_base(node.op) in ("aten.cat", "aten.stack") and node.inputs:
        ref = max(node.inputs, key=lambda t: t.numel)
    roles = "".join(_role(t, ref) for t in node.inputs)
    tail = "" if out is None or out.is_contiguous else "/t"
    return roles + tail


def dtypes_of(node: OpNode) -> str:
    ins = ",".join(_DTYPE_SHORT.get(t.dtype, t.dtype) for t in node.inputs)
    outs = ",".join(_DTYPE_SHORT.get(t.dtype, t.dtype) for t in node.outputs)
    return f"{ins}>{outs}"


def query_of(node: OpNode | None, cost: Cost) -> Query:
    """The family query of an op (node None: a fused item with no single op, priced by its Cost kind)."""
    kind = cost.kind
    base = op_base(node.op) if node is not None else "fused"
    tc, cc, nbytes = cost.tc_flops, cost.cc_flops, cost.bytes
    if node is not None and kind == "gemm" and base in _GEMM_OPS:
        sh = cost.shape
        m, n, k, batch = int(sh["m"]), int(sh["n"]), int(sh["k"]), int(sh.get("batch", 1))
        weight = bool(sh.get("weight"))
        dt = _DTYPE_SHORT.get(node.inputs[-1].dtype, "bf16")
        return Query("gemm", (_GEMM_OPS[base], n, k, 1 if weight else batch, weight, dt), (float(m),), tc, cc,
                     nbytes, cost.kernels, (m, n, k, batch))
    if node is not None and kind == "conv":
        w = node.inputs[1].shape
        stride = tuple(node.call["args"][3]) if node.call else (1,)
        return Query("conv", (w[0], w[1], tuple(w[2:]), stride), (float(cost.shape["m"]),), tc, cc, nbytes,
                     cost.kernels, (int(cost.shape["m"]), int(cost.shape["n"]), int(cost.shape["k"]), 1))
    if kind == "grouped_gemm" and node is not None and base == "aten._grouped_mm":
        sh = cost.shape
        rows = tuple(int(r) for r in sh.get("expert_rows") or ())
        return Query("grouped_gemm", (int(sh["n"]), int(sh["k"])), (float(max(1, sh["m"])),), tc, cc, nbytes,
                     cost.kernels, (rows, int(sh["n"]), int(sh["k"])))
    if kind == "attention" and node is not None and node.op == ATTENTION:
        a = node.attrs
        b, h, tq, tk, d = int(a["batch"]), int(a["heads"]), int(a["q_len"]), int(a["kv_len"]), int(a["head_dim"])
        decode = tq == 1
        cls = (h, d, bool(a["causal"]) and not decode, str(a["mask"]), decode)
        return Query("attention", cls, (float(b * h), float(tq), float(tk)), tc, cc, nbytes, cost.kernels,
                     (b, h, tq, tk, d))
    # memory-bound: element-wise, copies, casts, cats, norms, reductions, gathers, sorts, fills, fused chains
    if node is None:
        contiguous = bool(cost.shape.get("contiguous", True))
        return Query("memory", ("fused", kind, "f" if contiguous else "t", ""), (max(nbytes, 1.0),), tc, cc,
                     nbytes, cost.kernels)
    return Query("memory", (base, kind, pattern_of(node), dtypes_of(node)), (max(nbytes, 1.0),), tc, cc, nbytes,
                 cost.kernels)


# -- calibration specs as nodes ---------------------------------------------------------------------------
def _meta_tensor(ref: dict[str, Any]) -> Any:
    import torch

    from dsocr_trace.trace.opspec import DTYPES, storage_extent

    shape, strides, off = ref["shape"], ref["strides"], int(ref["offset"])
    return torch.empty(storage_extent(ref), dtype=DTYPES.get(ref["dtype"], torch.float32),
                       device="meta").as_strided(shape, strides, off)


def _ref(t: Any, param: bool) -> TensorRef:
    return TensorRef(shape=tuple(int(s) for s in t.shape), dtype=str(t.dtype).removeprefix("torch."),
                     strides=tuple(int(s) for s in t.stride()), param="w" if param else None,
                     storage_offset=int(t.storage_offset()))


def node_of_spec(spec: dict[str, Any]) -> OpNode:
    """An OpNode for an operator-benchmark spec: inputs as given, outputs from running the op on meta."""
    import torch

    from dsocr_trace.trace.opspec import call_arguments

    ins = [_meta_tensor(r) for r in spec["inputs"]]
    refs = [_ref(t, bool(r["param"])) for t, r in zip(ins, spec["inputs"], strict=True)]
    attrs = dict(spec.get("attrs") or {})
    if spec["op"] == ATTENTION:
        q, v = ins[0], ins[2]
        outs = [torch.empty((*q.shape[:-1], v.shape[-1]), dtype=q.dtype, device="meta")]
    else:
        ns, _, rest = spec["op"].partition(".")
        name, _, overload = rest.partition(".")
        fn = getattr(getattr(getattr(torch.ops, ns), name), overload or "default")
        args, kwargs = call_arguments(spec, ins, torch.device("meta"))
        try:
            res = fn(*args, **kwargs)
            outs = [r for r in (res if isinstance(res, (tuple, list)) else [res]) if isinstance(r, torch.Tensor)]
        except (RuntimeError, TypeError, ValueError, NotImplementedError):
            # an argument the spec could not record (a symbolic scalar): the op is element-wise on its input
            outs = [torch.empty_like(ins[0])]
    if spec["op"].startswith("aten._grouped_mm"):
        offs = spec.get("offsets")
        rows = ins[0].shape[0]
        experts = ins[2].shape[0]
        if offs is None:  # opbench's default: even cuts
            offs = [round(rows * (e + 1) / experts) for e in range(experts)]
        attrs["expert_rows"] = [b - a for a, b in zip([0, *offs[:-1]], offs, strict=True)]
    return OpNode(id=0, op=spec["op"], module_path="", module_type="", stage="", inputs=refs,
                  outputs=[_ref(o, False) for o in outs], attrs=attrs, call=spec.get("call"))
