"""Any vision-language (or text-only) model transformers can build from a local config, on the meta device.

The tracer and cost rules are model-agnostic; what is model-specific is only (a) how to build the module and
(b) how to make prefill inputs. Here: build with the Auto classes from the config's `model_type`; for a VLM,
run `get_image_features` once on meta pixels (outside any recording) to learn how many image tokens the
model produces, then put that many image placeholders into the prompt. What cannot be traced is said plainly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dsocr_trace.errors import UserError

# module-path fragments -> stage, first match wins (generic VLM layouts: LLaVA, Qwen-VL, DeepSeek-OCR 2, ...)
_STAGE_RULES: tuple[tuple[str, str], ...] = (
    ("sam", "vision.sam"),
    ("vision_tower", "vision.clip"),
    ("vision_model", "vision.clip"),
    ("visual", "vision.clip"),
    ("vision_encoder", "vision.clip"),
    ("multi_modal_projector", "projector"),
    ("mm_projector", "projector"),
    ("projector", "projector"),
    ("lm_head", "lm_head"),
)


def generic_stage(module_path: str, phase: str) -> str:
    parts = module_path.split(".")
    for frag, stage in _STAGE_RULES:
        if any(p == frag or p.startswith(frag) for p in parts):
            if stage.startswith("vision") or stage == "projector":
                return stage if phase == "prefill" else "decoder"
            return stage
    if module_path in ("", "model"):
        return "projector" if phase == "prefill" else "decoder"
    return "decoder"


def build_generic(cfg: dict[str, Any], where: str = "model config") -> tuple[nn.Module, Any, str]:
    """(model, transformers config, architecture name) on meta in bf16."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    mtype = cfg.get("model_type")
    if not mtype or not isinstance(mtype, str):
        raise UserError(f"{where}: field 'model_type' is missing or not a string: pass a transformers config.json")
    clean = {k: v for k, v in cfg.items() if not k.startswith("_")}
    clean.pop("model_type", None)
    try:
        conf = AutoConfig.for_model(mtype, **clean)
    except (ValueError, KeyError) as exc:
        raise UserError(f"unsupported architecture: transformers {_tv()} has no model_type {mtype!r} "
                        f"({str(exc).splitlines()[0][:120]})") from None
    from dsocr_trace.models.config_check import check_generic_config

    check_generic_config(conf, where, mtype)
    conf._attn_implementation = "sdpa"
    for sub in ("text_config", "vision_config"):
        if getattr(conf, sub, None) is not None:
            getattr(conf, sub)._attn_implementation = "sdpa"
    errors = []
    for auto in (AutoModelForImageTextToText, AutoModelForCausalLM):
        try:
            with torch.device("meta"):
                model = auto.from_config(conf)
            return model.to(torch.bfloat16).eval(), conf, type(model).__name__
        except (ValueError, KeyError, TypeError) as exc:
            errors.append(str(exc).splitlines()[0][:100])
    raise UserError(f"unsupported architecture {mtype!r}: transformers {_tv()} cannot build it on meta "
                    f"({'; '.join(errors)})")


def _tv() -> str:
    import transformers

    return transformers.__version__


def image_token_id(conf: Any) -> int | None:
    for name in ("image_token_id", "image_token_index"):
        v = getattr(conf, name, None)
        if isinstance(v, int):
            return v
    return None


def vision_side(conf: Any, requested: int) -> int:
    """Pixel side for the global view: the vision config's own size when the model is fixed-size (LLaVA),
    else the mode's."""
    vc = getattr(conf, "vision_config", None)
    if vc is None:
        return requested
    fixed = getattr(vc, "image_size", None)
    if getattr(conf, "model_type", "") in ("llava", "llava_next", "llava_onevision") and isinstance(fixed, int):
        return fixed
    return requested


def count_image_tokens(model: nn.Module, pixel_values: torch.Tensor, extra: dict[str, Any]) -> int:
    inner = getattr(model, "model", model)
    fn = getattr(inner, "get_image_features", None) or getattr(model, "get_image_features", None)
    if fn is None:
        raise UserError(f"{type(model).__name__} has no get_image_features: its vision side cannot be traced; "
                        "use a text-only config or a supported VLM")
    with torch.no_grad():
        out = fn(pixel_values=pixel_values, **extra)
    feats = getattr(out, "pooler_output", None)
    if feats is None:
        feats = out if isinstance(out, (list, tuple, torch.Tensor)) else getattr(out, "last_hidden_state", None)
    if isinstance(feats, (list, tuple)):
        return int(sum(f.shape[0] if f.dim() == 2 else f.shape[0] * f.shape[1] for f in feats))
    if isinstance(feats, torch.Tensor):
        return int(feats.shape[0] * feats.shape[1]) if feats.dim() == 3 else int(feats.shape[0])
    raise UserError(f"cannot tell how many image tokens {type(model).__name__} produces")
