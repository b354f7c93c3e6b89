"""Measure DeepSeek-OCR on a real device: per-module kernel time, wall time, CUDA-graph decode, host op counts.

The model is built from the official config with RANDOM bf16 weights (no download): built on meta, moved with
`to_empty`, every parameter drawn from a seeded normal (std 0.02; norm weights 1, norm biases 0), and the
non-persistent buffers (rotary `inv_freq`, CLIP `position_ids`) recomputed. Routing therefore spreads over the
experts like a trained model's would on average (the harness records how many experts layer 1 hits).

Per (workload, phase) it records, in eager mode:
* kernel time per module: forward pre/post hooks open/close `torch.profiler.record_function("mod:<path>")`;
  the inclusive time of a module is the summed duration of every device kernel (and memcpy/memset) launched
  inside its range, the exclusive time is that minus its child modules' inclusive times; summed over calls;
* per stage (`trace.ir.stage_of`) the sum of exclusive times, median over the profiled repeats, and the
  spread (max - min) / median;
* wall time of the whole step (CUDA events, median/min/max of >= 10 runs after warm-up), host time of the
  Python call (returns before the GPU finishes, except where the model syncs), and per-stage wall time from
  events on `sam_encoder`, `vision_encoder`, `multi_modal_projector`, `language_model`, `lm_head`;
* host cost counters: outermost aten ops dispatched from Python, how many of them launched kernels, kernel
  launches, module calls.
For decode it also captures one step (DynamicCache prefilled to KV L) in a CUDA graph and times replays.

Output JSON (stdlib json, sorted keys)::

    {"schema": "dsocr-trace/measured/1",
     "device": {"name", "sm_count", "driver", "torch", "cuda", "cudnn", "transformers", "python", "date",
                "memory_bytes", "capability"},
     "config": {"experts_implementation", "attn_implementation", "seed", "repeats", "wall_runs", ...},
     "runs": [{"workload": {"mode", "label", "crops", "batch", "prompt_tokens", "vision_tokens",
                            "prefill_tokens", "phase", "kv_len"},
               "execution": "eager" | "graph",
               "stages": {stage: {"device_s", "kernels", "wall_s"?}},
               "modules": {path: {"device_s", "device_incl_s", "kernels", "calls"}},   # eager only
               "total": {"device_s", "kernels", "wall_s", "wall_min_s", "wall_max_s", "host_s", "host_ops",
                         "host_ops_launching", "launches", "module_calls", "wall_runs"},
               "spread": {stage or "total": (max - min) / median of device_s over the profiled repeats},
               "checks": {"logits_finite", "experts_hit_layer1"},
               "error"?: str}]}

Times are seconds. `kv_len` is the KV length held by the cache before the decode step (None for prefill).
Graph runs carry only `total.wall_*` (median per replay) and `error` when capture failed.
Module path "" is the top-level wrapper (the fp32 cast of the logits; stage lm_head).

Files in DIR: `measured.json` (rewritten after every workload, so a crash keeps what was measured) and gzipped
Chrome traces (chrome://tracing, ui.perfetto.dev) of the profiled repeats of the base prefill at batch 1
(`trace_prefill_base_b1.json.gz`) and the decode step at KV 1000, batch 1 (`trace_decode_kv1000_b1.json.gz`).

Run: `python -m dsocr_trace.validate.harness --out DIR [--modes tiny,base,gundam:2x3,base@8]
[--decode-kv 300,1000,4000] [--batches 1,8] [--quick] [--device cuda|cpu]`.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dsocr_trace.validate.events import child_events
from dsocr_trace.validate.partition import active_sms, make_current

SCHEMA = "dsocr-trace/measured/1"
RANGE_PREFIX = "mod:"
STEP_NAME = "dsocr:step"
STAGES = ("vision.sam", "vision.clip", "projector", "decoder", "lm_head")
WALL_HOOKS = {  # module path -> stage whose wall time its forward spans
    "model.vision_tower.sam_encoder": "vision.sam",
    "model.vision_tower.vision_encoder": "vision.clip",
    "model.multi_modal_projector": "projector",
    "model.language_model": "decoder",
    "lm_head": "lm_head",
}
DEFAULT_MODES = "tiny,small,base,large,gundam:2x3,gundam:3x3,base@8"
DEFAULT_KV = "300,1000,4000"
DEFAULT_BATCHES = "1,8"
KV_HEADS, HEAD_DIM = 10, 128


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------------------
# pure helpers (unit-tested)


def parent_path(path: str, known: Iterable[str]) -> str | None:
    """Nearest ancestor of a dotted module path among `known` ("" is the root); None for the root itself."""
    if path == "":
        return None
    known_set = known if isinstance(known, (set, frozenset, dict)) else set(known)
    p = path
    while "." in p:
        p = p.rsplit(".", 1)[0]
        if p in known_set:
            return p
    return "" if "" in known_set else None


def exclusive_from_inclusive(incl: Mapping[str, float], parents: Mapping[str, str | None] | None = None
                             ) -> dict[str, float]:
    """Exclusive value per module path: its inclusive value minus the inclusive values of its direct children.

    `parents` maps a path to the module range it actually ran inside (the dynamic caller, e.g. the language
    model's `embed_tokens` runs inside `model`, not inside `model.language_model`); without it the nearest
    recorded ancestor by path is used (intermediate modules that never ran, e.g. a ModuleList, are skipped).
    """
    excl = dict(incl)
    for path, val in incl.items():
        parent = parents.get(path) if parents is not None else parent_path(path, incl)
        if parent is not None and parent in excl:
            excl[parent] -= val
    return excl


def aggregate_stages(modules: Mapping[str, Mapping[str, float]], phase: str,
                     stage_fn: Callable[[str, str], str] | None = None) -> dict[str, dict[str, float]]:
    """Sum each module's exclusive `device_s` and `kernels` into its stage."""
    if stage_fn is None:
        from dsocr_trace.trace.ir import stage_of

        stage_fn = stage_of
    out: dict[str, dict[str, float]] = {}
    for path, rec in modules.items():
        st = out.setdefault(stage_fn(path, phase), {"device_s": 0.0, "kernels": 0})
        st["device_s"] += float(rec.get("device_s", 0.0))
        st["kernels"] += int(rec.get("kernels", 0))
    return out


def median_spread(values: list[float]) -> tuple[float, float]:
    """(median, (max - min) / median); spread 0 when the median is 0."""
    if not values:
        return 0.0, 0.0
    med = statistics.median(values)
    return med, ((max(values) - min(values)) / med if med > 0 else 0.0)


def validate_result(doc: Mapping[str, Any]) -> list[str]:
    """Problems with the shape of a measured-results document (empty list when fine)."""
    problems = []
    if doc.get("schema") != SCHEMA:
        problems.append(f"schema is {doc.get('schema')!r}, expected {SCHEMA!r}")
    if not isinstance(doc.get("device"), dict):
        problems.append("device block missing")
    runs = doc.get("runs")
    if not isinstance(runs, list):
        return [*problems, "runs is not a list"]
    wl_keys = {"mode", "label", "crops", "batch", "prompt_tokens", "vision_tokens", "prefill_tokens", "phase",
               "kv_len"}
    for i, run in enumerate(runs):
        missing = wl_keys - set(run.get("workload", {}))
        if missing:
            problems.append(f"run {i}: workload lacks {sorted(missing)}")
        if run.get("execution") not in ("eager", "graph"):
            problems.append(f"run {i}: execution {run.get('execution')!r}")
        if "error" in run:
            continue
        total = run.get("total", {})
        for key in ("wall_s", "wall_min_s", "wall_max_s"):
            if not isinstance(total.get(key), (int, float)):
                problems.append(f"run {i}: total.{key} missing")
        if run.get("execution") == "eager":
            for key in ("device_s", "kernels", "host_ops", "module_calls"):
                if key not in total:
                    problems.append(f"run {i}: total.{key} missing")
            for stage, rec in run.get("stages", {}).items():
                if stage not in STAGES or "device_s" not in rec or "kernels" not in rec:
                    problems.append(f"run {i}: bad stage entry {stage!r}")
            for path, rec in run.get("modules", {}).items():
                if set(rec) != {"device_s", "device_incl_s", "kernels", "calls"}:
                    problems.append(f"run {i}: module {path!r} has fields {sorted(rec)}")
                    break
    return problems


# ---------------------------------------------------------------------------------------------------------
# device description


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


# ---------------------------------------------------------------------------------------------------------
# model with random weights


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
                       attn_implementation: str = "sdpa") -> nn.Module:
    from dsocr_trace.models.deepseek_ocr import build

    cfg_path = Path(__file__).resolve().parent.parent / "data" / "deepseek-ocr-config.json"
    with open(cfg_path) as f:
        cfg = json.load(f)
    model = build(cfg, device="meta", dtype=torch.bfloat16, attn_implementation=attn_implementation,
                  experts_implementation=experts_implementation)
    model = model.to_empty(device=device)
    init_random_(model, device, seed=seed)
    return model.eval()


