"""Run the real forward of a workload on the meta device and record it (dispatch path).

Prefill: vision (SAM, CLIP per view), projector, newline/separator insertion, scatter into the text
embeddings, 12 decoder layers, final norm, lm_head over every position, fp32 logits. Decode: one token per
sequence against a DynamicCache already holding `kv_len` positions; the cache grows by concatenation as
transformers does it, so its copy is in the trace.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from dsocr_trace.trace.ir import Trace
from dsocr_trace.trace.recorder import StageFn, recording, to_trace
from dsocr_trace.workload import Workload

META = torch.device("meta")


def prefill_inputs(wl: Workload, image_token_id: int, device: torch.device = META,
                   dtype: torch.dtype = torch.bfloat16) -> dict[str, Any]:
    """Model inputs of a prefill: ids with the image placeholders, the global view, and Gundam tiles."""
    b, s = wl.batch, wl.prefill_tokens
    if device.type == "meta":
        ids = torch.empty(b, s, dtype=torch.long, device=device)
    else:
        # BOS, image placeholders, then prompt text tokens
        ids = torch.full((b, s), 1000, dtype=torch.long, device=device)
        ids[:, 0] = 0
        ids[:, 1:1 + wl.vision_tokens] = image_token_id
    r = wl.base_size
    inputs: dict[str, Any] = {
        "input_ids": ids,
        "pixel_values": torch.empty(b, 3, r, r, dtype=dtype, device=device),
    }
    if wl.crops:
        w, h = wl.crops
        t = wl.tile_size
        inputs.update(
            pixel_values_local=torch.empty(b * w * h, 3, t, t, dtype=dtype, device=device),
            num_local_patches=[w * h] * b,
            patches_grid=[[w, h]] * b,
        )
    return inputs


def filled_cache(model: nn.Module, batch: int, kv_len: int, device: torch.device = META,
                 dtype: torch.dtype = torch.bfloat16) -> Any:
    """A DynamicCache holding kv_len positions in every layer (built outside any recording)."""
    from transformers import DynamicCache

    tc = model.model.config.text_config  # type: ignore[union-attr]
    cache = DynamicCache(config=tc)
    heads, head_dim = tc.num_key_value_heads, tc.head_dim
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


def trace_decode(model: nn.Module, wl: Workload, stage_fn: StageFn, kv_len: int) -> Trace:
    """One decode step whose attention sees kv_len cached positions plus the new token."""
    cache = filled_cache(model, wl.batch, kv_len)
    ids = torch.empty(wl.batch, 1, dtype=torch.long, device=META)
    with torch.no_grad(), recording(model, "decode", stage_fn) as rec:
        model(input_ids=ids, cache=cache, use_cache=True)
    return to_trace(rec, "dispatch", {"phase": "decode", "batch": wl.batch, "tokens": 1, "kv_len": kv_len + 1})


def meta_environment() -> None:
    """Settings that let transformers run on meta tensors (no values): skip torch._check value checks."""
    os.environ.setdefault("TRANSFORMERS_DISABLE_TORCH_CHECK", "1")
