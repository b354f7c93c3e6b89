"""Measure the official remote code of DeepSeek-OCR (the hub's `modeling_deepseekocr.py`, run the way its
README runs it: transformers 4.46.3, `trust_remote_code`, `model.infer` -> `generate`) on a real device.

It runs in its own environment, never the tool's: transformers 4.46.3 and its pins on PYTHONPATH, the remote
modeling files in a folder given by `--code` (a public copy of the hub's files, fetched beside the project and
never committed into it). This module imports only torch and the tool's torch-free harness helpers, so the
tool's own transformers is never imported here.

The model is built from the packaged config with RANDOM bf16 weights (std 0.02, norms 1), eager attention
(`LlamaAttention` of 4.46.3; flash-attn is not installed on the lent GPU), under `torch.autocast(bf16)` and
`no_grad` as `infer()` runs it. Per workload it records:
* prefill: one forward with the inputs `generate`'s first step passes (the prompt with image tokens, the image
  tuple, the attention mask, an empty DynamicCache), per module kernel time and kernel counts from the
  profiler (module ranges as in `harness`), summed into stages with the remote module paths; wall (CUDA
  events) and host time; device-to-host copies (the syncs `moe_infer` and the vision branch make);
* decode step: one forward at KV length L (a DynamicCache holding random K/V of L, the attention mask and
  position ids `prepare_inputs_for_generation` makes) -- kernels, device time, wall, syncs;
* generation loop: `generate` with `infer()`'s settings (greedy, `no_repeat_ngram_size=20`, eos 1, a
  streamer whose `put` reads the token to the host like TextStreamer does, `use_cache=True`) from a text
  prompt of length L for 1 and for 1 + S new tokens; the per-token wall is the difference over S, and the
  profiler's kernel totals over the same difference give the loop's kernels and device time per token.

Output: `measured.json` (`schema` dsocr-trace/measured-remote/1), rewritten after every workload.

Run: `PYTHONPATH=RCENV python -m dsocr_trace.validate.remote_harness --code DIR --out OUT
[--modes tiny,base,gundam:2x3] [--decode-kv 300,1000,3000] [--batches 1,4] [--loop-steps 32]
[--device cuda|cpu] [--layers N (smoke runs only)]`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import json
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dsocr_trace.validate.events import child_events
from dsocr_trace.validate.harness import _clean, log, parse_decode, parse_modes
from dsocr_trace.validate.profiling import (
    STEP_NAME,
    ModuleRanges,
    _sync,
    aggregate_stages,
    summarise_profile,
    walk_step,
)
from dsocr_trace.validate.random_model import cuda_device, device_info, workload_dict

SCHEMA = "dsocr-trace/measured-remote/1"
IMAGE_TOKEN_ID = 128815  # the remote code's <image> token
PACKAGE = "dsocr_remote_code"  # the package name the remote files are imported under


def remote_stage(path: str, phase: str) -> str:
    """Stage of a module path of the remote code's build (`model.sam_model`, `model.layers.N`, ...)."""
    if path.startswith("model.sam_model"):
        return "vision.sam"
    if path.startswith("model.vision_model"):
        return "vision.clip"
    if path.startswith("lm_head") or path == "":
        return "lm_head"
    if path.startswith("model.projector") or path == "model":
        return "decoder" if phase == "decode" else "projector"
    return "decoder"


def _stub_torchvision() -> None:
    """The remote file imports torchvision's transforms for `infer()`'s image preprocessing, which the harness
    replaces with ready tensors; a CPU smoke run without torchvision gets a stand-in module."""
    try:
        importlib.import_module("torchvision.transforms")
        return
    except Exception:
        pass
    mods = {}
    for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional"):
        m = types.ModuleType(name)
        m.__spec__ = importlib.machinery.ModuleSpec(name, None)
        mods[name] = m
    mods["torchvision.transforms.functional"].InterpolationMode = types.SimpleNamespace(BICUBIC=3)  # type: ignore[attr-defined]
    mods["torchvision.transforms"].functional = mods["torchvision.transforms.functional"]  # type: ignore[attr-defined]
    mods["torchvision"].transforms = mods["torchvision.transforms"]  # type: ignore[attr-defined]
    sys.modules.update(mods)


