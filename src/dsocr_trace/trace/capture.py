"""Run the real forward of a workload on the meta device and record it (dispatch path).

Prefill: vision (SAM, CLIP per view), projector, newline/separator insertion, scatter into the text
embeddings, 12 decoder layers, final norm, lm_head over every position, fp32 logits. Decode: one token per
sequence against a DynamicCache already holding `kv_len` positions; the cache grows by concatenation as
transformers does it, so its copy is in the trace.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dsocr_trace.trace.ir import Trace
from dsocr_trace.trace.recorder import StageFn, recording, to_trace
from dsocr_trace.workload import Workload

META = torch.device("meta")


def prefill_inputs(wl: Workload, image_token_id: int, device: torch.device = META,
                   dtype: torch.dtype = torch.bfloat16, gen: torch.Generator | None = None) -> dict[str, Any]:
    """Model inputs of a prefill: ids with the image placeholders, the global view, and Gundam tiles.

    On a real device the ids are BOS, the image placeholders, then prompt tokens 1000, 1001, ...; with `gen`
    the pixels are drawn from it (global view first, then the tiles), else left uninitialised."""
    b, s, v = wl.batch, wl.prefill_tokens, wl.vision_tokens
    if device.type == "meta":
        ids = torch.empty(b, s, dtype=torch.long, device=device)
    else:
        ids = torch.empty(b, s, dtype=torch.long, device=device)
        ids[:, 0] = 0
        ids[:, 1:1 + v] = image_token_id
        ids[:, 1 + v:] = 1000 + torch.arange(s - 1 - v, device=device)

    def pixels(*shape: int) -> torch.Tensor:
        if gen is None:
            return torch.empty(*shape, dtype=dtype, device=device)
        return torch.randn(shape, generator=gen, device=device).to(dtype)

    r = wl.base_size
    inputs: dict[str, Any] = {"input_ids": ids, "pixel_values": pixels(b, 3, r, r)}
    if wl.crops:
        w, h = wl.crops
        t = wl.tile_size
        inputs.update(
            pixel_values_local=pixels(b * w * h, 3, t, t),
            num_local_patches=[w * h] * b,
            patches_grid=[[w, h]] * b,
        )
    return inputs


def filled_cache(model: nn.Module, batch: int, kv_len: int, device: torch.device = META,
                 dtype: torch.dtype = torch.bfloat16, text_config: Any = None) -> Any:
    """A DynamicCache holding kv_len positions in every layer (built outside any recording)."""
    from transformers import DynamicCache

    inner: Any = model
    tc: Any = text_config if text_config is not None else inner.model.config.text_config
    cache = DynamicCache(config=tc)
    heads = tc.num_key_value_heads
    head_dim = getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads
    for layer in range(tc.num_hidden_layers):
        k = torch.empty(batch, heads, kv_len, head_dim, dtype=dtype, device=device)
        v = torch.empty(batch, heads, kv_len, head_dim, dtype=dtype, device=device)
        cache.update(k, v, layer)
    return cache


def trace_prefill(model: nn.Module, wl: Workload, stage_fn: StageFn, image_token_id: int) -> Trace:
    inputs = prefill_inputs(wl, image_token_id)
    with torch.no_grad(), recording(model, "prefill", stage_fn) as rec:
        model(**inputs, use_cache=True)
    return to_trace(rec, "dispatch", {"phase": "prefill", "batch": wl.batch, "tokens": wl.prefill_tokens,
                                      "kv_len": wl.prefill_tokens})


def trace_decode(model: nn.Module, wl: Workload, stage_fn: StageFn, kv_len: int, text_config: Any = None) -> Trace:
    """One decode step whose attention sees kv_len cached positions plus the new token."""
    cache = filled_cache(model, wl.batch, kv_len, text_config=text_config)
    ids = torch.empty(wl.batch, 1, dtype=torch.long, device=META)
    with torch.no_grad(), recording(model, "decode", stage_fn) as rec:
        model(input_ids=ids, cache=cache, use_cache=True)
    return to_trace(rec, "dispatch", {"phase": "decode", "batch": wl.batch, "tokens": 1, "kv_len": kv_len + 1})


def _generic_pixels(lm: Any, wl: Workload) -> torch.Tensor | None:
    from dsocr_trace.models.generic import vision_side

    if lm.image_token_id < 0:
        return None
    side = vision_side(lm.model.config, wl.base_size)
    return torch.empty(wl.batch, 3, side, side, dtype=torch.bfloat16, device=META)


def generic_vision_tokens(lm: Any, wl: Workload) -> int:
    """Image tokens per sequence the model itself produces for this view (0 for a text-only model)."""
    from dsocr_trace.models.generic import count_image_tokens

    px = _generic_pixels(lm, wl)
    if px is None:
        return 0
    return count_image_tokens(lm.model, px, {}) // wl.batch


def trace_prefill_generic(lm: Any, wl: Workload) -> Trace:
    b, s = wl.batch, wl.prefill_tokens
    inputs: dict[str, Any] = {"input_ids": torch.empty(b, s, dtype=torch.long, device=META)}
    px = _generic_pixels(lm, wl)
    if px is not None:
        inputs["pixel_values"] = px
    with torch.no_grad(), recording(lm.model, "prefill", lm.stage_fn) as rec:
        lm.model(**inputs, use_cache=True)
    return to_trace(rec, "dispatch", {"phase": "prefill", "batch": b, "tokens": s, "kv_len": s})
