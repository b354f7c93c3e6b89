"""Parameter counts per component, the checkpoint total, and parameters active per decoded token."""

from __future__ import annotations

from typing import Any

from torch import nn

# component -> module-path prefixes in the DeepSeek-OCR build (first match wins)
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("vision_sam", ("model.vision_tower.sam_encoder.",)),
    ("vision_clip", ("model.vision_tower.vision_encoder.",)),
    ("projector", ("model.multi_modal_projector.",)),
    ("special_tokens", ("model.image_newline", "model.view_separator")),
    ("embedding", ("model.language_model.embed_tokens.",)),
    ("decoder", ("model.language_model.",)),
    ("lm_head", ("lm_head.",)),
)


def component_of(name: str) -> str:
    for comp, prefixes in COMPONENTS:
        if name.startswith(prefixes):
            return comp
    return generic_component(name)


def generic_component(name: str) -> str:
    """Component of a parameter in any VLM layout, from the stage its module belongs to."""
    from dsocr_trace.models.generic import generic_stage

    if "embed_tokens" in name:
        return "embedding"
    stage = generic_stage(name.rsplit(".", 1)[0], "prefill")
    return {"vision.sam": "vision_sam", "vision.clip": "vision_clip"}.get(stage, stage)


def count_params(model: nn.Module, omitted: dict[str, tuple[str, int]] | None = None) -> dict[str, Any]:
    """Counts of the built model; `omitted` = {component: (what, params)} in the checkpoint but not built.

    active_per_token: every decoder weight a token passes through (attention, dense MLP, shared experts,
    router, norms) plus top_k/E of the routed experts, plus lm_head; the embedding is a row lookup.
    """
    built: dict[str, int] = {}
    routed = 0
    active_routed = 0.0
    for name, p in model.named_parameters():
        comp = component_of(name)
        built[comp] = built.get(comp, 0) + p.numel()
    mod: Any
    for mod in model.modules():
        if hasattr(mod, "gate_up_proj") and hasattr(mod, "down_proj") and hasattr(mod, "num_experts"):
            n = sum(p.numel() for p in mod.parameters(recurse=False))
            routed += n
            cfg = getattr(mod, "config", None)
            k = getattr(cfg, "num_experts_per_tok", None) or 1
            active_routed += n * k / mod.num_experts
    omitted = omitted or {}
    checkpoint = dict(built)
    for comp, (_, n) in omitted.items():
        checkpoint[comp] = checkpoint.get(comp, 0) + n
    built_total = sum(built.values())
    active = built.get("decoder", 0) - routed + round(active_routed) + built.get("lm_head", 0)
    return {
        "built_total": built_total,
        "checkpoint_total": built_total + sum(n for _, n in omitted.values()),
        "omitted_from_build": {comp: {"what": what, "params": n} for comp, (what, n) in omitted.items()},
        "components_built": dict(sorted(built.items())),
        "components": dict(sorted(checkpoint.items())),
        "routed_experts": routed,
        "active_per_token": active,
    }