def load_remote(code: Path) -> types.ModuleType:
    """Import the remote modeling files from `code` as one package."""
    for f in ("modeling_deepseekocr.py", "modeling_deepseekv2.py", "deepencoder.py", "configuration_deepseek_v2.py",
              "conversation.py"):
        if not (code / f).is_file():
            raise SystemExit(f"--code {code}: {f} is missing; give the folder that holds the remote modeling files")
    _stub_torchvision()
    spec = importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
    pkg = types.ModuleType(PACKAGE)
    pkg.__spec__ = spec
    pkg.__path__ = [str(code)]
    sys.modules[PACKAGE] = pkg
    return importlib.import_module(f"{PACKAGE}.modeling_deepseekocr")


@torch.no_grad()
def build_remote_model(mod: types.ModuleType, device: torch.device, layers: int | None, seed: int) -> nn.Module:
    cfg_path = Path(__file__).resolve().parent.parent / "data" / "deepseek-ocr-config.json"
    raw = json.loads(cfg_path.read_text())
    if layers is not None:
        raw["num_hidden_layers"] = layers
    config = mod.DeepseekOCRConfig(**raw)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    with torch.device(device):
        model = mod.DeepseekOCRForCausalLM(config)
    model = model.to(torch.bfloat16).eval()
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    for m in model.modules():
        norm = isinstance(m, (nn.LayerNorm, nn.GroupNorm)) or "norm" in type(m).__name__.lower()
        for name, p in m.named_parameters(recurse=False):
            if norm:
                p.fill_(1.0 if name == "weight" else 0.0)
            else:
                p.normal_(0.0, 0.02, generator=gen)
    return model


def prefill_kwargs(mod: types.ModuleType, wl: Any, device: torch.device, gen: torch.Generator) -> dict[str, Any]:
    """What `generate`'s first forward receives from `infer()` for this workload (B copies of the page)."""
    seq = 1 + wl.vision_tokens + wl.prompt_tokens
    text = torch.randint(1000, 100000, (wl.batch, wl.prompt_tokens), generator=gen, device=device)
    ids = torch.cat([torch.zeros(wl.batch, 1, dtype=torch.long, device=device),
                     torch.full((wl.batch, wl.vision_tokens), IMAGE_TOKEN_ID, dtype=torch.long, device=device),
                     text], dim=1)
    mask = torch.zeros(wl.batch, seq, dtype=torch.bool, device=device)
    mask[:, 1:1 + wl.vision_tokens] = True
    base = wl.base_size
    ori = torch.randn(1, 3, base, base, generator=gen, device=device).to(torch.bfloat16)
    if wl.crops:
        tile = wl.tile_size
        crops = torch.randn(wl.n_tiles, 3, tile, tile, generator=gen, device=device).to(torch.bfloat16)
        spatial = torch.tensor([list(wl.crops)] * wl.batch, dtype=torch.long)
    else:
        crops = torch.zeros(1, 3, base, base, device=device, dtype=torch.bfloat16)
        spatial = torch.zeros(wl.batch, 2, dtype=torch.long)
    from transformers.cache_utils import DynamicCache

    attn = torch.ones(wl.batch, seq, dtype=torch.long, device=device)
    return {"input_ids": ids, "attention_mask": attn, "position_ids": (attn.cumsum(-1) - 1),
            "images": [(crops, ori)] * wl.batch, "images_seq_mask": mask, "images_spatial_crop": spatial,
            "use_cache": True, "_cache": DynamicCache}


def decode_kwargs(model: nn.Module, batch: int, kv_len: int, device: torch.device, gen: torch.Generator
                  ) -> Callable[[], dict[str, Any]]:
    """A fresh DynamicCache holding random K/V of `kv_len` per layer and one token, as generate's steps pass."""
    from transformers.cache_utils import DynamicCache

    tc: Any = model.config
    heads, head_dim = tc.num_key_value_heads, tc.hidden_size // tc.num_attention_heads
    shape = (batch, heads, kv_len, head_dim)
    kv = [(torch.randn(shape, generator=gen, device=device).to(torch.bfloat16),
           torch.randn(shape, generator=gen, device=device).to(torch.bfloat16)) for _ in range(tc.num_hidden_layers)]
    ids = torch.randint(1000, 100000, (batch, 1), generator=gen, device=device)
    attn = torch.ones(batch, kv_len + 1, dtype=torch.long, device=device)
    pos = torch.full((batch, 1), kv_len, dtype=torch.long, device=device)
    zero_img = (torch.zeros(1, 3, 64, 64, device=device, dtype=torch.bfloat16),) * 2

    def prepare() -> dict[str, Any]:
        cache = DynamicCache()
        for i, (k, v) in enumerate(kv):
            cache.update(k, v, i)
        return {"input_ids": ids, "attention_mask": attn, "position_ids": pos, "past_key_values": cache,
                "use_cache": True, "images": [zero_img] * batch, "images_seq_mask": None,
                "images_spatial_crop": torch.zeros(batch, 2, dtype=torch.long)}

    return prepare


