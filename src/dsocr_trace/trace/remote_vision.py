"""The remote code's vision encoders (`deepencoder.py` of the hub's DeepSeek-OCR, run under `infer()`'s
`torch.autocast("cuda", dtype=torch.bfloat16)`) as a rewrite of the traced transformers-native vision ops.

Both implementations compute the same SAM ViT-B and CLIP-L; what differs, read from the remote file:

SAM (`ImageEncoderViT`)
* relative positions (`get_rel_pos`): the coordinate grid is built on the GPU (`torch.arange(..., device=
  rel_pos.device)`, scaled, subtracted, offset, cast to long: a kernel each) where transformers builds it on the
  host and copies it; the table is interpolated only when its length differs from `2 * size - 1`, in float32
  (cast, interpolate, cast back);
* the rel-pos bias `(rel_h + rel_w).view(...)`: rel_h and rel_w, reshaped out of their einsums, are made
  contiguous (two small copies) and added in one broadcast; the native code's copy of the whole
  (heads x tokens x tokens) bias after its add does not exist;
* the neck's `LayerNorm2d` is written out (mean, subtract, pow, mean, add eps, sqrt, subtract, divide, scale,
  shift: ten kernels on NCHW) instead of a permuted `layer_norm`;
* `net_3(x2.clone())`: one more copy.
CLIP (`VitModel`)
* q, k and v are one `qkv_proj` GEMM (3 x 1024 outputs);
* `quick_gelu` is a TorchScript function: after its profiling runs the fuser runs `x * sigmoid(1.702 x)` as one
  kernel (the native model launches three), whose result is float32: fc2 after it runs a cast and its GEMM (two
  kernels per layer in the H200 runs, where the native fc2 of the same shape runs one). This one fact is read
  from the measured kernel counts, not from the code.
Then autocast (trace.autocast) over the vision stages: LayerNorms in float32 with their input, weight and bias
cast, the GEMMs and convolutions after them casting back, pads and copies in between in float32. CLIP's
`pre_layrnorm` is a plain LayerNorm (the config sets no `fp32norm`), so its float32 result carries the whole
CLIP residual stream in float32 (each later LayerNorm casts only its weight and bias).

Checked against the remote `deepencoder.py` itself (the public copy named in benchmarks/results/remote, traced
on meta with this pass, not committed): per module the same ops, kernel for kernel, but for the TorchScript
fusion, which only a GPU run shows.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from attrs import evolve

from dsocr_trace.trace.autocast import CAST, autocast_nodes
from dsocr_trace.trace.ir import OpNode, TensorRef, Trace, contiguous_strides, op_base

SAM = "model.vision_tower.sam_encoder"
CLIP = "model.vision_tower.vision_encoder"
VISION_STAGES = ("vision.sam", "vision.clip", "projector")
Key = tuple[int, int]


class _Rewrite:
    """Builds the rewritten node list: fresh ids and Python-call numbers above the trace's, and producer
    aliases so that consumers of a replaced op read its replacement."""

    def __init__(self, trace: Trace) -> None:
        self.ids = itertools.count(max((n.id for n in trace.nodes), default=0) + 1)
        self.pycalls = itertools.count(max((n.pycall for n in trace.nodes), default=0) + 1)
        self.alias: dict[Key, Key] = {}
        self.made: dict[Key, TensorRef] = {}  # results of the ops this rewrite adds
        self.out: list[OpNode] = []
        self.module_types = dict(trace.module_types)
        self.module_calls = dict(trace.module_calls)

    def new_id(self) -> int:
        return next(self.ids)

    def reads(self, t: TensorRef) -> TensorRef:
        p = t.producer
        while p is not None and p in self.alias:
            p = self.alias[p]
        if p == t.producer:
            return t
        made = self.made.get(p) if p is not None else None  # a replacement's result: its dtype is read
        return evolve(t, producer=p, dtype=made.dtype if made is not None else t.dtype)

    def keep(self, n: OpNode, attrs: dict[str, object] | None = None) -> None:
        ins = [self.reads(t) for t in n.inputs]
        if ins == n.inputs and attrs is None:
            self.out.append(n)
        else:
            self.out.append(evolve(n, inputs=ins, attrs=dict(n.attrs) if attrs is None else attrs))

    def add(self, like: OpNode, op: str, ins: list[TensorRef], shape: tuple[int, ...], dtype: str = "bfloat16",
            path: str | None = None, attrs: dict[str, object] | None = None, pycall: int | None = None
            ) -> TensorRef:
        nid = self.new_id()
        res = TensorRef(shape=shape, dtype=dtype, strides=contiguous_strides(shape), producer=(nid, 0))
        self.made[(nid, 0)] = res
        self.out.append(OpNode(id=nid, op=op, module_path=path or like.module_path, module_type=like.module_type,
                               stage=like.stage, inputs=[self.reads(t) for t in ins], outputs=[res],
                               attrs=dict(attrs or {}), pycall=next(self.pycalls) if pycall is None else pycall,
                               pass_kind=like.pass_kind))
        return res

    def replace(self, n: OpNode, by: TensorRef) -> None:
        """Consumers of `n`'s first output read `by` instead."""
        assert by.producer is not None
        self.alias[(n.id, 0)] = by.producer