# ---------------------------------------------------------------------------------------------------------
# inputs


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


# ---------------------------------------------------------------------------------------------------------
# hooks


class ModuleRanges:
    """Per-module forward hooks opening/closing profiler ranges and counting calls: every module, or only the
    given paths (with the top-level wrapper "")."""

    def __init__(self, model: nn.Module, paths: tuple[str, ...] | None = None) -> None:
        self.handles: list[Any] = []
        self.calls: dict[str, int] = {}
        self.stack: list[Any] = []
        mods = dict(model.named_modules())
        chosen = list(mods) if paths is None else ["", *paths]
        for path in chosen:
            mod = mods[path]
            self.handles.append(mod.register_forward_pre_hook(self._pre(path)))
            self.handles.append(mod.register_forward_hook(self._post, always_call=True))

    def _pre(self, path: str) -> Callable[..., None]:
        name = RANGE_PREFIX + path

        def hook(_mod: nn.Module, _args: Any) -> None:
            self.calls[path] = self.calls.get(path, 0) + 1
            rf = torch.profiler.record_function(name)
            rf.__enter__()
            self.stack.append(rf)

        return hook

    def _post(self, _mod: nn.Module, _args: Any, _out: Any) -> None:
        if self.stack:
            self.stack.pop().__exit__(None, None, None)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()


