"""`torch.autocast("cuda", dtype=bfloat16)` as a pass over traced ops.

The meta-device trace runs without autocast (meta tensors carry no CUDA autocast key), so a model that a user
runs under autocast (the remote code's `infer()` does) is traced with every op in its parameters' dtype. This
pass replays autocast's cast policy (CUDA op lists of `aten/src/ATen/autocast_mode.cpp`, as documented in
torch.amp) over the recorded ops:

* ops autocast runs in float32 (layer_norm, group_norm, pow, ...): every floating input not already float32
  is cast by its own kernel (`_to_copy`), parameters included (autocast caches only casts *to* the lower
  precision), and the op's floating outputs become float32;
* ops autocast runs in the lower precision (GEMMs, convolutions, SDPA): float32 inputs are cast down first;
* ops whose dtype autocast sets through their optional dtype argument (softmax, sum, cumsum, ...) compute in
  float32 without a separate cast;
* every other op follows type promotion: a float32 input makes its floating outputs float32.
Explicit casts (`_to_copy`) keep the dtype the code asked for. Tensors flow by their producer edges, so a
float32 LayerNorm output stays float32 through the pads and copies after it until a GEMM casts it down.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from attrs import evolve

from dsocr_trace.trace.ir import ATTENTION, PATCH_EMBED, OpNode, TensorRef, contiguous_strides, op_base

FLOATS = ("bfloat16", "float16", "float32")
# autocast's fp32 policy: inputs cast to float32 by separate kernels
FP32_CAST_OPS = frozenset({
    "aten.native_layer_norm", "aten.layer_norm", "aten.native_group_norm", "aten.group_norm", "aten.pow",
    "aten.exp", "aten.log", "aten.log1p", "aten.log2", "aten.log10", "aten.expm1", "aten.rsqrt", "aten.reciprocal",
    "aten.acos", "aten.asin", "aten.cosh", "aten.sinh", "aten.tan", "aten.erfinv", "aten.softplus",
    "aten.norm", "aten.linalg_vector_norm", "aten.cosine_similarity", "aten.cdist",
})
# autocast's fp32_set_opt_dtype policy: the op computes and returns float32 by its dtype argument, no cast kernel
FP32_DTYPE_OPS = frozenset({"aten._softmax", "aten._log_softmax", "aten.sum", "aten.cumsum", "aten.cumprod",
                            "aten.prod"})
# autocast's lower-precision policy
LOWER_OPS = frozenset({"aten.mm", "aten.addmm", "aten.bmm", "aten.baddbmm", "aten.addbmm", "aten.matmul",
                       "aten.linear", "aten.convolution", "aten._convolution", "aten.addmv", "aten.addr",
                       "aten.mv", "aten.dot", "aten._scaled_dot_product_efficient_attention",
                       "aten._scaled_dot_product_flash_attention", "aten._scaled_dot_product_cudnn_attention",
                       ATTENTION, PATCH_EMBED})
CAST = "aten._to_copy.default"
Key = tuple[int, int]



def autocast_nodes(nodes: Sequence[OpNode], in_scope: Callable[[OpNode], bool], new_id: Callable[[], int],
                   lower: str = "bfloat16") -> list[OpNode]:
    """`nodes` (in execution order) as autocast runs the ones `in_scope`; cast kernels inserted get ids from
    `new_id` and share the Python-level call of the op they serve. Nodes out of scope pass unchanged except
    that their inputs see the dtypes autocast gave their producers."""
    dtype: dict[Key, str] = {}  # producer output -> its dtype under autocast, where it changed
    out: list[OpNode] = []

    def seen(t: TensorRef) -> TensorRef:
        if t.producer is not None and t.producer in dtype and t.dtype in FLOATS:
            return evolve(t, dtype=dtype[t.producer])
        return t

    def cast(n: OpNode, t: TensorRef, to: str) -> TensorRef:
        nid = new_id()
        res = TensorRef(shape=t.shape, dtype=to, strides=contiguous_strides(t.shape), producer=(nid, 0), param=t.param)
        out.append(OpNode(id=nid, op=CAST, module_path=n.module_path, module_type=n.module_type, stage=n.stage,
                          inputs=[t], outputs=[res], attrs={"autocast": f"{t.dtype}->{to}"}, pycall=n.pycall,
                          pass_kind=n.pass_kind))
        return res

    for n in nodes:
        ins = [seen(t) for t in n.inputs]
        if not in_scope(n) or n.attrs.get("on_cpu"):
            out.append(evolve(n, inputs=ins) if ins != n.inputs else n)
            continue
        base = op_base(n.op)
        outs = list(n.outputs)
        if base in FP32_CAST_OPS:
            ins = [cast(n, t, "float32") if t.dtype in FLOATS and t.dtype != "float32" else t for t in ins]
            outs = [evolve(o, dtype="float32") if o.dtype in FLOATS else o for o in outs]
        elif base in FP32_DTYPE_OPS:
            outs = [evolve(o, dtype="float32") if o.dtype in FLOATS else o for o in outs]
        elif base in LOWER_OPS:
            ins = [cast(n, t, lower) if t.dtype == "float32" else t for t in ins]
            outs = [evolve(o, dtype=lower) if o.dtype in FLOATS else o for o in outs]
        elif n.op != CAST and any(t.dtype == "float32" and t.shape for t in ins):
            outs = [evolve(o, dtype="float32") if o.dtype in FLOATS else o for o in outs]
        for j, (o, o0) in enumerate(zip(outs, n.outputs, strict=True)):
            if o.dtype != o0.dtype:
                dtype[(n.id, j)] = o.dtype
        out.append(evolve(n, inputs=ins, outputs=outs))
    return out