def _layer_norm_2d(rw: _Rewrite, n: OpNode) -> None:
    """`LayerNorm2d.forward` on the NCHW tensor the permuted native `layer_norm` reads."""
    x, w, b = n.inputs[0], n.inputs[1], n.inputs[2]
    bsz, h, wd, c = x.shape
    full, red = (bsz, c, h, wd), (bsz, 1, h, wd)
    xc = TensorRef(shape=full, dtype=x.dtype, strides=contiguous_strides(full), producer=x.producer)
    u = rw.add(n, "aten.mean.dim", [xc], red, attrs={"scalars": [[1], True]})
    d = rw.add(n, "aten.sub.Tensor", [xc, u], full)
    p = rw.add(n, "aten.pow.Tensor_Scalar", [d], full, attrs={"scalars": [2]})
    s = rw.add(n, "aten.mean.dim", [p], red, attrs={"scalars": [[1], True]})
    se = rw.add(n, "aten.add.Tensor", [s], red, attrs={"scalars": [1e-6]})
    r = rw.add(n, "aten.sqrt.default", [se], red)
    d2 = rw.add(n, "aten.sub.Tensor", [xc, u], full)
    y = rw.add(n, "aten.div.Tensor", [d2, r], full)
    wv = TensorRef(shape=(c, 1, 1), dtype=w.dtype, strides=(1, 1, 1), param=w.param)
    bv = TensorRef(shape=(c, 1, 1), dtype=b.dtype, strides=(1, 1, 1), param=b.param)
    z = rw.add(n, "aten.mul.Tensor", [wv, y], full)
    o = rw.add(n, "aten.add.Tensor", [z, bv], full)
    rw.module_types[n.module_path] = "LayerNorm2d"
    rw.replace(n, o)


def _clip_layer(path: str) -> str | None:
    """`...encoder.layers.N` of a CLIP op's module path, None outside a CLIP layer."""
    if not path.startswith(f"{CLIP}.encoder.layers."):
        return None
    parts = path.split(".")
    i = parts.index("layers")
    return ".".join(parts[: i + 2])


