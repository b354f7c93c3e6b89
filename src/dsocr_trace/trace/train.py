"""Trace one training step on the meta device into the same IR as inference: forward, backward, optimizer.

The step is `models.training.train_step` (the one the GPU harness runs). On top of the inference recorder:
* every node carries `pass_kind`: forward, backward, recompute (a checkpointed layer's forward run again
  inside the backward pass) or optimizer;
* backward ops are attributed to the module of the forward op whose autograd node runs them: each forward
  node records the sequence number of the autograd node its op created (`torch.autograd._get_sequence_nr()`,
  the number FX's tracer keeps as `seq_nr`), and a backward op looks up the node executing it
  (`torch._C._current_autograd_node()`); gradient accumulation into a parameter (AccumulateGrad) belongs to
  the parameter's module; the gradient seed belongs to the loss;
* attention is routed to the fused kernel a GPU runs (flash without a mask, memory-efficient with a bias), so
  its backward is that kernel's backward, not the math decomposition meta would otherwise run;
* tensors autograd saves for backward are recorded during the forward (`saved_tensors_hooks`), deduplicated
  by storage, with the node that made them; parameters' storages are not activations;
* optimizer ops (gradient clipping, the per-stage optimizers) take the module path shared by the parameters
  they update; an op over several stages' tensors gets the stage `whole_model`.
Optimizer states are created before the step (a steady-state step, not the first one) and named
"<parameter>:<state>" like parameters, so their reads and writes are attributed and they count as persistent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import torch
from attrs import evolve
from torch import nn
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

from dsocr_trace.models.training import (
    StepOptimizer,
    TrainConfig,
    enable_checkpointing,
    labels_for,
    prepare_model,
    train_step,
)
from dsocr_trace.trace.capture import prefill_inputs
from dsocr_trace.trace.ir import MOE_EXPERTS, WHOLE_MODEL, OpNode, TensorRef, Trace
from dsocr_trace.trace.recorder import Recorder, StageFn, _SdpaCatcher, recording, to_trace
from dsocr_trace.workload import Workload

_aten = torch.ops.aten


def storage_key(t: torch.Tensor) -> int:
    """Identity of the memory behind a tensor (shared by its views), also on meta."""
    return int(t.untyped_storage()._cdata)


def _owner_path(name: str) -> str:
    """Module path of a parameter ("a.b.weight" -> "a.b") or of an optimizer tensor ("a.b.weight:exp_avg")."""
    pname = name.split(":", 1)[0]
    return pname.rsplit(".", 1)[0] if "." in pname else ""


def _common_path(paths: list[str]) -> str:
    if not paths:
        return ""
    parts = [p.split(".") if p else [] for p in paths]
    common: list[str] = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return ".".join(common)


class TrainRecorder(Recorder):
    """The inference recorder plus passes, backward attribution, fused attention and saved tensors."""

    def __init__(self, model: nn.Module, stage_fn: StageFn, persistent: dict[torch.Tensor, str]) -> None:
        super().__init__(model, "train", stage_fn)
        for t, name in persistent.items():
            self.param_name[t] = name
        self.persistent_storages = {storage_key(t) for t in [*model.parameters(), *model.buffers(), *persistent]}
        self.pass_kind = "forward"
        self.recomputing = 0
        self.seq_node: dict[int, int] = {}  # autograd node sequence number -> forward node id
        self.grad_of: WeakIdKeyDictionary = WeakIdKeyDictionary()  # gradient tensor -> parameter name
        self.saved: dict[int, dict[str, Any]] = {}  # storage -> what autograd saved there
        self.marks: dict[str, int] = {}  # "<part>_start" / "<part>_end" -> node index
        self._opt_path = ""
        self._opt_stage = WHOLE_MODEL
        self._sdpa_kernel = ""
        self._sdpa_lse: torch.Tensor | None = None
        self._backward_call: tuple[int, str, int] | None = None  # the autograd node whose ops are being recorded

    # -- parts of the step --------------------------------------------------------------------------------
    @contextmanager
    def mark(self, part: str) -> Iterator[None]:
        self.pass_kind = part
        self.marks[f"{part}_start"] = len(self.nodes)
        try:
            if part == "forward":
                with torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack):
                    yield
            else:
                yield
        finally:
            self.marks[f"{part}_end"] = len(self.nodes)
            self.pycall, self._backward_call = -1, None
            if part == "forward":
                for entry in self.saved.values():
                    entry["tensor"] = self.producer.get(entry.pop("ref"))

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        if t.device.type == "cpu":
            return t  # host index tensors (SAM's rel-pos coordinates): not device memory
        key = storage_key(t)
        if key not in self.persistent_storages and key not in self.saved:
            # the tensor itself is kept until the forward ends: a kernel's outputs are saved before the
            # recorder names their producer (the fused attention's output and log-sum-exp)
            self.saved[key] = {"bytes": int(t.untyped_storage().nbytes()), "ref": t,
                               "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."),
                               "order": len(self.saved)}
        return t

    @staticmethod
    def _unpack(t: torch.Tensor) -> torch.Tensor:
        return t

    # -- activation checkpointing -------------------------------------------------------------------------
    def checkpoint(self, function: Callable[..., Any], *args: Any) -> Any:
        """torch.utils.checkpoint (non-reentrant) of a layer's forward; its recompute inside the backward pass
        is recorded as pass "recompute" under the layer's path (transformers checkpoints `forward`, so the
        layer's own module hooks do not run again; its children's do). The RNG state is not saved: that is
        host-side bookkeeping with no kernel, and meta has no generator to save. Torch-function modes do not
        reach the backward pass, so the recompute re-enters the attention catcher itself."""
        from torch.utils.checkpoint import checkpoint

        layer = getattr(function, "args", (None,))[0]
        path = self.names.get(id(layer), "")

        def run(*a: Any) -> Any:
            if self.pass_kind != "backward":
                return function(*a)
            self.recomputing += 1
            self.stack.append(path)
            try:
                with _SdpaCatcher(self):
                    return function(*a)
            finally:
                self.recomputing -= 1
                if path in self.stack:
                    del self.stack[len(self.stack) - 1 - self.stack[::-1].index(path)]

        return checkpoint(run, *args, use_reentrant=False, preserve_rng_state=False)

    # -- attention ----------------------------------------------------------------------------------------
    def run_sdpa(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
        """The fused kernel a GPU picks for bf16 attention: flash without a mask, memory-efficient with one."""
        q, k, v = args[0], args[1], args[2]
        mask = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
        dropout = float(kwargs.get("dropout_p", args[4] if len(args) > 4 else 0.0))
        causal = bool(kwargs.get("is_causal", args[5] if len(args) > 5 else False))
        scale = kwargs.get("scale", args[6] if len(args) > 6 else None)
        if q.shape[-3] != k.shape[-3]:  # grouped-query attention: not in these models; leave it to SDPA
            self._sdpa_kernel = "math"
            return func(*args, **kwargs)  # type: ignore[no-any-return]
        if mask is None:
            self._sdpa_kernel = "flash"
            res = _aten._scaled_dot_product_flash_attention(q, k, v, dropout, causal, False, scale=scale)
        else:
            if mask.dtype == torch.bool:  # SDPA turns a boolean mask into an additive one before the kernel
                mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(~mask, float("-inf"))
            self._sdpa_kernel = "efficient"
            grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, mask))
            res = _aten._scaled_dot_product_efficient_attention(q, k, v, mask, grad, dropout, causal, scale=scale)
        self._sdpa_lse = res[1] if isinstance(res[1], torch.Tensor) and res[1].numel() else None
        return res[0]  # type: ignore[no-any-return]

    def emit_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Any, out: torch.Tensor,
                       is_causal: bool, scale: float | None) -> None:
        """The attention node, plus the log-sum-exp the kernel writes for its backward (saved by autograd)."""
        super().emit_attention(q, k, v, mask, out, is_causal, scale)
        node = self.nodes[-1]
        node.attrs["kernel"] = self._sdpa_kernel
        if self._sdpa_lse is not None:
            node.outputs.append(self.ref(self._sdpa_lse))
            self.producer[self._sdpa_lse] = (node.id, len(node.outputs) - 1)
            self._sdpa_lse = None

    # -- attribution --------------------------------------------------------------------------------------
    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        if self.pass_kind == "optimizer" and not self.suppress:
            self._opt_path, self._opt_stage = self._optimizer_owner(args, kwargs or {})
        return super().__torch_dispatch__(func, types, args, kwargs)

    def _optimizer_owner(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, str]:
        paths = set()
        for a in tree_flatten((args, kwargs))[0]:
            if isinstance(a, torch.Tensor):
                name = self.param_name.get(a) or self.grad_of.get(a)
                if name is not None:
                    paths.add(_owner_path(name))
        stages = {self.stage_fn(p, "train") for p in paths}
        return _common_path(sorted(paths)), stages.pop() if len(stages) == 1 else WHOLE_MODEL

    def _backward_owner(self) -> tuple[str, int | None]:
        node = torch._C._current_autograd_node()
        if node is None:
            return "loss", None  # the gradient seed, made before the engine runs
        var = getattr(node, "variable", None)  # AccumulateGrad: the parameter its gradient goes into
        if isinstance(var, torch.Tensor):
            name = self.param_name.get(var)
            return (_owner_path(name) if name else ""), None
        fid = self.seq_node.get(int(node._sequence_nr()))
        if fid is None:
            return self.current, None
        return self.nodes[fid].module_path, fid

    def _new_node(self, op: str, inputs: list[TensorRef], outputs: list[torch.Tensor],
                  attrs: dict[str, Any] | None = None, is_view: bool = False, sync: bool = False,
                  path: str | None = None) -> OpNode:
        kind = self.pass_kind
        fwd = None
        if kind == "backward" and self.recomputing:
            kind = "recompute"
        elif kind == "backward" and path is None:
            path, fwd = self._backward_owner()
            # no Python runs the backward pass: its ops are issued per autograd node, counted as one call each
            current = torch._C._current_autograd_node()
            call = ((int(current._sequence_nr()), current.name(), id(getattr(current, "variable", None)))
                    if current is not None else None)
            if call != self._backward_call or call is None:
                self._backward_call = call
                self.pycall = self.pycalls
                self.pycalls += 1
        elif kind == "optimizer" and path is None:
            path = self._opt_path
        node = super()._new_node(op, inputs, outputs, attrs=attrs, is_view=is_view, sync=sync, path=path)
        node.pass_kind = kind
        if fwd is not None:
            node.attrs["fwd_node"] = fwd
        if kind == "optimizer":
            node.stage = self._opt_stage
        if kind in ("forward", "recompute") and torch.is_grad_enabled():
            # the autograd node this op just created (if it created one) has the latest sequence number; a
            # later op that created none sees the same number, and the first claim wins
            self.seq_node.setdefault(int(torch.autograd._get_sequence_nr()) - 1, node.id)
        return node


@contextmanager
def _foreach_on_meta() -> Iterator[None]:
    """Let torch's multi-tensor (foreach) paths take meta tensors, as they take CUDA ones."""
    import torch.utils._foreach_utils as fu

    supported = fu._get_foreach_kernels_supported_devices()
    with mock.patch.object(fu, "_get_foreach_kernels_supported_devices", lambda: [*supported, "meta"]):
        yield


