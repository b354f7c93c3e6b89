"""Memory a request needs: resident weights, KV cache, activation peak by liveness, the fp32 logits buffer."""

from __future__ import annotations

from typing import Any

from dsocr_trace.cache import IdentityMemo
from dsocr_trace.trace.ir import Trace

WEIGHT_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1, "fp32": 4}
RUNTIME_RESERVE_BYTES = 1 << 30  # CUDA context, cuBLAS workspaces, allocator slack: a planning margin


def kv_bytes_per_token(layers: int, kv_heads: int, head_dim: int, dtype_bytes: int = 2) -> int:
    """K and V, every layer: 2 * L * H_kv * D * bytes (DeepSeek-OCR bf16: 2*12*10*128*2 = 61,440 B)."""
    return 2 * layers * kv_heads * head_dim * dtype_bytes


def weight_bytes(components: dict[str, int], dtype: str) -> dict[str, int]:
    """Bytes per component. fp8 applies to the decoder's and lm_head's matrices; vision stays bf16 (as served)."""
    per = WEIGHT_BYTES[dtype]
    out = {}
    for comp, n in components.items():
        b = per if comp in ("decoder", "lm_head", "embedding") else (4 if dtype == "fp32" else 2)
        out[comp] = n * b
    return out


_PEAKS = IdentityMemo(512)


def activation_peak(trace: Trace) -> tuple[int, int]:
    """_activation_peak, remembered per trace object (a sweep asks once per point, the trace is the same)."""
    return _PEAKS.get(trace, lambda: _activation_peak(trace))  # type: ignore[no-any-return]


def _activation_peak(trace: Trace) -> tuple[int, int]:
    """Peak bytes of live non-parameter tensors over the op sequence, and the op where it happens.

    A tensor is allocated when its (non-view) producer runs and freed after its last consumer; views alias
    their base, so their consumers keep the base alive. Inputs of the phase (pixels, ids, cache) are counted
    from their first use. Outputs never consumed are freed right after they are made, except the phase's last
    output (the logits), which stays live to the end.
    """
    nodes = [n for n in trace.nodes if not n.members]
    base: dict[tuple[int, int], tuple[int, int]] = {}  # view output -> storage owner
    size: dict[tuple[int, int], int] = {}
    last_use: dict[tuple[int, int], int] = {}
    born: dict[tuple[int, int], int] = {}
    for pos, n in enumerate(nodes):
        for t in n.inputs:
            if t.param is not None or t.producer is None:
                continue
            owner = base.get(t.producer, t.producer)
            last_use[owner] = pos
        for j, t in enumerate(n.outputs):
            key = (n.id, j)
            if n.is_view and n.inputs and n.inputs[0].producer is not None:
                base[key] = base.get(n.inputs[0].producer, n.inputs[0].producer)
                continue
            if n.is_view or n.op.startswith("aten.split") or n.op.startswith("aten.unbind"):
                continue  # a view of a parameter or an input
            size[key] = t.nbytes
            born[key] = pos
    end = len(nodes) - 1
    if nodes and nodes[-1].outputs:
        last_use[base.get((nodes[-1].id, 0), (nodes[-1].id, 0))] = end
    delta = [0] * (len(nodes) + 1)
    for key, b in size.items():
        start = born[key]
        stop = max(last_use.get(key, start), start)
        delta[start] += b
        delta[stop + 1] -= b
    live = peak = 0
    at = 0
    for pos in range(len(nodes)):
        live += delta[pos]
        if live > peak:
            peak, at = live, nodes[pos].id
    return peak, at