class StageWall:
    """CUDA events around the forward of the stage-defining modules (summed over calls)."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: dict[str, list[list[Any]]] = {}
        self.handles: list[Any] = []
        mods = dict(model.named_modules())
        for path, stage in WALL_HOOKS.items():
            if path in mods:
                self.handles.append(mods[path].register_forward_pre_hook(self._pre(stage)))
                self.handles.append(mods[path].register_forward_hook(self._post(stage), always_call=True))

    def _mark(self) -> Any:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def _pre(self, stage: str) -> Callable[..., None]:
        def hook(_mod: nn.Module, _args: Any) -> None:
            self.marks.setdefault(stage, []).append([self._mark(), None])
        return hook

    def _post(self, stage: str) -> Callable[..., None]:
        def hook(_mod: nn.Module, _args: Any, _out: Any) -> None:
            self.marks[stage][-1][1] = self._mark()
        return hook

    def collect(self) -> dict[str, float]:
        """Seconds per stage for the marks so far (call after a sync), then reset."""
        out = {}
        for stage, pairs in self.marks.items():
            tot = 0.0
            for a, b in pairs:
                tot += a.elapsed_time(b) / 1e3 if self.cuda else b - a
            out[stage] = tot
        self.marks = {}
        return out

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


# ---------------------------------------------------------------------------------------------------------
# profiler event walk


def _is_own_range(name: str) -> bool:
    return name.startswith(RANGE_PREFIX) or name == STEP_NAME


def walk_step(step_event: Any, cpu_time: bool = False,
              names: dict[str, dict[str, list[float]]] | None = None) -> dict[str, Any]:
    """Inclusive kernel time (us), kernel counts and the dynamic parent per module range in one profiled step.

    Kernels (incl. memcpy/memset) are attached by the profiler to the CPU op that launched them; a range's
    inclusive time sums them over its whole subtree. With `cpu_time` (CPU smoke runs) the range's CPU time
    stands in for kernel time and each outermost op counts as one "kernel". `names`, when given, collects each
    kernel by name under the innermost range that launched it: {range: {kernel name: [count, us]}}.
    """
    incl_us: dict[str, float] = {}
    incl_n: dict[str, int] = {}
    parents: dict[str, str | None] = {}
    counters = {"host_ops": 0, "host_ops_launching": 0, "launches": 0}

    def visit(ev: Any, in_op: bool, rng: str | None) -> tuple[float, int]:
        name = ev.name
        us = 0.0
        n = 0
        here = name[len(RANGE_PREFIX):] if name.startswith(RANGE_PREFIX) else None
        if not cpu_time:
            for k in ev.kernels:
                if _is_own_range(k.name):  # a GPU-side user annotation, not a kernel
                    continue
                us += float(k.duration)
                n += 1
                if names is not None:
                    slot = names.setdefault(here or rng or "", {}).setdefault(k.name, [0, 0.0])
                    slot[0] += 1
                    slot[1] += float(k.duration)
        is_op = "::" in name and not _is_own_range(name)
        if "Launch" in name:
            counters["launches"] += 1
        for ch in child_events(ev):
            cu, cn = visit(ch, in_op or is_op, here if here is not None else rng)
            us += cu
            n += cn
        if is_op and not in_op:
            counters["host_ops"] += 1
            if cpu_time:
                n += 1
            if n:
                counters["host_ops_launching"] += 1
        if here is not None:
            if cpu_time:
                us = float(ev.cpu_time_total)
            incl_us[here] = incl_us.get(here, 0.0) + us
            incl_n[here] = incl_n.get(here, 0) + n
            parents[here] = rng
        return us, n

    total_us, total_n = visit(step_event, False, None)
    if cpu_time:
        total_us = float(step_event.cpu_time_total)
    return {"incl_us": incl_us, "incl_n": incl_n, "parents": parents, "total_us": total_us, "total_n": total_n,
            **counters}


# ---------------------------------------------------------------------------------------------------------
# measurement


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[..., Any], prepare: Callable[[], dict[str, Any]], n: int, device: torch.device,
               stage_wall: StageWall | None = None) -> tuple[list[float], list[float], list[dict[str, float]]]:
    """Wall seconds (device events), host seconds (Python call) and stage walls for n runs."""
    walls, hosts, stages = [], [], []
    for _ in range(n):
        kw = prepare()
        _sync(device)
        if device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            t0 = time.perf_counter()
            step(**kw)
            hosts.append(time.perf_counter() - t0)
            b.record()
            b.synchronize()
            walls.append(a.elapsed_time(b) / 1e3)
        else:
            t0 = time.perf_counter()
            step(**kw)
            hosts.append(time.perf_counter() - t0)
            walls.append(hosts[-1])
        del kw
        if stage_wall is not None:
            _sync(device)
            stages.append(stage_wall.collect())
    return walls, hosts, stages


def profile_steps(model: nn.Module, prepare: Callable[[], dict[str, Any]], repeats: int, device: torch.device,
                  trace_path: Path | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    from torch.profiler import ProfilerActivity, profile, record_function

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    ranges = ModuleRanges(model)
    try:
        with profile(activities=acts) as prof:
            for _ in range(repeats):
                kw = prepare()
                _sync(device)
                with record_function(STEP_NAME):
                    model(**kw)
                _sync(device)
                del kw
    finally:
        ranges.remove()
    calls = {p: c // repeats for p, c in ranges.calls.items()}
    steps = [e for e in prof.events() if e.name == STEP_NAME and e.device_type.name == "CPU"]
    walks = [walk_step(e, cpu_time=device.type != "cuda") for e in steps]
    if trace_path is not None:
        prof.export_chrome_trace(str(trace_path))
    return walks, calls


def summarise_profile(walks: list[dict[str, Any]], calls: Mapping[str, int], phase: str) -> dict[str, Any]:
    """Median modules/stages/totals over repeats and the spread per stage."""
    per_rep_modules = []
    per_rep_stages = []
    for w in walks:
        excl_us = exclusive_from_inclusive(w["incl_us"], w["parents"])
        excl_n = exclusive_from_inclusive({k: float(v) for k, v in w["incl_n"].items()}, w["parents"])
        mods = {p: {"device_s": excl_us[p] / 1e6, "device_incl_s": w["incl_us"][p] / 1e6,
                    "kernels": round(excl_n[p])} for p in w["incl_us"]}
        per_rep_modules.append(mods)
        per_rep_stages.append(aggregate_stages(mods, phase))
    modules: dict[str, dict[str, Any]] = {}
    for p in per_rep_modules[0]:
        modules[p] = {
            "device_s": statistics.median(m.get(p, {}).get("device_s", 0.0) for m in per_rep_modules),
            "device_incl_s": statistics.median(m.get(p, {}).get("device_incl_s", 0.0) for m in per_rep_modules),
            "kernels": per_rep_modules[0][p]["kernels"],
            "calls": int(calls.get(p, 0)),
        }
    stages: dict[str, dict[str, Any]] = {}
    spread: dict[str, float] = {}
    for st in sorted({s for rep in per_rep_stages for s in rep}):
        med, spr = median_spread([rep.get(st, {}).get("device_s", 0.0) for rep in per_rep_stages])
        stages[st] = {"device_s": med, "kernels": int(per_rep_stages[0].get(st, {}).get("kernels", 0))}
        spread[st] = spr
    med, spr = median_spread([w["total_us"] / 1e6 for w in walks])
    spread["total"] = spr
    first = walks[0]
    total = {"device_s": med, "kernels": int(first["total_n"]), "host_ops": int(first["host_ops"]),
             "host_ops_launching": int(first["host_ops_launching"]), "launches": int(first["launches"]),
             "module_calls": int(sum(calls.values())),
             "device_outside_modules_s": med - sum(s["device_s"] for s in stages.values())}
    return {"modules": modules, "stages": stages, "total": total, "spread": spread}


@torch.no_grad()
def run_checks(model: nn.Module, kw: dict[str, Any], device: torch.device, held_bytes: int = 0) -> dict[str, Any]:
    """One untimed step: logits finite; the experts each MoE layer's router picked (rows per expert: the
    routing this random-weight model really produced, which predictions of this run use); and the step's
    device memory: allocated before it, the peak during it (torch.cuda.max_memory_allocated), and the bytes
    the harness itself holds beside the model's inputs (`held_bytes`: the reference copy of a decode cache)."""
    counts: dict[int, list[int]] = {}
    handles = []
    for path, mod in model.named_modules():
        if path.startswith("model.language_model.layers.") and path.endswith(".mlp.gate"):
            layer = int(path.split(".")[3])

            def hook(m: nn.Module, _a: Any, out: Any, layer: int = layer) -> None:
                n_exp = int(getattr(m, "n_routed_experts", 0) or getattr(m, "num_experts", 0) or 64)
                idx = out[2] if isinstance(out, (tuple, list)) and len(out) > 2 else out[1]
                counts[layer] = torch.bincount(idx.flatten().long(), minlength=n_exp).tolist()
            handles.append(mod.register_forward_hook(hook))
    mem: dict[str, Any] = {}
    try:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            mem["allocated_before_bytes"] = torch.cuda.memory_allocated(device)
        logits, _ = model(**kw)
        finite = bool(torch.isfinite(logits).all().item())
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            mem["peak_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
            mem["held_by_harness_bytes"] = held_bytes
        del logits
    finally:
        for h in handles:
            h.remove()
    l1 = counts.get(1)
    return {"logits_finite": finite, "experts_hit_layer1": sum(1 for c in l1 if c) if l1 else None,
            "expert_rows": {str(k): v for k, v in sorted(counts.items())}, "memory": mem}


@torch.no_grad()
def measure_graph_decode(model: nn.Module, dec: DecodeInputs, replays: int, device: torch.device) -> dict[str, Any]:
    """Capture one eager decode step at fixed KV in a CUDA graph; median seconds per replay."""
    ids = dec.input_ids
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            model(input_ids=ids, cache=dec.cache())
    torch.cuda.current_stream(device).wait_stream(side)
    torch.cuda.synchronize(device)
    cache = dec.cache()
    keep = [(layer.keys, layer.values) for layer in cache.layers]  # read by the graph: keep them alive
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = model(input_ids=ids, cache=cache)
    for _ in range(3):
        graph.replay()
    torch.cuda.synchronize(device)
    times = []
    for _ in range(replays):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        graph.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    # back-to-back replays: per-replay cost without host gaps between them
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(replays):
        graph.replay()
    b.record()
    b.synchronize()
    finite = bool(torch.isfinite(out[0]).all().item())
    del out, keep, cache, graph
    return {"wall_s": statistics.median(times), "wall_min_s": min(times), "wall_max_s": max(times),
            "wall_runs": replays, "wall_back_to_back_s": a.elapsed_time(b) / 1e3 / replays,
            "logits_finite": finite}


@torch.no_grad()
def measure(model: nn.Module, wl: Any, phase: str, kv_len: int | None, device: torch.device, opts: argparse.Namespace,
            trace_path: Path | None) -> list[dict[str, Any]]:
    gen = torch.Generator(device=device)
    gen.manual_seed(opts.seed + 1)
    wdict = workload_dict(wl, phase, kv_len)
    dec: DecodeInputs | None = None
    if phase == "prefill":
        inputs = prefill_inputs(wl, device, gen)

        def prepare() -> dict[str, Any]:
            return inputs
    else:
        assert kv_len is not None
        dec = DecodeInputs(model, wl.batch, kv_len, device, gen)
        prepare = dec.kwargs

    t0 = time.perf_counter()
    model(**prepare())  # warm-up outside the memory check (cuBLAS handles, workspaces, autotuning)
    held = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in dec.kv) if dec else 0
    checks = run_checks(model, prepare(), device, held)
    if checks.get("memory"):
        checks["memory"]["weights_bytes"] = sum(p.numel() * p.element_size() for p in model.parameters())
    for _ in range(opts.warmup - 2):
        model(**prepare())
    _sync(device)
    t_warm = time.perf_counter() - t0

    walls, hosts, _ = time_steps(model, prepare, opts.wall_runs, device)
    stage_wall = StageWall(model, device)
    try:
        _, _, stage_runs = time_steps(model, prepare, opts.stage_runs, device, stage_wall)
    finally:
        stage_wall.remove()
    walks, calls = profile_steps(model, prepare, opts.repeats, device, trace_path)
    summ = summarise_profile(walks, calls, phase)
    for st in {s for r in stage_runs for s in r}:
        summ["stages"].setdefault(st, {"device_s": 0.0, "kernels": 0})["wall_s"] = statistics.median(
            r.get(st, 0.0) for r in stage_runs)
    summ["total"].update(wall_s=statistics.median(walls), wall_min_s=min(walls), wall_max_s=max(walls),
                         host_s=statistics.median(hosts), wall_runs=len(walls))
    run = {"workload": wdict, "execution": "eager", "checks": checks, **summ}
    tot = summ["total"]
    log(f"  {phase} {wl.label} B{wl.batch}" + (f" KV{kv_len}" if kv_len else "")
        + f": wall {tot['wall_s'] * 1e3:.2f} ms, kernels {tot['device_s'] * 1e3:.2f} ms ({tot['kernels']}), "
        f"host ops {tot['host_ops']}, modules {tot['module_calls']}, "
        f"experts hit {checks['experts_hit_layer1']}, warm-up {t_warm:.1f} s, "
        f"total {time.perf_counter() - t0:.1f} s")
    runs = [run]
    if phase == "decode" and device.type == "cuda" and not opts.no_graph:
        assert dec is not None
        grun: dict[str, Any] = {"workload": wdict, "execution": "graph", "stages": {}, "modules": {}, "spread": {}}
        try:
            g = measure_graph_decode(model, dec, opts.replays, device)
            grun["checks"] = {"logits_finite": g.pop("logits_finite")}
            grun["total"] = g
            log(f"  graph decode B{wl.batch} KV{kv_len}: {g['wall_s'] * 1e3:.3f} ms/replay "
                f"(back-to-back {g['wall_back_to_back_s'] * 1e3:.3f} ms)")
        except Exception as exc:
            grun["error"] = f"{type(exc).__name__}: {exc}"[:2000]
            grun["total"] = {}
            log(f"  graph capture failed: {grun['error'][:300]}")
            torch.cuda.synchronize(device)
        runs.append(grun)
    return runs


