"""Capture a forward pass on the meta device into the IR.

Three hooks work together:
* global module forward hooks keep a stack of module paths, so each op knows its innermost module;
* a TorchFunctionMode catches `F.scaled_dot_product_attention` before it decomposes and emits one
  `attention` node (on a GPU it is one kernel; on meta it would decompose into a math path with fp32
  upcasts that no GPU runs);
* a TorchDispatchMode records every aten op with shapes, strides, dtypes, producer edges and the
  parameter behind each input (followed through views and casts).

Modules whose class is a semantic group (RMSNorm, MoE experts, patch embedding) get a semantic node that
lists the aten ops that ran inside them: eager execution costs the members, fused execution costs the group.
`.item()`-style reads of a device value become sync nodes (the host blocks there on a GPU).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.weak import WeakIdKeyDictionary

from dsocr_trace.trace.ir import ATTENTION, MOE_EXPERTS, PATCH_EMBED, RMS_NORM, OpNode, TensorRef, Trace

StageFn = Callable[[str, str], str]

# aten ops that read a device value into Python: the host waits for the GPU there.
_SYNC_OPS = {"aten._local_scalar_dense.default", "aten.item.default"}


def semantic_kind(module: nn.Module) -> str | None:
    """Which semantic group a module forms, by what it is (class name and structure), not by its path."""
    name = type(module).__name__
    if name.endswith("RMSNorm"):
        return RMS_NORM
    if name.endswith("Experts") and hasattr(module, "gate_up_proj"):
        return MOE_EXPERTS
    if "PatchEmbed" in name:
        return PATCH_EMBED
    return None


def _dtype_name(dt: torch.dtype) -> str:
    return str(dt).removeprefix("torch.")


def _leaf(x: Any, counter: list[int]) -> Any:
    if isinstance(x, torch.Tensor):
        counter[0] += 1
        return {"t": counter[0] - 1}
    if isinstance(x, (bool, int, float, str)) or x is None:
        return x
    if isinstance(x, torch.dtype):
        return {"dtype": _dtype_name(x)}
    if isinstance(x, torch.device):
        return {"device": True}
    if isinstance(x, (torch.memory_format, torch.layout)):
        return {"enum": str(x)}
    return {"repr": repr(x)}


def call_spec(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The op's arguments as plain data, tensors numbered in the order tree_flatten visits them."""
    counter = [0]
    a, k = tree_map(lambda x: _leaf(x, counter), (list(args), dict(kwargs)))
    return {"args": a, "kwargs": k}


class _Group:
    __slots__ = ("inputs", "kind", "members", "module", "path")

    def __init__(self, kind: str, path: str, module: nn.Module, inputs: list[Any]) -> None:
        self.kind = kind
        self.path = path
        self.module = module
        self.members: list[int] = []
        self.inputs = inputs


