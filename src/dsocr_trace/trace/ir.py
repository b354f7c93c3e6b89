"""The traced intermediate representation: plain records of what ran, in order.

The tracer fills these; everything downstream (graph, costs, predictions, reports) reads them and never
reaches back into torch. Shapes, strides and dtypes are plain tuples and strings so an IR can be pickled,
cached and compared across the dispatch and export paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from attrs import define, field, frozen

# Bytes per element for the dtypes that appear in these models.
DTYPE_BYTES: dict[str, int] = {
    "bfloat16": 2,
    "float16": 2,
    "float32": 4,
    "float64": 8,
    "int64": 8,
    "int32": 4,
    "int16": 2,
    "int8": 1,
    "uint8": 1,
    "bool": 1,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "complex64": 8,
}

# Semantic ops: one node standing for a kernel (attention) or a group of aten ops (the rest).
ATTENTION = "attention"
MOE_EXPERTS = "moe_experts"
RMS_NORM = "rms_norm"
PATCH_EMBED = "patch_embed"
SEMANTIC_OPS = (ATTENTION, MOE_EXPERTS, RMS_NORM, PATCH_EMBED)

# Stages, in the order a request runs them.
STAGES = ("vision.sam", "vision.clip", "projector", "decoder", "lm_head")
# Stage of a training-step op that spans several stages (gradient clipping's norm over every gradient).
WHOLE_MODEL = "whole_model"

# Parts of a training step an op belongs to (OpNode.pass_kind); inference traces are all "forward".
# "recompute" is a forward op run again inside the backward pass by activation checkpointing.
PASSES = ("forward", "backward", "recompute", "optimizer")
# Phases of an inference request, in the order it runs them.
PHASES = ("prefill", "decode")


@frozen
class TensorRef:
    """One tensor argument or result of an op."""

    shape: tuple[int, ...]
    dtype: str
    strides: tuple[int, ...]
    producer: tuple[int, int] | None = None  # (node id, output index) of the op that made it
    param: str | None = None  # parameter name when the tensor is (a view or cast of) a parameter
    storage_offset: int = 0

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def itemsize(self) -> int:
        return DTYPE_BYTES.get(self.dtype, 4)

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize

    @property
    def is_contiguous(self) -> bool:
        expected = 1
        for size, stride in zip(reversed(self.shape), reversed(self.strides), strict=True):
            if size != 1 and stride != expected:
                return False
            expected *= size
        return True

    @property
    def is_broadcast(self) -> bool:
        """True when some dimension is expanded (stride 0 over a size > 1): the data is smaller than the view."""
        return any(st == 0 and sz > 1 for sz, st in zip(self.shape, self.strides, strict=True))

    @property
    def distinct_numel(self) -> int:
        """Elements actually stored behind the view (expanded dimensions counted once)."""
        n = 1
        for sz, st in zip(self.shape, self.strides, strict=True):
            if st != 0:
                n *= sz
        return n


@define
class OpNode:
    """One recorded op, in execution order."""

    id: int
    op: str  # "aten.mm.default", or a semantic op from SEMANTIC_OPS
    module_path: str  # innermost module, "" for the top level
    module_type: str  # class name of that module
    stage: str
    inputs: list[TensorRef]
    outputs: list[TensorRef]
    attrs: dict[str, Any] = field(factory=dict)
    is_view: bool = False  # aliasing op (view, reshape without copy, expand, slice, ...): free
    group: int | None = None  # id of the semantic node this op belongs to
    members: list[int] = field(factory=list)  # for semantic group nodes: the ops inside
    sync: bool = False  # the host blocks here until the GPU has caught up (.item(), .cpu(), ...)
    # the call's arguments with tensors replaced by {"t": i} (i indexes `inputs`): enough to replay the op on a
    # GPU with random data of the same shapes (operator benchmarks); JSON-able
    call: Any = None
    # which Python-level torch call (as a TorchFunctionMode sees it) dispatched this op; -1 if none. Eager host
    # time is paid per Python call, not per aten op (F.linear issues t + addmm under one call)
    pycall: int = -1
    # forward | backward | recompute | optimizer (see PASSES); backward ops carry the module path of the forward
    # op whose autograd node ran them
    pass_kind: str = "forward"


@define
class Trace:
    """A whole captured forward: one phase (prefill or decode) of one workload."""

    phase: str  # "prefill" or "decode"
    nodes: list[OpNode]
    tracer: str  # "dispatch" or "export"
    module_types: dict[str, str]  # module path -> class name, for every module that ran
    module_calls: dict[str, int]  # module path -> forward calls (Python overhead per call)
    meta: dict[str, Any] = field(factory=dict)  # workload facts: tokens, kv length, batch, ...

    def by_id(self) -> dict[int, OpNode]:
        return {n.id: n for n in self.nodes}


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major strides of a tensor of `shape` (a zero-size dim counts as one)."""
    out, acc = [], 1
    for s in reversed(shape):
        out.append(acc)
        acc *= max(s, 1)
    return tuple(reversed(out))


def op_base(op: str) -> str:
    """'aten.add.Tensor' -> 'aten.add' (an op name without its overload)."""
    return op.rsplit(".", 1)[0] if op.count(".") >= 2 else op


def parent_path(module_path: str) -> str:
    """The enclosing module's path ("" is the root)."""
    return module_path.rsplit(".", 1)[0] if "." in module_path else ""


def self_and_ancestors(module_path: str) -> Iterator[str]:
    """The module path, its parent, ... up to and including the root ""."""
    path = module_path
    while True:
        yield path
        if path == "":
            return
        path = parent_path(path)


def phase_stage(stage: str, phase: str) -> str:
    """Report stage of a node: prefill splits decoder and lm_head off the decode step; a training step keeps
    the trace's stages."""
    if phase == "decode":
        return "decode.step"
    if phase == "prefill":
        return {"decoder": "decoder.prefill", "lm_head": "lm_head.prefill"}.get(stage, stage)
    return stage


# The stage modules of the DeepSeek-OCR build: what `torch.compile` compiles one by one (the compiled execution);
# the glue between them (vision-to-text concat and scatter, the logits cast) runs outside any of them.
STAGE_MODULES = {
    "model.vision_tower.sam_encoder": "vision.sam",
    "model.vision_tower.vision_encoder": "vision.clip",
    "model.multi_modal_projector": "projector",
    "model.language_model": "decoder",
    "lm_head": "lm_head",
}


def in_stage_module(module_path: str) -> bool:
    """Whether an op runs inside one of the stage modules (not in the glue between them)."""
    return any(module_path == m or module_path.startswith(m + ".") for m in STAGE_MODULES)


def stage_of(module_path: str, phase: str) -> str:
    """Map a module path of the DeepSeek-OCR build to its stage.

    Glue at the vision-tower and top-model level (CLIP/SAM concat, newline and separator insertion, scatter
    into the text embeddings) belongs to the projector stage when the whole prompt runs (prefill, a training
    step): it is the vision-to-text bridge. A training step's loss (module "loss") belongs to lm_head.
    """
    p = module_path
    if p.startswith("model.vision_tower.sam_encoder"):
        return "vision.sam"
    if p.startswith("model.vision_tower.vision_encoder"):
        return "vision.clip"
    if p.startswith("lm_head") or p == "loss":
        return "lm_head"
    if p.startswith("model.language_model"):
        return "decoder"
    if p.startswith("model.multi_modal_projector") or p.startswith("model.vision_tower") or p == "model":
        return "decoder" if phase == "decode" else "projector"
    if p == "":
        return "lm_head"  # the top-level fp32 cast of the logits
    return "decoder"
