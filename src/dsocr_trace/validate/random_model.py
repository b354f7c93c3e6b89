"""DeepSeek-OCR with random weights on a real device, the inputs of a workload, and the device's description:
what every GPU harness measures.

The model is built from the official config on meta, moved with `to_empty`, every parameter drawn from a seeded
normal (std 0.02; norm weights 1, norm biases 0), the non-persistent buffers (rotary `inv_freq`, CLIP
`position_ids`) recomputed: no download, and routing spreads over the experts as a trained model's would on
average.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dsocr_trace.validate.partition import active_sms, make_current

KV_HEADS, HEAD_DIM = 10, 128


def device_info(device: torch.device) -> dict[str, Any]:
    import importlib.metadata as md

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "host_cpu": platform.processor() or platform.machine(),
        "host_cpus": os.cpu_count(),
    }
    try:
        info["transformers"] = md.version("transformers")
    except md.PackageNotFoundError:
        info["transformers"] = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        sms = active_sms()
        info.update(name=props.name, sm_count=sms or props.multi_processor_count, memory_bytes=props.total_memory,
                    card_sm_count=props.multi_processor_count, partition_sms=sms,
                    l2_bytes=getattr(props, "L2_cache_size", None),
                    capability=f"{props.major}.{props.minor}", cudnn=torch.backends.cudnn.version())
        try:
            q = "driver_version,clocks.max.sm,clocks.max.mem,power.limit"
            out = subprocess.run(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=20, check=False).stdout.strip().splitlines()
            idx = device.index or 0
            fields = [f.strip() for f in out[min(idx, len(out) - 1)].split(",")] if out else []
            for k, v in zip(("driver", "max_sm_clock", "max_mem_clock", "power_limit"), fields, strict=False):
                info[k] = v
        except (OSError, subprocess.SubprocessError) as exc:
            info["driver"] = f"unknown ({exc})"
    else:
        info.update(name=f"cpu ({platform.machine()})", sm_count=None, driver=None)
    return info


def _is_norm(mod: nn.Module) -> bool:
    return isinstance(mod, (nn.LayerNorm, nn.GroupNorm)) or "norm" in type(mod).__name__.lower()


@torch.no_grad()
def init_random_(model: nn.Module, device: torch.device, seed: int = 0, std: float = 0.02) -> dict[str, int]:
    """Fill every parameter with seeded random values and recompute the buffers after `to_empty`."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    n_norm = n_rand = 0
    for mod in model.modules():
        norm = _is_norm(mod)
        for name, p in mod.named_parameters(recurse=False):
            if norm:
                p.fill_(1.0 if name == "weight" else 0.0)
                n_norm += 1
            else:
                p.normal_(0.0, std, generator=gen)
                n_rand += 1
    handled: set[str] = set()
    for mpath, mod in model.named_modules():
        bufs = dict(mod.named_buffers(recurse=False))
        if "inv_freq" in bufs:
            conf = mod.config
            if conf.rope_parameters.get("rope_type", "default") != "default":
                raise RuntimeError(f"{mpath}: rope type {conf.rope_parameters!r} not handled by init_random_")
            base = float(conf.rope_parameters["rope_theta"])
            dim = getattr(conf, "head_dim", None) or conf.hidden_size // conf.num_attention_heads
            inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32, device=device) / dim))
            mod.inv_freq = inv
            handled.add(f"{mpath}.inv_freq")
            if "original_inv_freq" in bufs:
                mod.original_inv_freq = inv.clone()
                handled.add(f"{mpath}.original_inv_freq")
        if "position_ids" in bufs:
            ids = bufs["position_ids"]
            ids.copy_(torch.arange(ids.shape[-1], device=device).expand_as(ids))
            handled.add(f"{mpath}.position_ids")
    unhandled = [n for n, _ in model.named_buffers() if n not in handled]
    if unhandled:
        raise RuntimeError(f"buffers not re-initialised after to_empty: {unhandled}")
    return {"random_params": n_rand, "norm_params": n_norm, "buffers": len(handled)}


def build_random_model(device: torch.device, seed: int = 0, experts_implementation: str | None = None,
                       attn_implementation: str = "sdpa", config: str | Path | None = None) -> nn.Module:
    """The official config's model (or `config`'s: a shrunk one for CPU smoke runs) with seeded random weights."""
    from dsocr_trace.models.deepseek_ocr import build

    cfg_path = Path(config) if config is not None else \
        Path(__file__).resolve().parent.parent / "data" / "deepseek-ocr-config.json"
    with open(cfg_path) as f:
        cfg = json.load(f)
    model = build(cfg, device="meta", dtype=torch.bfloat16, attn_implementation=attn_implementation,
                  experts_implementation=experts_implementation)
    model = model.to_empty(device=device)
    init_random_(model, device, seed=seed)
    return model.eval()


def workload_dict(wl: Any, phase: str, kv_len: int | None) -> dict[str, Any]:
    return {"mode": wl.mode, "label": wl.label, "crops": list(wl.crops) if wl.crops else None, "batch": wl.batch,
            "prompt_tokens": wl.prompt_tokens, "vision_tokens": wl.vision_tokens,
            "prefill_tokens": wl.prefill_tokens, "phase": phase, "kv_len": kv_len}


def prefill_inputs(wl: Any, device: torch.device, gen: torch.Generator) -> dict[str, Any]:
    """The traced prefill's inputs on the GPU, pixels drawn from `gen` (see trace.capture.prefill_inputs)."""
    from dsocr_trace.models.deepseek_ocr import IMAGE_TOKEN_ID
    from dsocr_trace.trace.capture import prefill_inputs as traced_inputs

    return traced_inputs(wl, IMAGE_TOKEN_ID, device, gen=gen)


def text_config_of(model: nn.Module) -> Any:
    inner: Any = model.model
    return inner.config.text_config


class DecodeInputs:
    """Random KV of length L per layer (the text config's KV heads and head size), a token per sequence, and a
    fresh DynamicCache holding it for every step."""

    def __init__(self, model: nn.Module, batch: int, kv_len: int, device: torch.device, gen: torch.Generator) -> None:
        tc: Any = text_config_of(model)
        self.text_config = tc
        n_layers = tc.num_hidden_layers
        heads = getattr(tc, "num_key_value_heads", None) or KV_HEADS
        head_dim = getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads
        shape = (batch, heads, kv_len, head_dim)
        self.kv = [(torch.randn(shape, generator=gen, device=device).to(torch.bfloat16),
                    torch.randn(shape, generator=gen, device=device).to(torch.bfloat16)) for _ in range(n_layers)]
        self.input_ids = torch.randint(1000, 100000, (batch, 1), generator=gen, device=device)

    def cache(self) -> Any:
        from transformers import DynamicCache

        cache = DynamicCache(config=self.text_config)
        for i, (k, v) in enumerate(self.kv):
            cache.update(k, v, i)
        return cache

    def kwargs(self) -> dict[str, Any]:
        return {"input_ids": self.input_ids, "cache": self.cache()}


def cuda_device(name: str, cpu_hint: str = "pass --device cpu for a smoke run") -> torch.device | None:
    """The device a harness runs on ("cuda" means cuda:0), made current; None when CUDA was asked for and
    there is none (the caller prints the hint and exits 2)."""
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", 0)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"CUDA is not available: {cpu_hint}", file=sys.stderr)
        return None
    make_current(device)
    return device

