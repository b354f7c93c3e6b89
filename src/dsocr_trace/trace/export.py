"""Second tracer: torch.export of the prefill, converted into the same IR as the dispatch recorder.

torch.export (non-strict) runs the same Python forward under fake tensors and keeps an ATen graph with
`nn_module_stack` on every node. We convert its call_function nodes into OpNodes: module path from the stack,
parameters from the graph signature, `scaled_dot_product_attention` into the semantic attention node, and
the same semantic groups (RMSNorm, MoE experts, patch embedding) from module classes. Slower than the
dispatch recorder (seconds more), used as a cross-check: both paths must give the same totals.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import nn

from dsocr_trace.trace.ir import ATTENTION, MOE_EXPERTS, PATCH_EMBED, RMS_NORM, OpNode, TensorRef, Trace
from dsocr_trace.trace.recorder import StageFn
from dsocr_trace.workload import Workload

_GROUP_OF_CLASS = (("RMSNorm", RMS_NORM), ("Experts", MOE_EXPERTS), ("PatchEmbed", PATCH_EMBED))


class _Prefill(nn.Module):
    """The model with the KV cache kept inside: export cannot return a DynamicCache."""

    def __init__(self, model: nn.Module, extra: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.extra = extra

    def forward(self, input_ids: torch.Tensor, pixel_values: torch.Tensor,
                pixel_values_local: torch.Tensor | None = None) -> torch.Tensor:
        logits, _ = self.model(input_ids=input_ids, pixel_values=pixel_values,
                               pixel_values_local=pixel_values_local, use_cache=True, **self.extra)
        return logits  # type: ignore[no-any-return]


def _ref(val: Any, producer: tuple[int, int] | None, param: str | None) -> TensorRef | None:
    if not isinstance(val, torch.Tensor):
        return None
    return TensorRef(shape=tuple(int(s) for s in val.shape), dtype=str(val.dtype).removeprefix("torch."),
                     strides=tuple(int(s) for s in val.stride()), producer=producer, param=param,
                     storage_offset=int(val.storage_offset()))


def _module_of(fx_node: Any) -> tuple[str, str, list[tuple[str, str]]]:
    stack = fx_node.meta.get("nn_module_stack") or {}
    entries: list[tuple[str, str]] = []
    for path, cls in stack.values():
        name = cls if isinstance(cls, str) else getattr(cls, "__name__", str(cls))
        entries.append((_clean(path), name.rsplit(".", 1)[-1]))
    if not entries:
        return "", "", []
    path, cls = entries[-1]
    return path, cls, entries


def _clean(path: str) -> str:
    # every module sits under the export wrapper's attribute `model`: strip it so paths match the dispatch IR
    path = path.replace("L['self'].", "").replace("L__self___", "")
    return "" if path == "model" else path.removeprefix("model.")


def trace_prefill_export(model: nn.Module, wl: Workload, stage_fn: StageFn, image_token_id: int) -> Trace:
    from dsocr_trace.trace.capture import prefill_inputs

    os.environ["TRANSFORMERS_DISABLE_TORCH_CHECK"] = "1"  # export cannot evaluate the placeholder-count check
    inputs = prefill_inputs(wl, image_token_id)
    extra: dict[str, Any] = {k: inputs.pop(k) for k in ("num_local_patches", "patches_grid") if k in inputs}
    wrapper = _Prefill(model, extra)
    with torch.no_grad():
        ep = torch.export.export(wrapper, args=(), kwargs=inputs, strict=False)
    sig = ep.graph_signature
    params = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
    inner: Any = model
    tc = inner.model.config.text_config
    top_k, n_experts = int(tc.num_experts_per_tok), int(tc.n_routed_experts)

    modules = dict(model.named_modules())
    nodes: list[OpNode] = []
    produced: dict[str, tuple[int, int]] = {}
    module_types: dict[str, str] = {}
    groups: dict[tuple[str, str], list[int]] = {}  # (kind, module path) -> member ids, in order
    order: list[tuple[str, str]] = []
    for fx in ep.graph.nodes:
        if fx.op != "call_function":
            continue
        target = fx.target
        name = str(target) if isinstance(target, torch._ops.OpOverload) else getattr(target, "__name__", str(target))
        if name.startswith("<built-in function getitem>") or name == "getitem":
            # tuple element of a multi-output op: alias the producer's output j
            src, j = fx.args[0], fx.args[1]
            if src.name in produced:
                produced[fx.name] = (produced[src.name][0], int(j))
            continue
        path, cls, stack = _module_of(fx)
        for p, c in stack:
            module_types.setdefault(p, c)
        ins: list[TensorRef] = []
        for a in list(fx.args) + list(fx.kwargs.values()):
            for leaf in (a if isinstance(a, (list, tuple)) else [a]):
                if isinstance(leaf, torch.fx.Node):
                    r = _ref(leaf.meta.get("val"), produced.get(leaf.name), params.get(leaf.name))
                    if r is not None:
                        ins.append(r)
        vals = fx.meta.get("val")
        outs = [r for v in (vals if isinstance(vals, (list, tuple)) else [vals])
                if (r := _ref(v, None, None)) is not None]
        nid = len(nodes)
        attrs: dict[str, Any] = {}
        op = name
        if name.startswith("aten.scaled_dot_product_attention"):
            op = ATTENTION
            q, k, v = (fx.args[i].meta["val"] for i in range(3))
            mask = fx.args[3] if len(fx.args) > 3 else fx.kwargs.get("attn_mask")
            mval = mask.meta["val"] if isinstance(mask, torch.fx.Node) else None
            is_causal = bool(fx.kwargs.get("is_causal", fx.args[5] if len(fx.args) > 5 else False))
            # under export transformers passes the causal mask as a bool tensor instead of is_causal=True
            if mval is not None and mval.dtype == torch.bool and getattr(modules.get(path), "is_causal", False):
                is_causal, mval = True, None
            attrs = {"batch": int(math.prod(q.shape[:-3])) if q.dim() > 3 else 1, "heads": int(q.shape[-3]),
                     "q_len": int(q.shape[-2]), "kv_len": int(k.shape[-2]), "head_dim": int(q.shape[-1]),
                     "v_head_dim": int(v.shape[-1]), "causal": is_causal,
                     "mask": "none" if mval is None else ("bool" if mval.dtype == torch.bool else "float"),
                     "mask_broadcast": False,
                     "scale": float(fx.kwargs.get("scale") or 1.0 / math.sqrt(int(q.shape[-1])))}
        if name.startswith("aten.einsum"):
            attrs = {"equation": str(fx.args[0])}
        is_view = bool(getattr(target, "is_view", False))
        node = OpNode(id=nid, op=op, module_path=path, module_type=cls, stage=stage_fn(path, "prefill"),
                      inputs=ins, outputs=outs, attrs=attrs, is_view=is_view)
        nodes.append(node)
        for j, _ in enumerate(outs):
            produced.setdefault(fx.name, (nid, 0))
            if j == 0:
                produced[fx.name] = (nid, 0)
        for p, c in reversed(stack):
            kind = next((k for suffix, k in _GROUP_OF_CLASS if (c.endswith(suffix) if suffix != "PatchEmbed"
                                                                  else suffix in c)), None)
            if kind is not None and op != ATTENTION:
                key = (kind, p)
                if key not in groups:
                    groups[key] = []
                    order.append(key)
                groups[key].append(nid)
                break
    _emit_groups(nodes, groups, order, top_k, n_experts, stage_fn)
    return Trace(phase="prefill", nodes=nodes, tracer="export", module_types=module_types,
                 module_calls={p: 1 for p in module_types},
                 meta={"phase": "prefill", "batch": wl.batch, "tokens": wl.prefill_tokens,
                       "kv_len": wl.prefill_tokens})


def _emit_groups(nodes: list[OpNode], groups: dict[tuple[str, str], list[int]], order: list[tuple[str, str]],
                 top_k: int, n_experts: int, stage_fn: StageFn) -> None:
    for kind, path in order:
        members = groups[(kind, path)]
        first, last = nodes[members[0]], nodes[members[-1]]
        x = first.inputs[0] if first.inputs else None
        attrs: dict[str, Any] = {}
        if kind == RMS_NORM and x is not None:
            attrs = {"rows": x.numel // x.shape[-1], "dim": x.shape[-1]}
        elif kind == MOE_EXPERTS:
            gmm = [nodes[m] for m in members if nodes[m].op.startswith("aten._grouped_mm")]
            w0, w1 = gmm[0].inputs[1], gmm[-1].inputs[1]
            rows = gmm[0].inputs[0].shape[0]
            attrs = {"tokens": rows // top_k, "hidden": gmm[0].inputs[0].shape[-1], "top_k": top_k,
                     "n_experts": n_experts, "intermediate": w1.shape[-2] if w1.shape[-1] == w0.shape[-2] // 2
                     else w1.shape[-1], "gated": True}
            attrs["intermediate"] = gmm[0].outputs[0].shape[-1] // 2
        params = [t for m in members for t in nodes[m].inputs if t.param is not None]
        gid = len(nodes)
        nodes.append(OpNode(id=gid, op=kind, module_path=path, module_type=first.module_type,
                            stage=stage_fn(path, "prefill"), inputs=([x] if x else []) + params,
                            outputs=list(last.outputs), attrs=attrs, members=list(members)))
        for m in members:
            nodes[m].group = gid
