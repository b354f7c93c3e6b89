"""One fine-tuning step of DeepSeek-OCR, defined once: the meta-device tracer and the GPU harness both run it.

What a step is (HF Trainer in transformers 5.24 with `bf16=True` and its defaults, unless a TrainConfig field
says otherwise):
* forward of the whole model in train mode (the lm_head over every position, fp32 logits), then
  transformers' ForCausalLMLoss: labels are the input ids with the image positions set to -100, shifted one
  left, cross-entropy averaged over the text positions;
* backward through autograd; frozen parameters get no gradient and autograd skips what only they need;
* the optimizer: gradient clipping to norm 1.0 over every gradient (HF's max_grad_norm), then
  torch.optim.AdamW(fused=True) (HF's default `adamw_torch_fused` on torch >= 2.8) or torch.optim.SGD
  (`sgd`: no momentum, foreach); weight decay 0.0 on biases and norm weights, `weight_decay` elsewhere (HF's two
  groups); then zero_grad(set_to_none=True).

Precision (`TrainConfig.precision`):
* "bf16" (default): what that HF run does with this checkpoint. transformers 5 loads it in its own dtype
  (`dtype="auto"`: bfloat16), autocast to bf16 is then a no-op, and torch's AdamW keeps its two moments in
  the parameter's dtype: parameters, gradients and moments all bf16 (2 + 2 + 4 bytes per trainable
  parameter), no fp32 master copy.
* "mixed": bf16 parameters, gradients and activations with fp32 master weights and fp32 moments (the
  DeepSpeed/Megatron bf16 recipe; 2 + 2 + 4 + 8 bytes per trainable parameter): the step casts each bf16
  gradient to fp32, runs the optimizer on the fp32 masters and copies them back into the bf16 parameters.

The optimizer is one torch optimizer per stage (each with HF's two weight-decay groups): a param group
launches its own kernels either way, and per-stage optimizers let the tracer and the harness attribute
optimizer time to stages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch
from attrs import frozen
from torch import nn

from dsocr_trace.errors import UserError
from dsocr_trace.models.lora import add_lora
from dsocr_trace.models.params import component_of

OPTIMIZERS = ("adamw", "sgd")
TRAINABLE = ("full", "decoder", "lora")
PRECISIONS = ("bf16", "mixed")
FROZEN_WITH_DECODER = ("vision_sam", "vision_clip", "projector", "special_tokens")
IGNORE_INDEX = -100  # label of positions the loss skips (transformers' default)


@frozen
class TrainConfig:
    optimizer: str = "adamw"
    trainable: str = "full"
    lora_rank: int = 16
    checkpointing: bool = False
    precision: str = "bf16"
    lr: float = 1e-5
    weight_decay: float = 0.0  # HF's default; the no-decay group exists either way
    max_grad_norm: float = 1.0

    def check(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown --optimizer {self.optimizer!r}: use {' or '.join(OPTIMIZERS)}")
        if self.trainable not in TRAINABLE:
            raise UserError(f"unknown --trainable {self.trainable!r}: use full, decoder or lora")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown --precision {self.precision!r}: use bf16 or mixed")
        if not 1 <= self.lora_rank <= 4096:
            raise UserError(f"--lora-rank must be a whole number in 1..4096 (got {self.lora_rank})")

    def to_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "trainable": self.trainable,
                "lora_rank": self.lora_rank if self.trainable == "lora" else None,
                "checkpointing": self.checkpointing, "precision": self.precision, "lr": self.lr,
                "weight_decay": self.weight_decay, "max_grad_norm": self.max_grad_norm}


class CausalLMLoss(nn.Module):
    """transformers' ForCausalLMLoss as a module, so the step's loss ops have a module path ("loss")."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        from transformers.loss.loss_utils import ForCausalLMLoss

        return ForCausalLMLoss(logits, labels, self.vocab_size, ignore_index=IGNORE_INDEX)  # type: ignore[no-any-return]