class HostReadStreamer:
    """`infer()`'s TextStreamer reads every new token to the host (`value.tolist()`); decoding it to text is
    tokenizer work the harness (no tokenizer files) leaves out."""

    def __init__(self) -> None:
        self.tokens = 0

    def put(self, value: torch.Tensor) -> None:
        self.tokens += len(value.reshape(-1).tolist())

    def end(self) -> None:
        pass


def _d2h(step_event: Any) -> int:
    """Device-to-host copies launched inside a profiled step: the host syncs of eager code."""
    n = 0
    stack = [step_event]
    while stack:
        ev = stack.pop()
        n += sum(1 for k in ev.kernels if "DtoH" in k.name or "Device -> Pageable" in k.name
                 or "Memcpy DtoH" in k.name)
        stack.extend(child_events(ev))
    return n


def _with_autocast(device: torch.device) -> Any:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def profiled(model: nn.Module, call: Callable[[], Any], repeats: int, device: torch.device, phase: str,
             stage_fn: Callable[[str, str], str]) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile, record_function

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    ranges = ModuleRanges(model)
    try:
        with profile(activities=acts) as prof:
            for _ in range(repeats):
                _sync(device)
                with record_function(STEP_NAME):
                    call()
                _sync(device)
    finally:
        ranges.remove()
    calls = {p: c // repeats for p, c in ranges.calls.items()}
    steps = [e for e in prof.events() if e.name == STEP_NAME and e.device_type.name == "CPU"]
    walks = [walk_step(e, cpu_time=device.type != "cuda") for e in steps]
    summ = summarise_profile(walks, calls, phase)
    per_rep = []
    for w in walks:
        from dsocr_trace.validate.profiling import exclusive_from_inclusive

        ex = exclusive_from_inclusive(w["incl_us"], w["parents"])
        exn = exclusive_from_inclusive({k: float(v) for k, v in w["incl_n"].items()}, w["parents"])
        per_rep.append(aggregate_stages({p: {"device_s": ex[p] / 1e6, "kernels": exn[p]} for p in ex}, phase,
                                        stage_fn))
    stages: dict[str, dict[str, Any]] = {}
    for st in sorted({s for r in per_rep for s in r}):
        stages[st] = {"device_s": statistics.median(r.get(st, {}).get("device_s", 0.0) for r in per_rep),
                      "kernels": round(per_rep[0].get(st, {}).get("kernels", 0))}
    summ["stages"] = stages
    summ["total"]["syncs_d2h"] = _d2h(steps[0]) if steps else 0
    return summ


def timed(call: Callable[[], Any], n: int, device: torch.device) -> dict[str, float]:
    walls, hosts = [], []
    for _ in range(n):
        _sync(device)
        t0 = time.perf_counter()
        if device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            call()
            hosts.append(time.perf_counter() - t0)
            b.record()
            b.synchronize()
            walls.append(a.elapsed_time(b) / 1e3)
        else:
            call()
            hosts.append(time.perf_counter() - t0)
            walls.append(hosts[-1])
    return {"wall_s": statistics.median(walls), "wall_min_s": min(walls), "wall_max_s": max(walls),
            "host_s": statistics.median(hosts), "wall_runs": n}


def measure_prefill(mod: types.ModuleType, model: nn.Module, wl: Any, device: torch.device,
                    opts: argparse.Namespace) -> dict[str, Any]:
    gen = torch.Generator(device=device)
    gen.manual_seed(opts.seed + 1)
    kw = prefill_kwargs(mod, wl, device, gen)
    cache_cls = kw.pop("_cache")

    def call() -> Any:
        with _with_autocast(device):
            return model(**kw, past_key_values=cache_cls())

    t0 = time.perf_counter()
    with torch.no_grad():
        for _ in range(opts.warmup):
            call()
        _sync(device)
        summ = profiled(model, call, opts.repeats, device, "prefill", remote_stage)
        summ["total"].update(timed(call, opts.wall_runs, device))
    run = {"workload": workload_dict(wl, "prefill", None), "execution": "eager", "implementation": "remote", **summ}
    tot = summ["total"]
    log(f"  remote prefill {wl.label} B{wl.batch}: wall {tot['wall_s'] * 1e3:.2f} ms, kernels "
        f"{tot['device_s'] * 1e3:.2f} ms ({tot['kernels']}), syncs {tot['syncs_d2h']}, "
        f"{time.perf_counter() - t0:.1f} s")
    return run


def measure_decode(model: nn.Module, wl: Any, kv_len: int, device: torch.device, opts: argparse.Namespace
                   ) -> dict[str, Any]:
    gen = torch.Generator(device=device)
    gen.manual_seed(opts.seed + 2)
    prepare = decode_kwargs(model, wl.batch, kv_len, device, gen)
    kwq: list[dict[str, Any]] = []

    def call() -> Any:
        with _with_autocast(device):
            return model(**(kwq.pop() if kwq else prepare()))

    with torch.no_grad():
        for _ in range(opts.warmup):
            call()
        summ = profiled(model, call, opts.repeats, device, "decode", remote_stage)
        # the cache is rebuilt outside the timed region: its build would otherwise count as step time
        walls = []
        for _ in range(opts.wall_runs):
            kwq.append(prepare())
            walls.append(timed(call, 1, device))
        summ["total"].update(wall_s=statistics.median(w["wall_s"] for w in walls),
                             wall_min_s=min(w["wall_s"] for w in walls), wall_max_s=max(w["wall_s"] for w in walls),
                             host_s=statistics.median(w["host_s"] for w in walls), wall_runs=len(walls))
    run = {"workload": workload_dict(wl, "decode", kv_len), "execution": "eager", "implementation": "remote",
           **summ}
    tot = summ["total"]
    log(f"  remote decode B{wl.batch} KV{kv_len}: wall {tot['wall_s'] * 1e3:.2f} ms, kernels "
        f"{tot['device_s'] * 1e3:.2f} ms ({tot['kernels']}), syncs {tot['syncs_d2h']}")
    return run


def measure_loop(model: nn.Module, batch: int, prompt_len: int, steps: int, device: torch.device,
                 opts: argparse.Namespace) -> dict[str, Any]:
    """generate() as infer() sets it, text prompt of `prompt_len`, 1 vs 1 + steps new tokens."""
    from torch.profiler import ProfilerActivity, profile, record_function

    gen = torch.Generator(device=device)
    gen.manual_seed(opts.seed + 3)
    ids = torch.randint(1000, 100000, (batch, prompt_len), generator=gen, device=device)
    zero = torch.zeros(1, 3, 64, 64, device=device, dtype=torch.bfloat16)
    produced: list[int] = []

    def run(new: int) -> Any:
        streamer = HostReadStreamer()
        gen_fn: Any = model.generate
        with _with_autocast(device):
            out = gen_fn(ids, attention_mask=torch.ones_like(ids), images=[(zero, zero)] * batch,
                         images_seq_mask=torch.zeros_like(ids, dtype=torch.bool),
                         images_spatial_crop=torch.zeros(batch, 2, dtype=torch.long), temperature=0.0,
                         do_sample=False, eos_token_id=1, pad_token_id=1, streamer=streamer,
                         max_new_tokens=new, no_repeat_ngram_size=20, use_cache=True)
        produced.append(out.shape[1] - prompt_len)
        return out

    with torch.no_grad():
        run(2)
        run(1 + steps)
        short = timed(lambda: run(1), opts.loop_runs, device)
        long = timed(lambda: run(1 + steps), opts.loop_runs, device)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        totals = []
        for new in (1, 1 + steps):
            with profile(activities=acts) as prof:
                _sync(device)
                with record_function(STEP_NAME):
                    run(new)
                _sync(device)
            ev = next(e for e in prof.events() if e.name == STEP_NAME and e.device_type.name == "CPU")
            w = walk_step(ev, cpu_time=device.type != "cuda")
            totals.append((w["total_us"] / 1e6, w["total_n"], _d2h(ev), w["host_ops"]))
    made = max(produced[-1] - 1, 1)
    per = {"wall_s": (long["wall_s"] - short["wall_s"]) / made,
           "host_s": (long["host_s"] - short["host_s"]) / made,
           "device_s": (totals[1][0] - totals[0][0]) / made,
           "kernels": (totals[1][1] - totals[0][1]) / made,
           "syncs_d2h": (totals[1][2] - totals[0][2]) / made,
           "host_ops": (totals[1][3] - totals[0][3]) / made}
    rec = {"workload": {"phase": "generate", "batch": batch, "prompt_tokens": prompt_len, "steps": made,
                        "kv_mean": prompt_len + 1 + made / 2},
           "execution": "eager", "implementation": "remote", "per_token": per,
           "short": short, "long": long, "new_tokens": produced[-1]}
    log(f"  remote generate B{batch} L{prompt_len}+{made}: {per['wall_s'] * 1e3:.2f} ms/token wall, "
        f"{per['device_s'] * 1e3:.2f} ms device, {per['kernels']:.0f} kernels, {per['syncs_d2h']:.1f} syncs")
    return rec


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dsocr_trace.validate.remote_harness",
                                description=(__doc__ or "").split("\n")[0])
    p.add_argument("--code", type=Path, required=True, help="folder holding the remote modeling files")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--modes", default="tiny,base,gundam:2x3", help="prefill workloads, e.g. tiny,base@4,gundam:2x3")
    p.add_argument("--decode-kv", default="1:300,1000,3000", help="decode KV lengths per batch: B:L,L;B:L")
    p.add_argument("--loops", default="1:300,1000", help="generate() prompt lengths per batch: B:L,L;B:L")
    p.add_argument("--loop-steps", type=int, default=32)
    p.add_argument("--loop-runs", type=int, default=3)
    p.add_argument("--device", default="cuda")
    p.add_argument("--layers", type=int, default=None, help="decoder layers (smoke runs only)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--wall-runs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sms", type=int, default=None,
                   help="run inside a CUDA green context of this many SMs (a GPU nobody calibrated)")
    return p