def _structural(trace: Trace, rw: _Rewrite) -> None:
    nodes = trace.nodes
    by_id = {n.id: n for n in nodes}
    fused_qkv: dict[str, TensorRef] = {}  # CLIP layer -> its qkv_proj output
    gelu_out: dict[str, TensorRef] = {}  # CLIP activation module -> its fused kernel's output
    for n in nodes:
        path, base = n.module_path, op_base(n.op)
        if n.stage not in VISION_STAGES:
            rw.keep(n)
            continue
        if path.startswith(SAM) and path.endswith(".attn"):
            if n.attrs.get("on_cpu"):  # the coordinate grid, on the GPU in the remote code
                rw.keep(n, attrs={k: v for k, v in n.attrs.items() if k != "on_cpu"})
                continue
            if base == "aten.index" and "h2d_bytes" in n.attrs:
                rw.keep(n, attrs={k: v for k, v in n.attrs.items() if k != "h2d_bytes"})
                continue
            if base == "aten.upsample_linear1d":
                src, dst = n.inputs[0], n.outputs[0]
                if src.shape[-1] == dst.shape[-1]:  # table already 2 * size - 1 long: no interpolation
                    if src.producer is not None:
                        rw.alias[(n.id, 0)] = src.producer
                    else:
                        rw.keep(n)  # a parameter view read directly: keep the op as the read
                    continue
                x32 = rw.add(n, CAST, [src], src.shape, "float32")
                y32 = rw.add(n, n.op, [x32], dst.shape, "float32", attrs=dict(n.attrs), pycall=n.pycall)
                rw.replace(n, rw.add(n, CAST, [y32], dst.shape, "bfloat16"))
                continue
            if base == "aten.add" and len(n.outputs[0].shape) == 5:
                # rel_h / rel_w reshaped out of their einsums: each made contiguous (a copy), then one
                # broadcast add of contiguous operands
                ins = [rw.add(n, "aten.clone.default", [t], t.shape, t.dtype, pycall=n.pycall) for t in n.inputs]
                rw.replace(n, rw.add(n, n.op, ins, n.outputs[0].shape, n.outputs[0].dtype, attrs=dict(n.attrs),
                                     pycall=n.pycall))
                continue
            if base == "aten.clone" and n.inputs[0].producer is not None:
                prod = by_id.get(n.inputs[0].producer[0])
                if prod is not None and op_base(prod.op) == "aten.add" and len(prod.outputs[0].shape) == 5:
                    rw.alias[(n.id, 0)] = n.inputs[0].producer  # (rel_h + rel_w).view(): no copy
                    continue
        if path.startswith(f"{SAM}.neck.layer_norm") and base == "aten.native_layer_norm":
            _layer_norm_2d(rw, n)
            continue
        if path == f"{SAM}.proj.conv1" and base == "aten.convolution":
            rw.keep(n)
            o = n.outputs[0]
            rw.replace(n, rw.add(n, "aten.clone.default", [o], o.shape, o.dtype, path=SAM))
            continue
        layer = _clip_layer(path)
        if layer is not None and base == "aten.addmm" and path.endswith(("q_proj", "k_proj", "v_proj")):
            qkv = f"{layer}.self_attn.qkv_proj"
            if path.endswith("q_proj"):
                bias, x, wt = n.inputs
                k, dim = wt.shape
                fused_qkv[layer] = rw.add(
                    n, n.op, [TensorRef(shape=(3 * dim,), dtype=bias.dtype, strides=(1,), param=f"{qkv}.bias"), x,
                              TensorRef(shape=(k, 3 * dim), dtype=wt.dtype, strides=(1, k), param=f"{qkv}.weight")],
                    (x.shape[0], 3 * dim), n.outputs[0].dtype, path=qkv, pycall=n.pycall)
                rw.module_types[qkv] = "Linear"
                rw.module_calls[qkv] = trace.module_calls.get(path, 1)
            rw.replace(n, fused_qkv[layer])
            continue
        if layer is not None and path.endswith("mlp.activation_fn") and base in ("aten.mul", "aten.sigmoid"):
            if path not in gelu_out:  # the first op of x * sigmoid(1.702 x): one fused kernel
                x = n.inputs[0]
                gelu_out[path] = rw.add(n, "aten.sigmoid.default", [x], x.shape, "float32", pycall=n.pycall,
                                        attrs={"fused": "quick_gelu: x * sigmoid(1.702 x) (TorchScript fuser)"})
            rw.replace(n, gelu_out[path])  # each of the three ops reads as the fused kernel's result
            continue
        if layer is not None and n.is_view and path.endswith(("k_proj", "v_proj")):
            continue  # the views of the two GEMMs folded into qkv_proj
        rw.keep(n)
    for p in [p for p in rw.module_calls if p.endswith(("self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"))
              and p.startswith(CLIP)]:
        del rw.module_calls[p]


def renumbered(nodes: list[OpNode]) -> Iterator[OpNode]:
    """The nodes with ids 0..n-1 in order, producers, groups and members following."""
    new = {n.id: i for i, n in enumerate(nodes)}

    def ref(t: TensorRef) -> TensorRef:
        if t.producer is None:
            return t
        if t.producer[0] not in new:
            return evolve(t, producer=None)
        return evolve(t, producer=(new[t.producer[0]], t.producer[1]))

    for i, n in enumerate(nodes):
        yield evolve(n, id=i, inputs=[ref(t) for t in n.inputs], outputs=[ref(t) for t in n.outputs],
                     group=new.get(n.group) if n.group is not None else None,
                     members=[new[m] for m in n.members if m in new])


def remote_vision_trace(trace: Trace) -> Trace:
    """`trace` (a native prefill) with its vision stages as the remote deepencoder runs them under autocast."""
    if trace.phase != "prefill" or not any(n.module_path.startswith(SAM) for n in trace.nodes):
        return trace
    rw = _Rewrite(trace)
    _structural(trace, rw)
    cast = autocast_nodes(rw.out, lambda n: n.stage in VISION_STAGES, rw.new_id)
    return Trace(phase=trace.phase, nodes=list(renumbered(cast)), tracer=trace.tracer,
                 module_types=rw.module_types, module_calls=rw.module_calls, meta=dict(trace.meta))