def memory_needs(trace_prefill: Trace, params: dict[str, Any], batch: int, context_tokens: int, dtype: str,
                 kv_per_token: int, logits_bytes: int) -> dict[str, Any]:
    """What a request holds on any GPU: weights, the KV cache at its full context, the activation peak (the
    prefill's, logits included) and the runtime reserve."""
    weights = weight_bytes(params["components"], dtype)
    kv = kv_per_token * context_tokens * batch
    act, at = activation_peak(trace_prefill)
    peak_node = next((n for n in trace_prefill.nodes if n.id == at), None)
    # the logits exist from lm_head on: the peak holds them only when it comes that late
    first_head = next((n.id for n in trace_prefill.nodes if n.module_path.split(".", 1)[0] == "lm_head"), None)
    total = sum(weights.values()) + kv + act + RUNTIME_RESERVE_BYTES
    return {
        "weight_dtype": dtype,
        "weights_bytes": sum(weights.values()),
        "weights_by_component": dict(sorted(weights.items())),
        "kv_bytes_per_token": kv_per_token,
        "kv_cache_bytes": kv,
        "kv_context_tokens": context_tokens,
        "activation_peak_bytes": act,
        "activation_peak_at_node": at,
        # the op whose outputs bring the live tensors to their peak, and the module that runs it
        "activation_peak_op": peak_node.op if peak_node is not None else "",
        "activation_peak_module": (f"{peak_node.module_path or '(top level)'} ({peak_node.module_type or 'Root'})"
                                   if peak_node is not None else ""),
        "logits_bytes": logits_bytes,
        "activation_peak_holds_logits": first_head is not None and at >= first_head,
        "reserve_bytes": RUNTIME_RESERVE_BYTES,
        "total_bytes": total,
    }


def memory_plan(trace_prefill: Trace, params: dict[str, Any], batch: int, context_tokens: int, dtype: str,
                kv_per_token: int, device_bytes: float, logits_bytes: int) -> dict[str, Any]:
    need = memory_needs(trace_prefill, params, batch, context_tokens, dtype, kv_per_token, logits_bytes)
    total = need["total_bytes"]
    return {
        **need,
        "device_bytes": device_bytes,
        "fits": total <= device_bytes,
        "headroom_bytes": device_bytes - total,
    }


def phase_inputs_bytes(trace: Trace) -> int:
    """Bytes of the phase's own inputs (pixels, ids, the KV cache a decode step reads): tensors no op made and
    no parameter is."""
    seen: set[tuple[Any, ...]] = set()
    total = 0
    for n in trace.nodes:
        if n.members:
            continue
        for t in n.inputs:
            if t.producer is not None or t.param is not None:
                continue
            key = (t.shape, t.strides, t.dtype, t.storage_offset, n.id if t.numel <= 1 else 0)
            if key in seen:
                continue
            seen.add(key)
            total += t.distinct_numel * t.itemsize
    return total


def phase_peak(trace: Trace, params: dict[str, Any], dtype: str = "bf16", held_bytes: int = 0) -> dict[str, int]:
    """Peak device memory of one phase as `torch.cuda.max_memory_allocated` sees it: the weights as built, the
    phase's inputs, and the activation peak by liveness; a decode step also keeps its new cache (each layer's
    concatenated K/V stays referenced by the cache). `held_bytes`: what a measuring harness holds beside it."""
    weights = sum(weight_bytes(params.get("components_built") or params["components"], dtype).values())
    inputs = phase_inputs_bytes(trace)
    act, _ = activation_peak(trace)
    new_cache = 0
    if trace.phase == "decode":
        new_cache = sum(t.nbytes for n in trace.nodes if n.op.startswith("aten.cat") and n.module_type.endswith(
            "Attention") for t in n.outputs)
    total = weights + inputs + act + new_cache + held_bytes
    return {"weights_bytes": weights, "inputs_bytes": inputs, "activation_peak_bytes": act,
            "new_cache_bytes": new_cache, "held_bytes": held_bytes, "total_bytes": total}


def kv_per_token_of(text_config: Any, dtype_bytes: int = 2) -> int:
    """KV bytes per token from a transformers text config (head_dim, else hidden_size / heads)."""
    heads = text_config.num_attention_heads
    kv_heads = getattr(text_config, "num_key_value_heads", None) or heads
    head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // heads
    return kv_bytes_per_token(text_config.num_hidden_layers, kv_heads, head_dim, dtype_bytes)


def logits_bytes_of(trace_prefill: Trace) -> int:
    """The prefill's fp32 logits buffer: the last 3-D float32 output of the phase (0 when there is none)."""
    return next((t.nbytes for n in reversed(trace_prefill.nodes) for t in n.outputs
                 if t.dtype == "float32" and len(t.shape) == 3), 0)