def labels_for(input_ids: torch.Tensor, image_token_id: int) -> torch.Tensor:
    """Labels of a page: its ids, image placeholders ignored (on meta: an empty tensor of the same shape)."""
    if input_ids.device.type == "meta":
        return torch.empty_like(input_ids)
    return input_ids.masked_fill(input_ids == image_token_id, IGNORE_INDEX)


def default_checkpoint(function: Callable[..., Any], *args: Any) -> Any:
    from torch.utils.checkpoint import checkpoint

    return checkpoint(function, *args, use_reentrant=False)


def enable_checkpointing(model: nn.Module, checkpoint_fn: Callable[..., Any] = default_checkpoint,
                         enabled: bool = True) -> list[str]:
    """Checkpoint every transformers GradientCheckpointingLayer (SAM and CLIP blocks, decoder layers) that holds
    a trainable parameter, the way `activation_checkpointing_enable` does (the layer's `forward` is checkpointed,
    its module hooks stay outside); `enabled=False` turns it off again. Returns the layers' paths."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    paths = []
    for path, mod in model.named_modules():
        if isinstance(mod, GradientCheckpointingLayer) and any(p.requires_grad for p in mod.parameters()):
            mod.gradient_checkpointing = enabled
            setattr(mod, "_gradient_checkpointing_func", checkpoint_fn)  # noqa: B010 (a module attribute)
            paths.append(path)
    return paths


def prepare_model(model: nn.Module, cfg: TrainConfig, vocab_size: int,
                  checkpoint_fn: Callable[..., Any] = default_checkpoint) -> nn.Module:
    """Train mode, trainable parts (full / decoder / LoRA), the loss module, activation checkpointing."""
    cfg.check()
    model.train()
    for name, p in model.named_parameters():
        frozen_part = cfg.trainable == "decoder" and component_of(name) in FROZEN_WITH_DECODER
        p.requires_grad_(not frozen_part)
    if cfg.trainable == "lora":
        add_lora(model, cfg.lora_rank)
    model.add_module("loss", CausalLMLoss(vocab_size))
    if cfg.checkpointing:
        enable_checkpointing(model, checkpoint_fn)
    return model


Mark = Callable[[str], AbstractContextManager[Any]]


@contextmanager
def no_mark(part: str) -> Iterator[None]:
    yield


def _no_decay(name: str, module: nn.Module) -> bool:
    """HF Trainer's rule: biases and the weights of norm layers get no weight decay."""
    return name.endswith("bias") or isinstance(module, nn.LayerNorm) or "norm" in type(module).__name__.lower()


