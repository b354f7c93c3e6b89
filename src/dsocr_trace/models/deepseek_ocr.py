"""DeepSeek-OCR (v1) on the meta device, from its official config.json.

DeepSeek-OCR's own modeling code is hub remote code that imports only on transformers <= 4.47. transformers
5.24 ships `unlimited_ocr`, whose module layout is DeepSeek-OCR v1's (SAM ViT-B with the two downsampling
convs, CLIP-L fed by SAM features, linear 2048->1280 projector, newline/separator tokens, DeepSeek-V2 MoE
decoder with plain MHA) once its text attention is full causal attention. Native `deepseek_v2` forces MLA
and is wrong for this checkpoint. Differences from the checkpoint, stated in the report:
* the unused CLIP patch conv (602,112 params) is not built;
* transformers runs the global view before the local tiles (DeepSeek's code runs tiles first): same ops.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dsocr_trace.errors import UserError

TRANSFORMERS_VERSION = "5.24.0"  # the version these graphs are traced with (pinned in pyproject)
CLIP_PATCH_CONV_PARAMS = 1024 * 3 * 14 * 14  # in the checkpoint, never used by the forward
IMAGE_TOKEN_ID = 128815  # `<image>` in DeepSeek-OCR's tokenizer


def check_supported(cfg: dict[str, Any], where: str = "model config") -> None:
    """DeepSeek-OCR v1, with every field the builder reads present and consistent (else a one-line UserError)."""
    raw = cfg.get("architectures")
    archs: list[Any] = raw if isinstance(raw, list) else []
    mtype = cfg.get("model_type")
    if "DeepseekOCRForCausalLM" not in archs and mtype not in ("deepseek_vl_v2", "DeepseekOCR"):
        what = ", ".join(archs) if archs else f"model_type {mtype!r}"
        raise UserError(
            f"unsupported architecture ({what}): dsocr-trace builds DeepSeek-OCR (DeepseekOCRForCausalLM); "
            "pass its config.json or a config that transformers can build generically"
        )
    if cfg.get("use_mla"):
        raise UserError("this DeepSeek-OCR config asks for MLA attention (use_mla true), which v1 does not have: "
                        "pass the official DeepSeek-OCR config.json")
    from dsocr_trace.models.config_check import check_deepseek_config

    check_deepseek_config(cfg, where)


def text_config(cfg: dict[str, Any]) -> dict[str, Any]:
    layers = int(cfg.get("num_hidden_layers", 12))
    dense = int(cfg.get("first_k_dense_replace", 1))
    return {
        "vocab_size": int(cfg.get("vocab_size", 129280)),
        "hidden_size": int(cfg.get("hidden_size", 1280)),
        "intermediate_size": int(cfg.get("intermediate_size", 6848)),
        "moe_intermediate_size": int(cfg.get("moe_intermediate_size", 896)),
        "num_hidden_layers": layers,
        "num_attention_heads": int(cfg.get("num_attention_heads", 10)),
        "num_key_value_heads": int(cfg.get("num_key_value_heads", cfg.get("num_attention_heads", 10))),
        "n_routed_experts": int(cfg.get("n_routed_experts", 64)),
        "n_shared_experts": int(cfg.get("n_shared_experts", 2)),
        "num_experts_per_tok": int(cfg.get("num_experts_per_tok", 6)),
        "topk_method": cfg.get("topk_method", "greedy"),
        "n_group": int(cfg.get("n_group", 1)),
        "topk_group": int(cfg.get("topk_group", 1)),
        "routed_scaling_factor": float(cfg.get("routed_scaling_factor", 1.0)),
        "max_position_embeddings": int(cfg.get("max_position_embeddings", 8192)),
        "rms_norm_eps": float(cfg.get("rms_norm_eps", 1e-6)),
        "rope_parameters": {"rope_type": "default", "rope_theta": float(cfg.get("rope_theta", 10000.0))},
        "bos_token_id": cfg.get("bos_token_id", 0),
        "eos_token_id": cfg.get("eos_token_id", 1),
        "tie_word_embeddings": False,
        "layer_types": ["full_attention"] * layers,
        "mlp_layer_types": ["dense" if i < dense else "sparse" for i in range(layers)],
    }


def vision_config(cfg: dict[str, Any]) -> dict[str, Any]:
    width = (cfg.get("vision_config") or {}).get("width") or {}
    sam = width.get("sam_vit_b", {})
    clip = width.get("clip-l-14-224", {})
    sam_w = int(sam.get("width", 768))
    clip_w = int(clip.get("width", 1024))
    return {
        "sam_config": {
            "hidden_size": sam_w,
            "num_hidden_layers": int(sam.get("layers", 12)),
            "num_attention_heads": int(sam.get("heads", 12)),
            "global_attn_indexes": list(sam.get("global_attn_indexes", [2, 5, 8, 11])),
            "downsample_channels": list(sam.get("downsample_channels", [512, 1024])),
            "mlp_dim": 4 * sam_w,  # SAM's MLP ratio is 4 in the code; config's mlp_ratio is unused
            "window_size": 14,
            "image_size": 1024,
            "patch_size": 16,
        },
        "encoder_config": {
            "hidden_size": clip_w,
            "intermediate_size": 4 * clip_w,
            "num_hidden_layers": int(clip.get("layers", 24)),
            "num_attention_heads": int(clip.get("heads", 16)),
            "image_size": int(clip.get("image_size", 224)),
            "patch_size": int(clip.get("patch_size", 14)),
        },
    }


class DeepseekOCRForCausalLM(nn.Module):
    """The vision-language model plus an untied lm_head applied to every position, logits cast to fp32.

    That is what DeepSeek-OCR's own forward does at prefill (no logits_to_keep), so the trace carries the
    full (B, S, vocab) fp32 logits buffer.
    """

    def __init__(self, model: nn.Module, hidden: int, vocab: int) -> None:
        super().__init__()
        self.model = model
        self.lm_head = nn.Linear(hidden, vocab, bias=False)

    def forward(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None = None,
                pixel_values_local: torch.Tensor | None = None, num_local_patches: list[int] | None = None,
                patches_grid: list[list[int]] | None = None, cache: Any = None,
                use_cache: bool = True) -> tuple[torch.Tensor, Any]:
        out = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            pixel_values_local=pixel_values_local,
            num_local_patches=num_local_patches,
            patches_grid=patches_grid,
            cache=cache,
            use_cache=use_cache,
        )
        logits = self.lm_head(out.last_hidden_state).float()
        return logits, out.cache


def model_config(cfg: dict[str, Any]) -> Any:
    """transformers' config object of the build (no model: cheap)."""
    check_supported(cfg)
    from transformers.models.unlimited_ocr.configuration_unlimited_ocr import UnlimitedOcrConfig

    return UnlimitedOcrConfig(text_config=text_config(cfg), vision_config=vision_config(cfg),
                              image_token_id=IMAGE_TOKEN_ID, tie_word_embeddings=False)


def build(cfg: dict[str, Any], device: str | torch.device = "meta", dtype: torch.dtype = torch.bfloat16,
          attn_implementation: str = "sdpa", experts_implementation: str | None = None) -> DeepseekOCRForCausalLM:
    """Build the model (meta by default: no memory, no weights)."""
    from transformers.models.unlimited_ocr.modeling_unlimited_ocr import UnlimitedOcrModel

    conf = model_config(cfg)
    tc = text_config(cfg)
    vc: Any = conf.vision_config
    c: Any
    for c in (conf, conf.text_config, vc, vc.sam_config, vc.encoder_config):
        c._attn_implementation = attn_implementation
    with torch.device(device):
        inner = UnlimitedOcrModel(conf)
        model = DeepseekOCRForCausalLM(inner, tc["hidden_size"], tc["vocab_size"])
    if experts_implementation is not None:
        tcfg: Any = conf.text_config
        tcfg._experts_implementation = experts_implementation
    return model.to(dtype).eval()