# ---------------------------------------------------------------------------------------------------------
# CLI


def parse_modes(text: str) -> list[tuple[str, str | None, int]]:
    """'tiny,gundam:2x3,base@8' -> [(mode, crops, batch)]."""
    return [(m, c, b) for m, c, b, _ in parse_workloads(text)]


def parse_workloads(text: str) -> list[tuple[str, str | None, int, int]]:
    """'tiny,gundam:2x3,base@8,base+p600' -> [(mode, crops, batch, prompt tokens)] (prompt default 12)."""
    out = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        prompt = 12
        if "+p" in item:
            item, p = item.split("+p", 1)
            prompt = int(p)
        batch = 1
        if "@" in item:
            item, b = item.split("@", 1)
            batch = int(b)
        crops = None
        if ":" in item:
            item, crops = item.split(":", 1)
        out.append((item, crops, batch, prompt))
    return out


def parse_decode(text: str) -> list[tuple[int, int]]:
    """'1:300,1000;16:2000' -> [(batch, kv), ...] in the given order."""
    out = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        b, _, kvs = part.partition(":")
        out += [(int(b), kv) for kv in parse_ints(kvs)]
    return out


def parse_ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m dsocr_trace.validate.harness", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (measured.json, traces)")
    ap.add_argument("--modes", default=DEFAULT_MODES,
                    help=f"prefill workloads mode[:WxH][@batch], comma-separated, '' = none (default {DEFAULT_MODES})")
    ap.add_argument("--decode-kv", default=DEFAULT_KV, help="decode KV lengths ('' for none)")
    ap.add_argument("--batches", default=DEFAULT_BATCHES, help="decode batch sizes")
    ap.add_argument("--decode", default=None,
                    help="decode points as 'B:KV,KV;B:KV' (overrides --batches x --decode-kv)")
    ap.add_argument("--quick", action="store_true", help="fewer repeats (smoke runs)")
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu (CPU: smoke test only)")
    ap.add_argument("--experts", default=None, help="transformers experts_implementation (default: its default)")
    ap.add_argument("--no-graph", action="store_true", help="skip the CUDA-graph decode replays")
    ap.add_argument("--trace", choices=("default", "first", "all", "none"), default="default",
                    help="chrome traces: base prefill B1 + decode KV1000 B1 (default), first run per phase, "
                         "every eager run (into DIR/traces/), none")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    device = cuda_device(args.device)
    if device is None:
        return 2
    q = args.quick
    args.warmup = 2 if q else 3
    args.wall_runs = 3 if q and device.type == "cpu" else (10 if q else 20)
    args.stage_runs = 1 if device.type == "cpu" else 5
    args.repeats = 1 if q and device.type == "cpu" else 3
    args.replays = 20 if q else 50
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / "measured.json"

    from dsocr_trace.workload import make_workload

    t_start = time.perf_counter()
    plan: list[tuple[Any, str, int | None]] = []
    for mode, crops, batch, prompt in parse_workloads(args.modes):
        plan.append((make_workload(mode, crops=crops, batch=batch, prompt_tokens=prompt, output_tokens=1),
                     "prefill", None))
    if args.decode is not None:
        pairs = parse_decode(args.decode)
    else:
        pairs = [(b, kv) for b in (parse_ints(args.batches) if args.decode_kv.strip() else [])
                 for kv in parse_ints(args.decode_kv)]
    for batch, kv_len in pairs:
        plan.append((make_workload("base", batch=batch, kv_len=kv_len, output_tokens=1), "decode", kv_len))
    log(f"device {device}; {len(plan)} workloads; building the model with random weights")
    torch.manual_seed(args.seed)
    model = build_random_model(device, seed=args.seed, experts_implementation=args.experts)
    tc = text_config_of(model)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "device": device_info(device),
        "config": {"experts_implementation": getattr(tc, "_experts_implementation", None),
                   "attn_implementation": getattr(tc, "_attn_implementation", None), "seed": args.seed,
                   "warmup": args.warmup, "wall_runs": args.wall_runs, "stage_runs": args.stage_runs,
                   "repeats": args.repeats, "replays": args.replays, "quick": q,
                   "weights": "random normal std 0.02, norms 1", "dtype": "bfloat16",
                   "params": sum(p.numel() for p in model.parameters())},
        "runs": [],
    }
    log(f"model ready in {time.perf_counter() - t_start:.1f} s "
        f"(experts {doc['config']['experts_implementation']}, attention {doc['config']['attn_implementation']})")
    traced = set()
    for wl, phase, kv in plan:
        trace_path = None
        if args.trace == "first" and phase not in traced:
            trace_path = out_dir / f"trace_{phase}.json.gz"
        elif args.trace == "default" and wl.batch == 1 and ((phase == "prefill" and wl.label == "base")
                                                             or (phase == "decode" and kv == 1000)):
            trace_path = out_dir / (f"trace_prefill_{wl.label}_b1.json.gz" if phase == "prefill"
                                    else f"trace_decode_kv{kv}_b1.json.gz")
        if args.trace == "all":
            (out_dir / "traces").mkdir(exist_ok=True)
            trace_path = out_dir / "traces" / (f"prefill_{wl.label.replace(':', '_')}_b{wl.batch}_p{wl.prompt_tokens}"
                                               f".json.gz" if phase == "prefill"
                                               else f"decode_kv{kv}_b{wl.batch}.json.gz")
        if trace_path is not None:
            traced.add(phase)
        try:
            runs = measure(model, wl, phase, kv, device, args, trace_path)
        except Exception as exc:
            msg = f"{type(exc).__name__}: {exc}"[:2000]
            log(f"  FAILED {phase} {wl.label} B{wl.batch}: {msg[:500]}")
            runs = [{"workload": workload_dict(wl, phase, kv), "execution": "eager", "error": msg}]
            if device.type == "cuda":
                torch.cuda.empty_cache()
        doc["runs"].extend(runs)
        doc["elapsed_s"] = time.perf_counter() - t_start
        with open(out_file, "w") as f:
            json.dump(_clean(doc), f, sort_keys=True, indent=1)
    problems = validate_result(_clean(doc))
    log(f"wrote {out_file} ({len(doc['runs'])} runs) in {time.perf_counter() - t_start:.1f} s"
        + (f"; format problems: {problems}" if problems else ""))
    return 1 if any("error" in r for r in doc["runs"] if r["execution"] == "eager") else 0


def _clean(obj: Any) -> Any:
    """JSON-safe copy (NaN/inf become None)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


if __name__ == "__main__":
    sys.exit(main())