def _finish(rec: TrainRecorder) -> None:
    """Backward grouped GEMMs learn their MoE layer's top-k (their rows are token-expert pairs too)."""
    nodes = rec.nodes
    for n in nodes:
        fid = n.attrs.get("fwd_node")
        if fid is None or not n.op.startswith("aten._grouped_mm"):
            continue
        g = nodes[fid].group
        if g is not None and nodes[g].op == MOE_EXPERTS:
            n.attrs["moe_top_k"] = nodes[g].attrs["top_k"]


def _tensor_key(producer: tuple[int, int] | None) -> list[int] | None:
    return [producer[0], producer[1]] if producer is not None else None


def trace_train_step(model: nn.Module, wl: Workload, cfg: TrainConfig, stage_fn: StageFn, image_token_id: int,
                     vocab_size: int) -> Trace:
    """Prepare a freshly built meta model for `cfg` and record one training step of workload `wl`.

    trace.meta holds what the memory model needs: the saved tensors (bytes per storage and the IR tensor that
    made it), the parameters' gradients (IR tensor, bytes), parameter and optimizer-state bytes, and the node
    index where each part of the step starts and ends."""
    prepare_model(model, evolve(cfg, checkpointing=False), vocab_size)
    optimizer = StepOptimizer(model, cfg, stage_fn)
    optimizer.init_state()
    state = optimizer.state_tensors()
    rec = TrainRecorder(model, stage_fn, state)
    checkpointed = enable_checkpointing(model, rec.checkpoint) if cfg.checkpointing else []
    inputs = prefill_inputs(wl, image_token_id)
    labels = labels_for(inputs["input_ids"], image_token_id)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    grads: list[dict[str, Any]] = []
    grad_storages: dict[int, int] = {}

    @contextmanager
    def mark(part: str) -> Iterator[None]:
        with rec.mark(part):
            yield
        if part == "backward":  # the gradients autograd left in .grad, before the optimizer consumes them
            for name, p in trainable:
                if p.grad is not None:
                    rec.grad_of[p.grad] = name
                    grad_storages[storage_key(p.grad)] = int(p.grad.untyped_storage().nbytes())
                    grads.append({"param": name, "bytes": p.grad.numel() * p.grad.element_size(),
                                  "tensor": _tensor_key(rec.producer.get(p.grad))})

    with _foreach_on_meta(), recording(model, "train", stage_fn, rec):
        train_step(model, inputs, labels, optimizer, mark=mark)
    _finish(rec)
    state_bytes: dict[str, int] = {}
    for t, name in state.items():
        kind = name.rsplit(":", 1)[1]
        state_bytes[kind] = state_bytes.get(kind, 0) + t.numel() * t.element_size()
    saved = sorted(rec.saved.values(), key=lambda s: s["order"])
    meta = {
        "phase": "train", "batch": wl.batch, "tokens": wl.prefill_tokens, "kv_len": wl.prefill_tokens,
        "config": cfg.to_dict(),
        "marks": dict(sorted(rec.marks.items())),
        "saved": [{"bytes": s["bytes"], "tensor": _tensor_key(s["tensor"]), "shape": s["shape"],
                   "dtype": s["dtype"]} for s in saved],
        "grads": grads,
        "grad_storage_bytes": sum(grad_storages.values()),  # a gradient that is a view keeps its base alive
        "params": {
            "total": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for _, p in trainable),
            "bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
            "trainable_bytes": sum(p.numel() * p.element_size() for _, p in trainable),
            "buffers_bytes": sum(b.numel() * b.element_size() for b in model.buffers()),
        },
        "optimizer_state_bytes": dict(sorted(state_bytes.items())),
        "checkpointed": checkpointed,
    }
    return to_trace(rec, "dispatch", meta)