class Recorder(TorchDispatchMode):
    """Records aten ops; see the module docstring."""

    def __init__(self, model: nn.Module, phase: str, stage_fn: StageFn) -> None:
        super().__init__()
        self.phase = phase
        self.stage_fn = stage_fn
        self.nodes: list[OpNode] = []
        self.producer: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.param_name: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.names: dict[int, str] = {}
        self.types: dict[int, str] = {}
        for name, mod in model.named_modules():
            self.names[id(mod)] = name
            self.types[id(mod)] = type(mod).__name__
        for name, p in model.named_parameters():
            self.param_name[p] = name
        for name, b in model.named_buffers():
            self.param_name[b] = name
        self.stack: list[str] = []
        self.module_types: dict[str, str] = {}
        self.module_calls: dict[str, int] = {}
        self.groups: list[_Group] = []
        self.suppress = 0  # >0 inside a collapsed semantic op (attention): inner aten ops are not recorded
        self.pycall = -1  # id of the Python-level torch call being dispatched
        self.pycalls = 0

    # -- module stack -----------------------------------------------------------------------------------
    def push_module(self, mod: nn.Module, args: tuple[Any, ...]) -> None:
        path = self.names.get(id(mod))
        if path is None:
            return
        self.stack.append(path)
        self.module_types[path] = self.types[id(mod)]
        self.module_calls[path] = self.module_calls.get(path, 0) + 1
        kind = semantic_kind(mod)
        if kind is not None and not self.suppress:
            self.groups.append(_Group(kind, path, mod, list(args)))

    def pop_module(self, mod: nn.Module, output: Any) -> None:
        path = self.names.get(id(mod))
        if path is None:
            return
        if self.groups and self.groups[-1].path == path and self.groups[-1].module is mod:
            self._emit_group(self.groups.pop(), output)
        if self.stack and self.stack[-1] == path:
            self.stack.pop()

    @property
    def current(self) -> str:
        return self.stack[-1] if self.stack else ""

    # -- tensor references --------------------------------------------------------------------------------
    def ref(self, t: torch.Tensor) -> TensorRef:
        return TensorRef(
            shape=tuple(int(s) for s in t.shape),
            dtype=_dtype_name(t.dtype),
            strides=tuple(int(s) for s in t.stride()),
            producer=self.producer.get(t),
            param=self.param_name.get(t),
            storage_offset=int(t.storage_offset()),
        )

    def _new_node(
        self,
        op: str,
        inputs: list[TensorRef],
        outputs: list[torch.Tensor],
        attrs: dict[str, Any] | None = None,
        is_view: bool = False,
        sync: bool = False,
        path: str | None = None,
    ) -> OpNode:
        path = self.current if path is None else path
        nid = len(self.nodes)
        out_refs: list[TensorRef] = []
        for j, o in enumerate(outputs):
            out_refs.append(self.ref(o))
            self.producer[o] = (nid, j)
        node = OpNode(
            id=nid,
            op=op,
            module_path=path,
            module_type=self.module_types.get(path, ""),
            stage=self.stage_fn(path, self.phase),
            inputs=inputs,
            outputs=out_refs,
            attrs=attrs or {},
            is_view=is_view,
            sync=sync,
            pycall=self.pycall,
        )
        self.nodes.append(node)
        if self.groups:
            self.groups[-1].members.append(nid)
        return node

    # -- aten ops -------------------------------------------------------------------------------------------
    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = str(func)
        if name in _SYNC_OPS:
            # A device value read into Python: meta has no value. Every such read in these models is a
            # sanity check that holds on valid inputs, so answer "true"/1 and mark the host-blocking point.
            t = args[0]
            if not self.suppress:
                self._new_node("sync.item", [self.ref(t)], [], sync=True)
            if t.dtype == torch.bool:
                return True
            return 1.0 if t.dtype.is_floating_point else 1
        out = func(*args, **kwargs)
        if self.suppress:
            return out
        flat_in = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        flat_out = [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)]
        ins = [self.ref(a) for a in flat_in]
        attrs: dict[str, Any] = {}
        scalars = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, (int, float, bool))]
        if scalars and len(scalars) <= 8:
            attrs["scalars"] = [float(s) if isinstance(s, float) else int(s) for s in scalars]
        is_view = bool(getattr(func, "is_view", False))
        # in-place and out= ops return their first input; its new producer is this op
        # The model builds some index tensors on the CPU (SAM's rel-pos coordinates): ops on CPU tensors run on
        # the host; a CPU tensor consumed by a device op is copied from pageable memory, which blocks the host
        # until the GPU has reached that point of its stream.
        on_cpu = bool(flat_out) and all(o.device.type == "cpu" for o in flat_out)
        h2d = 0 if on_cpu else sum(a.numel() * a.element_size() for a in flat_in
                                   if a.device.type == "cpu" and a.dim() > 0)
        if on_cpu:
            attrs["on_cpu"] = True
        if h2d:
            attrs["h2d_bytes"] = int(h2d)
        node = self._new_node(name, ins, flat_out, attrs=attrs, is_view=is_view, sync=bool(h2d))
        if not is_view:
            node.call = call_spec(args, kwargs)
        # parameters stay recognisable through views and dtype casts (mm(x, t(W)) names W)
        if flat_in and flat_out:
            pname = self.param_name.get(flat_in[0])
            if pname is not None and (is_view or name.startswith(("aten._to_copy", "aten.clone"))):
                for o in flat_out:
                    self.param_name[o] = pname
        return out

    # -- semantic nodes ------------------------------------------------------------------------------------
    def run_sdpa(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
        """Compute one scaled_dot_product_attention call (its inner ops are not recorded). Inference runs it as
        called; a training recorder routes it to the fused kernel a GPU runs, so autograd records that
        kernel's backward."""
        return func(*args, **kwargs)  # type: ignore[no-any-return]

    def emit_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Any, out: torch.Tensor,
                       is_causal: bool, scale: float | None) -> None:
        ins = [self.ref(q), self.ref(k), self.ref(v)]
        has_mask = isinstance(mask, torch.Tensor)
        if has_mask:
            ins.append(self.ref(mask))
        b = math.prod(q.shape[:-3]) if q.dim() > 3 else 1
        heads, tq, d = int(q.shape[-3]), int(q.shape[-2]), int(q.shape[-1])
        tk, dv = int(k.shape[-2]), int(v.shape[-1])
        attrs = {
            "batch": int(b),
            "heads": heads,
            "q_len": tq,
            "kv_len": tk,
            "head_dim": d,
            "v_head_dim": dv,
            "causal": bool(is_causal),
            "mask": ("bool" if has_mask and mask.dtype == torch.bool else "float") if has_mask else "none",
            "mask_broadcast": bool(has_mask and any(st == 0 and sz > 1
                                                    for sz, st in zip(mask.shape, mask.stride(), strict=True))),
            "scale": float(scale) if scale is not None else 1.0 / math.sqrt(d),
        }
        self._new_node(ATTENTION, ins, [out], attrs=attrs)

    def _emit_group(self, g: _Group, output: Any) -> None:
        outs = [o for o in tree_flatten(output)[0] if isinstance(o, torch.Tensor)]
        ins_t = [a for a in tree_flatten(g.inputs)[0] if isinstance(a, torch.Tensor)]
        mod: Any = g.module
        attrs: dict[str, Any] = {}
        params = [self.ref(p) for p in mod.parameters(recurse=True)]
        if g.kind == MOE_EXPERTS:
            hidden, top_k_index = ins_t[0], ins_t[1]
            attrs.update(
                tokens=int(hidden.shape[0]),
                hidden=int(hidden.shape[-1]),
                top_k=int(top_k_index.shape[-1]),
                n_experts=int(mod.gate_up_proj.shape[0]),
                intermediate=int(mod.down_proj.shape[-1]),
                gated=bool(getattr(mod, "has_gate", True)),
            )
        elif g.kind == RMS_NORM:
            x = ins_t[0]
            attrs.update(rows=int(x.numel() // x.shape[-1]), dim=int(x.shape[-1]))
        elif g.kind == PATCH_EMBED:
            conv = next((m for m in mod.modules() if isinstance(m, nn.Conv2d)), None)
            if conv is not None:
                attrs.update(kernel=list(conv.kernel_size), stride=list(conv.stride),
                             in_channels=conv.in_channels, out_channels=conv.out_channels)
        ins = [self.ref(t) for t in ins_t] + params
        members = list(g.members)
        # the group node is recorded after its members; members point back to it
        node = self._new_node(g.kind, ins, [], attrs=attrs, path=g.path)
        node.outputs = [self.ref(o) for o in outs]
        node.members = members
        for m in members:
            if self.nodes[m].group is None:
                self.nodes[m].group = node.id
        if self.groups and self.groups[-1].members and self.groups[-1].members[-1] == node.id:
            # an enclosing group keeps only aten members; the inner group's node is not a kernel
            self.groups[-1].members.pop()


class _SdpaCatcher(TorchFunctionMode):
    """Turns each scaled_dot_product_attention call into one attention node."""

    def __init__(self, rec: Recorder) -> None:
        super().__init__()
        self.rec = rec

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        rec = self.rec
        outer = rec.pycall
        rec.pycall = rec.pycalls
        rec.pycalls += 1
        try:
            return self._call(func, args, kwargs)
        finally:
            rec.pycall = outer

    def _call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if func is F.scaled_dot_product_attention and not self.rec.suppress:
            q, k, v = args[0], args[1], args[2]
            mask = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
            is_causal = bool(kwargs.get("is_causal", args[5] if len(args) > 5 else False))
            scale = kwargs.get("scale")
            self.rec.suppress += 1
            try:
                out = self.rec.run_sdpa(func, args, kwargs)
            finally:
                self.rec.suppress -= 1
            self.rec.emit_attention(q, k, v, mask, out, is_causal, scale)
            return out
        return func(*args, **kwargs)


@contextmanager
def recording(model: nn.Module, phase: str, stage_fn: StageFn, rec: Recorder | None = None) -> Iterator[Recorder]:
    """Record every op of whatever forward runs inside the block (into `rec` when given, e.g. a training
    recorder)."""
    rec = Recorder(model, phase, stage_fn) if rec is None else rec
    h1 = nn.modules.module.register_module_forward_pre_hook(lambda m, a: rec.push_module(m, a))
    h2 = nn.modules.module.register_module_forward_hook(lambda m, a, o: rec.pop_module(m, o), always_call=True)
    try:
        with _SdpaCatcher(rec), rec:
            yield rec
    finally:
        h1.remove()
        h2.remove()


def to_trace(rec: Recorder, tracer: str, meta: dict[str, Any]) -> Trace:
    return Trace(
        phase=rec.phase,
        nodes=rec.nodes,
        tracer=tracer,
        module_types=dict(rec.module_types),
        module_calls=dict(rec.module_calls),
        meta=meta,
    )