def _meta_state(p: torch.Tensor) -> dict[str, torch.Tensor]:
    # what torch.optim.AdamW(fused=True) creates on its first step (the step counter is an fp32 device scalar)
    return {"step": torch.zeros((), dtype=torch.float32, device=p.device),
            "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
            "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}


class StepOptimizer:
    """Gradient clipping + one torch optimizer per stage (+ fp32 masters under "mixed"); see the module doc."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, stage_fn: Callable[[str, str], str]) -> None:
        self.cfg = cfg
        modules = dict(model.named_modules())
        self.names: dict[int, str] = {}
        self.params: list[nn.Parameter] = []
        by_stage: dict[str, list[tuple[bool, torch.Tensor]]] = {}
        self.stage_params: dict[str, list[nn.Parameter]] = {}
        self.master: dict[int, torch.Tensor] = {}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            self.params.append(p)
            self.names[id(p)] = name
            owner = name.rsplit(".", 1)[0] if "." in name else ""
            target: torch.Tensor = p
            if cfg.precision == "mixed":
                target = p.detach().float()  # the fp32 master copy the optimizer updates
                self.master[id(p)] = target
            stage = stage_fn(owner, "train")
            by_stage.setdefault(stage, []).append((_no_decay(name, modules.get(owner, model)), target))
            self.stage_params.setdefault(stage, []).append(p)
        self.optimizers: list[tuple[str, torch.optim.Optimizer]] = []
        for stage, items in by_stage.items():
            groups = [{"params": [t for nd, t in items if nd == no_decay],
                       "weight_decay": 0.0 if no_decay else cfg.weight_decay} for no_decay in (False, True)]
            groups = [g for g in groups if g["params"]]
            opt: torch.optim.Optimizer
            if cfg.optimizer == "adamw":
                opt = torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
            else:
                opt = torch.optim.SGD(groups, lr=cfg.lr, foreach=True)
            self.optimizers.append((stage, opt))

    def init_state(self) -> None:
        """Create the optimizer states a first step would (so a traced step is a steady-state one)."""
        if self.cfg.optimizer != "adamw":
            return  # SGD without momentum keeps no state
        for _, opt in self.optimizers:
            for group in opt.param_groups:
                for p in group["params"]:
                    if not opt.state[p]:
                        opt.state[p] = _meta_state(p)

    def state_tensors(self) -> dict[torch.Tensor, str]:
        """Every persistent optimizer tensor, named "<parameter>:<state>" (masters: "<parameter>:master")."""
        by_target = {id(self.master.get(id(p), p)): self.names[id(p)] for p in self.params}
        out: dict[torch.Tensor, str] = {}
        for p in self.params:
            if id(p) in self.master:
                out[self.master[id(p)]] = f"{self.names[id(p)]}:master"
        for _, opt in self.optimizers:
            for target, state in opt.state.items():
                for key, t in state.items():
                    if isinstance(t, torch.Tensor):
                        out[t] = f"{by_target[id(target)]}:{key}"
        return out

    def step(self, mark: Mark | None = None) -> None:
        """Clip over every gradient, then per stage: (cast the gradients to fp32), the stage's optimizer, (copy
        the masters back); zero_grad. `mark(piece)` wraps "clip" and each stage's piece for a profiler."""
        mark = mark or no_mark
        with_grad: list[torch.Tensor] = [p for p in self.params if p.grad is not None]
        if self.cfg.max_grad_norm > 0 and with_grad:
            with mark("clip"):
                torch.nn.utils.clip_grad_norm_(with_grad, self.cfg.max_grad_norm, foreach=True)
        for stage, opt in self.optimizers:
            with mark(stage):
                params: list[torch.Tensor] = [p for p in self.stage_params[stage] if p.grad is not None]
                masters = [self.master[id(p)] for p in params] if self.master else []
                for p, m in zip(params, masters, strict=False):
                    m.grad = p.grad.float()  # type: ignore[union-attr]
                opt.step()
                if masters:
                    with torch.no_grad():
                        torch._foreach_copy_(params, masters)
                    for m in masters:
                        m.grad = None
        for p in self.params:
            p.grad = None  # zero_grad(set_to_none=True)


def _forward_loss(model: nn.Module, inputs: dict[str, Any], labels: torch.Tensor) -> torch.Tensor:
    logits, _ = model(**inputs, use_cache=False)
    loss: torch.Tensor = model.get_submodule("loss")(logits, labels)  # logits die on return, as in HF
    return loss


def train_step(model: nn.Module, inputs: dict[str, Any], labels: torch.Tensor, optimizer: StepOptimizer,
               mark: Mark = no_mark, optimizer_mark: Mark | None = None) -> torch.Tensor:
    """Forward + loss, backward, optimizer step; `mark(part)` wraps each part ("forward", "backward",
    "optimizer") for whoever records or times them, `optimizer_mark` the pieces of the optimizer step."""
    with mark("forward"):
        loss = _forward_loss(model, inputs, labels)
    with mark("backward"):
        loss.backward()
    with mark("optimizer"):
        optimizer.step(optimizer_mark)
    return loss.detach()


def trainable_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

