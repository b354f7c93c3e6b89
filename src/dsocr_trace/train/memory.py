"""Device memory of one training step, measured from its trace.

Persistent for the whole step (and between steps):
* weights: every parameter and buffer in its dtype (frozen ones too), plus checkpoint parameters the build
  leaves out (unused, never given a gradient);
* optimizer states: the tensors the optimizer keeps (AdamW's two moments and step counters; fp32 master
  weights under "mixed" precision), as created before the traced step.
Live during the step, from a liveness pass over the trace (every op in order: a tensor is allocated when its
op runs and freed after its last reader; views and in-place ops share their base's memory):
* saved activations: tensors autograd saved for backward (recorded by saved_tensors_hooks during the forward,
  deduplicated by storage): alive from the forward until the backward op that reads them, at least until the
  backward pass ends (the graph holds them);
* gradients: each parameter's .grad, alive from the backward op that makes it to the end of the step
  (zero_grad(set_to_none=True) frees it after the optimizer);
* transient: every other tensor while it is live (the forward's working set, the loss, gradients flowing
  through the backward pass, checkpointed layers' recomputed activations, the optimizer's temporaries).
The peak is the largest sum of the live tensors at any op, plus the persistent part; the components at that op
sum to it. The step's inputs (pixels, ids, labels: a few MB) are not counted. `total_bytes` adds the same
runtime reserve as the inference memory plan (CUDA context, cuBLAS workspaces, allocator slack).
"""

from __future__ import annotations

from typing import Any

from dsocr_trace.memory import RUNTIME_RESERVE_BYTES
from dsocr_trace.trace.ir import Trace, op_base

CATEGORIES = ("saved_activations", "gradients", "transient")


def is_inplace(op: str) -> bool:
    """aten.add_.Tensor, aten.copy_.default, aten._foreach_mul_.Scalar: the op writes into its first input."""
    base = op_base(op)
    name = base.rsplit(".", 1)[-1]
    return name.endswith("_") and not name.startswith("__")


def _key(pair: Any) -> tuple[int, int] | None:
    return (int(pair[0]), int(pair[1])) if pair is not None else None


def step_liveness(trace: Trace) -> dict[str, Any]:
    """Live non-persistent bytes per category at the peak op and at the end of the forward pass."""
    nodes = [n for n in trace.nodes if not n.members]
    pos_of = {n.id: i for i, n in enumerate(nodes)}
    marks = trace.meta.get("marks", {})

    def position(mark: str) -> int:  # first position at or after a node-id mark
        node_id = int(marks.get(mark, len(trace.nodes)))
        return next((pos_of[i] for i in range(node_id, len(trace.nodes)) if i in pos_of), len(nodes))

    base: dict[tuple[int, int], tuple[int, int]] = {}
    size: dict[tuple[int, int], int] = {}
    born: dict[tuple[int, int], int] = {}
    last: dict[tuple[int, int], int] = {}
    for pos, n in enumerate(nodes):
        for t in n.inputs:
            if t.param is not None or t.producer is None:
                continue
            root = base.get(t.producer, t.producer)
            last[root] = pos
        if n.attrs.get("on_cpu"):
            continue  # host tensors (foreach step counters of a CPU-hosted optimizer state)
        aliases = n.is_view or is_inplace(n.op) or n.op.startswith(("aten.split", "aten.unbind"))
        for j, t in enumerate(n.outputs):
            key = (n.id, j)
            if aliases:
                src = n.inputs[0].producer if n.inputs else None
                if src is not None:
                    base[key] = base.get(src, src)
                continue  # a view or in-place result of a parameter, state or step input: no new memory
            size[key] = t.nbytes
            born[key] = pos

    def owner(pair: Any) -> tuple[int, int] | None:
        k = _key(pair)
        return base.get(k, k) if k is not None else None

    backward_start, backward_end = position("backward_start"), position("backward_end")
    step_end = len(nodes) - 1
    saved = {k for s in trace.meta.get("saved", []) if (k := owner(s["tensor"])) in size}
    grads = {k for g in trace.meta.get("grads", []) if (k := owner(g["tensor"])) in size}
    category: dict[tuple[int, int], int] = {}
    for k in size:
        if k in grads:
            category[k] = 1
            last[k] = step_end
        elif k in saved:
            category[k] = 0
            if last.get(k, born[k]) < backward_start:  # never read by the backward: freed with the graph
                last[k] = backward_end - 1
        else:
            category[k] = 2
    delta = [[0] * (len(nodes) + 1) for _ in CATEGORIES]
    for k, b in size.items():
        c = category[k]
        delta[c][born[k]] += b
        delta[c][max(last.get(k, born[k]), born[k]) + 1] -= b
    live = [0, 0, 0]
    peak, peak_pos = -1, 0
    at_peak = [0, 0, 0]
    forward_end = position("forward_end")
    at_forward_end = [0, 0, 0]
    for pos in range(len(nodes)):
        for c in range(3):
            live[c] += delta[c][pos]
        if sum(live) > peak:
            peak, peak_pos, at_peak = sum(live), pos, list(live)
        if pos == forward_end - 1:
            at_forward_end = list(live)
    peak_node = nodes[peak_pos] if nodes else None
    return {
        "peak_live_bytes": max(peak, 0),
        "peak_node": peak_node.id if peak_node else -1,
        "peak_pass": peak_node.pass_kind if peak_node else "",
        "peak_module": peak_node.module_path if peak_node else "",
        "at_peak": dict(zip(CATEGORIES, at_peak, strict=True)),
        "at_forward_end": dict(zip(CATEGORIES, at_forward_end, strict=True)),
    }


def train_memory(trace: Trace, omitted_params_bytes: int = 0, device_bytes: float | None = None) -> dict[str, Any]:
    """Weights, gradients, optimizer states, saved activations and the step's peak (see the module doc)."""
    meta = trace.meta
    params = meta["params"]
    weights = int(params["bytes"]) + int(params["buffers_bytes"]) + int(omitted_params_bytes)
    states = dict(meta.get("optimizer_state_bytes", {}))
    state_total = sum(states.values())
    live = step_liveness(trace)
    at = live["at_peak"]
    allocated = weights + state_total + sum(at.values())
    out: dict[str, Any] = {
        "weights_bytes": weights,
        "gradients_bytes": int(meta.get("grad_storage_bytes", sum(int(g["bytes"]) for g in meta.get("grads", [])))),
        "optimizer_state_bytes": state_total,
        "optimizer_state_by_kind": states,
        "saved_activations_bytes": sum(int(s["bytes"]) for s in meta.get("saved", [])),
        "saved_tensors": len(meta.get("saved", [])),
        "live_at_forward_end": live["at_forward_end"],
        "peak": {
            "weights_bytes": weights,
            "optimizer_state_bytes": state_total,
            "saved_activations_bytes": at["saved_activations"],
            "gradients_bytes": at["gradients"],
            "transient_bytes": at["transient"],
            "allocated_bytes": allocated,
            "reserve_bytes": RUNTIME_RESERVE_BYTES,
            "total_bytes": allocated + RUNTIME_RESERVE_BYTES,
            "at_node": live["peak_node"],
            "pass": live["peak_pass"],
            "module_path": live["peak_module"],
        },
    }
    if device_bytes is not None:
        total = out["peak"]["total_bytes"]
        out.update(device_bytes=device_bytes, fits=total <= device_bytes, headroom_bytes=device_bytes - total)
    return out