def main(argv: list[str] | None = None) -> int:
    from dsocr_trace.validate.partition import run_in_partition

    opts = build_parser().parse_args(argv)
    return run_in_partition(opts.sms, lambda: _run(opts))


def _run(opts: argparse.Namespace) -> int:
    from dsocr_trace.workload import make_workload

    device = cuda_device(opts.device)
    if device is None:
        return 2
    mod = load_remote(opts.code)
    model = build_remote_model(mod, device, opts.layers, opts.seed)
    import transformers

    doc: dict[str, Any] = {"schema": SCHEMA, "device": device_info(device),
                           "config": {"implementation": "remote", "attn_implementation": "eager",
                                      "transformers": transformers.__version__, "layers": opts.layers,
                                      "autocast": "bfloat16", "no_repeat_ngram_size": 20, "seed": opts.seed,
                                      "repeats": opts.repeats, "wall_runs": opts.wall_runs},
                           "runs": [], "loops": []}
    if opts.sms is not None:
        from dsocr_trace.validate.partition import measure_figures, probe

        doc["figures"] = {"probe": probe(opts.sms), **measure_figures()}
        log(f"partition {opts.sms} SMs: {doc['figures']}")
    opts.out.mkdir(parents=True, exist_ok=True)
    path = opts.out / "measured.json"

    def save() -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(_clean(doc), indent=1, sort_keys=True))
        tmp.replace(path)

    log(f"remote code on {doc['device'].get('name')}, transformers {transformers.__version__}")
    for mode, crops, batch in parse_modes(opts.modes):
        wl = make_workload(mode, crops=crops, batch=batch)
        try:
            doc["runs"].append(measure_prefill(mod, model, wl, device, opts))
        except Exception as exc:
            doc["runs"].append({"workload": workload_dict(wl, "prefill", None),
                                "error": f"{type(exc).__name__}: {exc}"})
            log(f"  prefill {wl.label} failed: {exc}")
        save()
    for batch, kv in parse_decode(opts.decode_kv):
        wl = make_workload("base", batch=batch)
        try:
            doc["runs"].append(measure_decode(model, wl, kv, device, opts))
        except Exception as exc:
            doc["runs"].append({"workload": workload_dict(wl, "decode", kv), "error": f"{type(exc).__name__}: {exc}"})
            log(f"  decode KV{kv} failed: {exc}")
        save()
    for batch, L in parse_decode(opts.loops):
        try:
            doc["loops"].append(measure_loop(model, batch, L, opts.loop_steps, device, opts))
        except Exception as exc:
            doc["loops"].append({"workload": {"phase": "generate", "batch": batch, "prompt_tokens": L},
                                 "error": f"{type(exc).__name__}: {exc}"})
            log(f"  generate L{L} failed: {exc}")
        save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
