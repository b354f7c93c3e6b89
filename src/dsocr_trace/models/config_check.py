"""Model configs checked before anything is built: types, ranges, the dimensions that must agree.

A DeepSeek-OCR config is checked against the fields its builder reads (`DeepseekOCRConfig`): each must be
present (a config holding only `architectures` is not the official model), a whole number in range, and the
dimensions must agree (heads divide the width, top-k within the experts). Keys the builder does not read are
left alone (hub configs carry many) unless they look like a misspelt field. A generic config is checked for
what tracing a cached decode needs, and every sub-config's layer count is bounded before it is built.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dsocr_trace.errors import UserError, close_names, from_validation

# DeepSeek-OCR has 12 decoder layers (24 in CLIP); each layer adds ~100 traced ops per phase. Far beyond this
# count the meta build and trace run for minutes (100,000 layers never finish).
MAX_LAYERS = 512
MAX_WIDTH = 65_536  # hidden sizes: ~8x the largest released LLMs
MAX_VOCAB = 2**21
MAX_EXPERTS = 4096
OFFICIAL = "start from the official config (`deepseek-ai/DeepSeek-OCR`, shipped in the package)"


def _dim(le: int = MAX_WIDTH) -> Any:
    return Field(gt=0, le=le)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class SamConfig(_Strict):
    width: int = _dim()
    layers: int = _dim(MAX_LAYERS)
    heads: int = _dim()
    global_attn_indexes: list[int] = Field(min_length=1)
    downsample_channels: list[int] = Field(min_length=2, max_length=2)


class ClipConfig(_Strict):
    width: int = _dim()
    layers: int = _dim(MAX_LAYERS)
    heads: int = _dim()
    image_size: int = _dim()
    patch_size: int = _dim()


class VisionWidths(_Strict):
    sam_vit_b: SamConfig
    clip: ClipConfig = Field(alias="clip-l-14-224")


class VisionConfig(_Strict):
    width: VisionWidths
    image_size: int | None = Field(default=None, gt=0)
    mlp_ratio: float | None = Field(default=None, gt=0)  # unused by SAM's code (ratio 4), accepted as written
    model_name: str | None = None
    model_type: str | None = None


class DeepseekOCRConfig(BaseModel):
    """The fields `deepseek_ocr.text_config` / `vision_config` read; other hub keys pass through unread."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)

    vocab_size: int = _dim(MAX_VOCAB)
    hidden_size: int = _dim()
    intermediate_size: int = _dim(4 * MAX_WIDTH)
    moe_intermediate_size: int = _dim(4 * MAX_WIDTH)
    num_hidden_layers: int = _dim(MAX_LAYERS)
    num_attention_heads: int = _dim()
    num_key_value_heads: int | None = Field(default=None, gt=0)
    n_routed_experts: int = _dim(MAX_EXPERTS)
    n_shared_experts: int = Field(ge=0, le=MAX_EXPERTS)
    num_experts_per_tok: int = _dim(MAX_EXPERTS)
    first_k_dense_replace: int = Field(ge=0, le=MAX_LAYERS)
    topk_method: Literal["greedy", "group_limited_greedy"] = "greedy"
    n_group: int = Field(default=1, gt=0)
    topk_group: int = Field(default=1, gt=0)
    routed_scaling_factor: float = Field(default=1.0, gt=0)
    max_position_embeddings: int = Field(default=8192, gt=0)
    rms_norm_eps: float = Field(default=1e-6, gt=0, lt=1)
    rope_theta: float = Field(default=10000.0, gt=0)
    bos_token_id: int | None = Field(default=0, ge=0)
    eos_token_id: int | None = Field(default=1, ge=0)
    use_mla: bool = False
    vision_config: VisionConfig


_HINTS = {
    "num_hidden_layers": f"give the decoder's layer count, 1 to {MAX_LAYERS} (DeepSeek-OCR: 12)",
    "layers": f"give the encoder's layer count, 1 to {MAX_LAYERS}",
    "hidden_size": "give the decoder width, e.g. 1280",
    "num_attention_heads": "give the attention head count, e.g. 10",
    "num_experts_per_tok": "give the experts each token is routed to (top-k), e.g. 6",
    "vision_config": "give the vision tower as in the official config: "
                     "{width: {sam_vit_b: {...}, clip-l-14-224: {...}}}",
    "width": "give the vision widths as in the official config",
    "topk_method": "use greedy or group_limited_greedy",
}


def _fail(where: str, field: str, problem: str, hint: str) -> UserError:
    return UserError(f"{where}: field '{field}' {problem}: {hint}")


