"""LoRA adapters on the decoder's nn.Linear layers (written here, not taken from peft).

y = W x + (alpha / r) * B (A x), with A: r x in and B: out x r trained and W frozen. Targets: every nn.Linear
inside the decoder layers: attention q/k/v/o projections, the dense MLP (layer 0) and the shared experts'
gate/up/down projections.

Not adapted, and why: the routed experts hold their weights as two fused 3-D parameters per layer
(gate_up_proj E x 2I x H, down_proj E x H x I) run by grouped GEMMs, not as nn.Linear modules, so
module-targeted LoRA (peft's `target_modules`, "all-linear") does not reach them; adapting them would need
per-expert A/B pairs and two more grouped GEMMs per projection. The router (a bare weight), the embedding,
lm_head and the vision tower are not adapted either (peft's "all-linear" also leaves the output layer out).
"""

from __future__ import annotations

import torch
from torch import nn

DECODER_LAYERS = "model.language_model.layers."


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trained low-rank update; the base keeps its name as `base_layer`."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        w = base.weight
        self.base_layer = base
        self.lora_A = nn.Linear(base.in_features, rank, bias=False, device=w.device, dtype=w.dtype)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False, device=w.device, dtype=w.dtype)
        nn.init.zeros_(self.lora_B.weight)  # the adapter starts as a no-op (LoRA's initialisation)
        self.scaling = alpha / rank
        self.rank = rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base_layer(x) + self.lora_B(self.lora_A(x)) * self.scaling  # type: ignore[no-any-return]


def lora_targets(model: nn.Module) -> list[str]:
    """Paths of the nn.Linear modules LoRA adapts (see the module docstring)."""
    return [name for name, mod in model.named_modules()
            if type(mod) is nn.Linear and name.startswith(DECODER_LAYERS)]


def add_lora(model: nn.Module, rank: int, alpha: float | None = None) -> list[str]:
    """Freeze every parameter, wrap the targets in LoRALinear (alpha defaults to 2 * rank); return the paths."""
    if alpha is None:
        alpha = 2.0 * rank
    for p in model.parameters():
        p.requires_grad_(False)
    targets = lora_targets(model)
    for path in targets:
        parent_name, _, child = path.rpartition(".")
        parent = model.get_submodule(parent_name)
        base = getattr(parent, child)
        setattr(parent, child, LoRALinear(base, rank, alpha))
    return targets
