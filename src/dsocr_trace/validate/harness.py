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
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from attrs import frozen
from torch import nn

from dsocr_trace.validate.profiling import StageWall, _sync, profile_steps, summarise_profile, time_steps
from dsocr_trace.validate.random_model import (
    DecodeInputs,
    build_random_model,
    cuda_device,
    device_info,
    prefill_inputs,
    text_config_of,
    workload_dict,
)

SCHEMA = "dsocr-trace/measured/1"
STAGES = ("vision.sam", "vision.clip", "projector", "decoder", "lm_head")
DEFAULT_MODES = "tiny,small,base,large,gundam:2x3,gundam:3x3,base@8"
DEFAULT_KV = "300,1000,4000"
DEFAULT_BATCHES = "1,8"


@frozen
class HarnessOptions:
    """One measurement run, as data (the module's command line maps onto it one to one)."""

    modes: str = DEFAULT_MODES  # prefill workloads mode[:WxH][@batch][+pN], comma-separated ('' = none)
    decode_kv: str = DEFAULT_KV  # decode KV lengths, crossed with `batches` ('' = none)
    batches: str = DEFAULT_BATCHES
    decode: str | None = None  # decode points 'B:KV,KV;B:KV' (overrides batches x decode_kv)
    quick: bool = False  # fewer repeats (smoke runs, calibrate --quick)
    device: str = "cuda"
    experts: str | None = None  # transformers experts_implementation (None: its default)
    no_graph: bool = False  # skip the CUDA-graph decode replays
    trace: str = "default"  # chrome traces: default | first | all | none
    seed: int = 0
    config: str | None = None  # another DeepSeek-OCR config.json (CPU smoke runs: a shrunk model)


@frozen
class Repeats:
    """How often each workload runs: warm-up, timed walls, stage walls, profiled steps, CUDA-graph replays."""

    warmup: int
    wall_runs: int
    stage_runs: int
    repeats: int
    replays: int

    @classmethod
    def of(cls, quick: bool, device: torch.device) -> Repeats:
        cpu = device.type == "cpu"
        return cls(warmup=2 if quick else 3, wall_runs=3 if quick and cpu else (10 if quick else 20),
                   stage_runs=1 if cpu else 5, repeats=1 if quick and cpu else 3, replays=20 if quick else 50)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------------------
# pure helpers (unit-tested)


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
# measurement


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
def measure(model: nn.Module, wl: Any, phase: str, kv_len: int | None, device: torch.device, rep: Repeats,
            trace_path: Path | None, seed: int = 0, graph: bool = True) -> list[dict[str, Any]]:
    """One workload's eager run (per-module kernel times, walls, stage walls, checks) and, for a decode step on
    CUDA with `graph`, its CUDA-graph replay run."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed + 1)
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
    for _ in range(rep.warmup - 2):
        model(**prepare())
    _sync(device)
    t_warm = time.perf_counter() - t0

    walls, hosts, _ = time_steps(model, prepare, rep.wall_runs, device)
    stage_wall = StageWall(model, device)
    try:
        _, _, stage_runs = time_steps(model, prepare, rep.stage_runs, device, stage_wall)
    finally:
        stage_wall.remove()
    walks, calls = profile_steps(model, prepare, rep.repeats, device, trace_path)
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
    if phase == "decode" and device.type == "cuda" and graph:
        assert dec is not None
        grun: dict[str, Any] = {"workload": wdict, "execution": "graph", "stages": {}, "modules": {}, "spread": {}}
        try:
            g = measure_graph_decode(model, dec, rep.replays, device)
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
    ap.add_argument("--config", default=None, help="another DeepSeek-OCR config.json (smoke tests: fewer layers)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    out = Path(args.pop("out"))
    return measure_workloads(out, HarnessOptions(**args))


def measure_workloads(out_dir: Path, args: HarnessOptions) -> int:
    """Every workload of `args` measured into OUT_DIR/measured.json (rewritten after each, so a crash keeps what
    was measured). Returns 0, 1 when an eager run failed, 2 when CUDA was asked for and there is none."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    device = cuda_device(args.device)
    if device is None:
        return 2
    q = args.quick
    rep = Repeats.of(q, device)
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
    model = build_random_model(device, seed=args.seed, experts_implementation=args.experts, config=args.config)
    tc = text_config_of(model)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "device": device_info(device),
        "config": {"experts_implementation": getattr(tc, "_experts_implementation", None),
                   "attn_implementation": getattr(tc, "_attn_implementation", None), "seed": args.seed,
                   "warmup": rep.warmup, "wall_runs": rep.wall_runs, "stage_runs": rep.stage_runs,
                   "repeats": rep.repeats, "replays": rep.replays, "quick": q,
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
            runs = measure(model, wl, phase, kv, device, rep, trace_path, args.seed, not args.no_graph)
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