def check_deepseek_config(cfg: dict[str, Any], where: str) -> DeepseekOCRConfig:
    """Validate a DeepSeek-OCR config; a one-line UserError naming the first bad field."""
    # an unread key close to a read one that is absent is a typo: the builder would use a default (or fail)
    read = set(DeepseekOCRConfig.model_fields)
    for key in sorted(k for k in cfg if k not in read):
        near = close_names(key, read - set(cfg))
        if near:
            raise _fail(where, key, "is not a field dsocr-trace reads", f"did you mean '{near[0]}'?")
    try:
        c = DeepseekOCRConfig.model_validate(cfg)
    except ValidationError as exc:
        raise from_validation(exc, where, DeepseekOCRConfig, _HINTS, OFFICIAL) from None
    kv = c.num_key_value_heads or c.num_attention_heads
    checks = [
        (c.hidden_size % c.num_attention_heads, "num_attention_heads",
         f"({c.num_attention_heads}) does not divide hidden_size ({c.hidden_size})",
         "give a head count that divides the width"),
        (c.num_attention_heads % kv, "num_key_value_heads", f"({kv}) does not divide num_attention_heads "
         f"({c.num_attention_heads})", "give a KV head count that divides the head count (or leave it out)"),
        (c.num_experts_per_tok > c.n_routed_experts, "num_experts_per_tok",
         f"({c.num_experts_per_tok}) is above n_routed_experts ({c.n_routed_experts})",
         "route each token to at most as many experts as there are"),
        (c.first_k_dense_replace > c.num_hidden_layers, "first_k_dense_replace",
         f"({c.first_k_dense_replace}) is above num_hidden_layers ({c.num_hidden_layers})",
         "give how many leading layers are dense, at most the layer count"),
        (c.topk_group > c.n_group, "topk_group", f"({c.topk_group}) is above n_group ({c.n_group})",
         "pick at most n_group groups"),
        (c.n_routed_experts % c.n_group, "n_group", f"({c.n_group}) does not divide n_routed_experts "
         f"({c.n_routed_experts})", "give a group count that divides the experts"),
    ]
    sam, clip = c.vision_config.width.sam_vit_b, c.vision_config.width.clip
    checks += [
        (sam.width % sam.heads, "vision_config.width.sam_vit_b.heads",
         f"({sam.heads}) does not divide the SAM width ({sam.width})", "give a head count that divides the width"),
        (clip.width % clip.heads, "vision_config.width.clip-l-14-224.heads",
         f"({clip.heads}) does not divide the CLIP width ({clip.width})", "give a head count that divides the width"),
        (any(not 0 <= i < sam.layers for i in sam.global_attn_indexes), "vision_config.width.sam_vit_b."
         "global_attn_indexes", f"({sam.global_attn_indexes}) names layers outside 0..{sam.layers - 1}",
         "list SAM layers that use global attention, counted from 0"),
        (any(ch <= 0 for ch in sam.downsample_channels), "vision_config.width.sam_vit_b.downsample_channels",
         f"({sam.downsample_channels}) must be two positive channel counts", "e.g. [512, 1024]"),
        (clip.image_size % clip.patch_size, "vision_config.width.clip-l-14-224.patch_size",
         f"({clip.patch_size}) does not divide image_size ({clip.image_size})", "e.g. 14 for 224"),
    ]
    for bad, field, problem, hint in checks:
        if bad:
            raise _fail(where, field, problem, hint)
    return c


def _sub_configs(conf: Any) -> list[tuple[str, Any]]:
    out = [("", conf)]
    for name in ("text_config", "vision_config", "audio_config"):
        sub = getattr(conf, name, None)
        if sub is not None and hasattr(sub, "to_dict"):
            out.append((f"{name}.", sub))
    return out


def check_generic_config(conf: Any, where: str, model_type: str) -> None:
    """What a transformers config needs before it is built and traced here (prefill + cached decode)."""
    for prefix, sub in _sub_configs(conf):
        for key in ("num_hidden_layers", "num_layers", "depth"):
            n = getattr(sub, key, None)
            if isinstance(n, int) and not isinstance(n, bool) and not 0 < n <= MAX_LAYERS:
                raise _fail(where, prefix + key, f"is {n}", f"give a layer count of 1 to {MAX_LAYERS}")
    if getattr(conf, "is_encoder_decoder", False):
        raise UserError(f"{where}: model_type {model_type!r} is an encoder-decoder: dsocr-trace traces decoder-only "
                        "language models and vision-language models (prefill + cached decode)")
    text = conf.get_text_config()
    for key in ("hidden_size", "num_attention_heads", "num_hidden_layers", "num_key_value_heads"):
        v = getattr(text, key, None)
        if v is None:
            raise UserError(f"{where}: model_type {model_type!r} has no {key}: it is not a decoder with a KV cache "
                            "that dsocr-trace can trace (prefill + cached decode); pass a decoder-only LM or a VLM "
                            "config (Llama, Qwen2, LLaVA, DeepSeek-OCR 2)")
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise _fail(where, key, f"is {v!r}", "give a positive whole number")
    if text.hidden_size % text.num_attention_heads and getattr(text, "head_dim", None) is None:
        raise _fail(where, "num_attention_heads", f"({text.num_attention_heads}) does not divide hidden_size "
                    f"({text.hidden_size})", "give a head count that divides the width, or set head_dim")
    if text.num_attention_heads % text.num_key_value_heads:
        raise _fail(where, "num_key_value_heads", f"({text.num_key_value_heads}) does not divide "
                    f"num_attention_heads ({text.num_attention_heads})", "give a KV head count that divides the heads")
