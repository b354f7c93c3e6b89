"""Measure DeepSeek-OCR under torch.compile beside eager: device time per stage of a prefill, decode-step wall.

Model: the inference harness's (`random_model.build_random_model`: official config, random bf16 weights), inference
mode (no_grad).

What is compiled, and how:
* prefill: each stage module's `forward` (SAM, CLIP, projector, language model, lm_head) is compiled on its own
  (inductor, `--prefill-mode` default "default"; "max-autotune-no-cudagraphs" tunes GEMMs and takes longer).
  The glue between stages (view concat, newline/separator tokens, the scatter into the text embeddings, the
  fp32 cast of the logits) stays eager, as in a model whose stages are compiled. Compiling per stage keeps the
  module hooks that time each stage outside the compiled code; inductor fuses within a stage (and graph breaks
  split a stage into several graphs, counted below).
* decode: the language model's and lm_head's `forward` are compiled with mode="reduce-overhead" (inductor +
  CUDA graphs) and run against a transformers StaticCache: transformers 5.24 supports it for this model (its
  text layers are plain `full_attention` layers, which StaticCache backs with StaticLayer; the layer's fill level
  is a device tensor, so positions and cache writes stay inside the graph). The static cache holds
  `max_cache_len` = KV + the steps run, and attention runs over all of it under a mask (that is how a static
  cache decodes); each step appends one token.
* eager runs beside, on the same model, with the same stage timing: prefill with use_cache=False (as the
  compiled prefill), decode with a DynamicCache prefilled to KV L for every step (HF's default cache).

Per run: device time per stage (profiler kernel durations inside `mod:<stage module>` ranges opened by forward
hooks on the stage modules, exclusive, median over repeats: `profiling.walk_step` / `profiling.summarise_profile`),
total device time (and `device_all_kernels_s`: every kernel of the profile per step, attributed or not: kernels
replayed inside a CUDA graph may not be linked to a CPU op), wall time (CUDA events around a whole step:
median/min/max), and for compiled runs the
compile time (first call), graph count, graph breaks and CUDA-graph skips (torch._dynamo counters: a graph
inductor could not put in a CUDA graph runs its kernels one by one).

Output `measured.json` (schema dsocr-trace/measured/1, the inference harness's run format; rewritten after
every run): runs with "execution": "eager" | "compiled" and "compile": {"backend", "mode", "compile_s",
"graphs", "graph_breaks", "break_reasons", "cudagraph_skips"} on compiled runs. Stages and modules are the stage
modules only. On CUDA each run also holds "kernels": per stage module, its longest kernels by name with launches
and us per step (what inductor generated, to compare with the predicted kernel plan).

GPU run (about 2-3 minutes on an H200 with the defaults; every new shape compiles again, so add workloads
sparingly):
    python -m dsocr_trace.validate.compile_harness --out runs/compile-h200
    python -m dsocr_trace.validate.compile_harness --out runs/compile-h200-b --modes tiny,gundam:2x3 \\
        --decode-kv 300,4000 --batches 1,8
CPU smoke run (no inductor code generation): --device cpu --backend eager.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dsocr_trace.trace.ir import STAGE_MODULES
from dsocr_trace.validate import harness, profiling, random_model
from dsocr_trace.validate.train_harness import all_kernels_us, build_model

DECODE_MODULES = ("model.language_model", "lm_head")
DEFAULT_MODES = "base"
DEFAULT_KV = "1000"
DEFAULT_BATCHES = "1"


class Compiled:
    """Swap chosen modules' `forward` for compiled versions, and back."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.swapped: list[nn.Module] = []

    def compile(self, paths: tuple[str, ...], backend: str, mode: str | None) -> None:
        self.restore()
        for path in paths:
            mod = self.model.get_submodule(path)
            kwargs: dict[str, Any] = {"backend": backend, "dynamic": False}
            if backend == "inductor" and mode:
                kwargs["mode"] = mode
            mod.forward = torch.compile(type(mod).forward.__get__(mod), **kwargs)  # type: ignore[method-assign]
            self.swapped.append(mod)

    def restore(self) -> None:
        for mod in self.swapped:
            del mod.forward
        self.swapped.clear()


def fresh_compile() -> None:
    """Forget earlier compiled code (and CUDA graphs) and zero dynamo's counters: each run counts its own."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()


def dynamo_counters() -> dict[str, Any]:
    from torch._dynamo.utils import counters

    breaks: dict[str, int] = dict(counters.get("graph_break") or {})
    stats: dict[str, int] = dict(counters.get("stats") or {})
    inductor: dict[str, int] = dict(counters.get("inductor") or {})
    return {"graphs": int(stats.get("unique_graphs", 0)),
            "graph_breaks": int(sum(breaks.values())),
            "break_reasons": sorted(str(r)[:200] for r in breaks)[:10],
            "cudagraph_skips": int(inductor.get("cudagraph_skips", 0))}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _walls(step: Callable[[], Any], n: int, device: torch.device) -> list[float]:
    out = []
    for _ in range(n):
        _sync(device)
        if device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            step()
            b.record()
            b.synchronize()
            out.append(a.elapsed_time(b) / 1e3)
        else:
            t0 = time.perf_counter()
            step()
            out.append(time.perf_counter() - t0)
    return out


TOP_KERNELS = 80  # kernels kept per stage in a run's "kernels" table (by time)


def kernel_table(names: dict[str, dict[str, list[float]]], repeats: int) -> dict[str, list[list[Any]]]:
    """Per stage: [kernel name, launches per step, us per step], the TOP_KERNELS longest, longest first."""
    out: dict[str, list[list[Any]]] = {}
    for stage, table in sorted(names.items()):
        longest = sorted(table.items(), key=lambda kv: (-kv[1][1], kv[0]))[:TOP_KERNELS]
        out[stage] = [[k, v[0] / repeats, v[1] / repeats] for k, v in longest]
    return out


def _profile(model: nn.Module, step: Callable[[], Any], paths: tuple[str, ...], repeats: int,
             device: torch.device) -> tuple[list[dict[str, Any]], dict[str, int], dict[str, list[list[Any]]]]:
    from torch.profiler import ProfilerActivity, profile, record_function

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    ranges = profiling.ModuleRanges(model, tuple(paths))
    try:
        with profile(activities=acts) as prof:
            for _ in range(repeats):
                _sync(device)
                with record_function(profiling.STEP_NAME):
                    step()
                _sync(device)
    finally:
        ranges.remove()
    events = prof.events()
    steps = [e for e in events if e.name == profiling.STEP_NAME and e.device_type.name == "CPU"]
    calls = {p: c // repeats for p, c in ranges.calls.items()}
    names: dict[str, dict[str, list[float]]] = {}
    walks = [profiling.walk_step(e, cpu_time=device.type != "cuda", names=names) for e in steps]
    # every device kernel of the profile, linked to a CPU op or not (kernels replayed inside a CUDA graph may
    # not be): a check on the per-stage attribution
    all_us = all_kernels_us(list(events)) / max(repeats, 1)
    for w in walks:
        w["all_kernels_us"] = all_us
    return walks, calls, kernel_table(names, max(len(steps), 1))


@torch.no_grad()
def measure(model: nn.Module, step: Callable[[], Any], paths: tuple[str, ...], wdict: dict[str, Any], execution: str,
            device: torch.device, opts: argparse.Namespace, compile_info: dict[str, Any] | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    step()  # compiles on the first call of a compiled run
    _sync(device)
    first_s = time.perf_counter() - t0
    for _ in range(opts.warmup):
        step()
    _sync(device)
    walls = _walls(step, opts.wall_runs, device)
    walks, calls, kernels = _profile(model, step, paths, opts.repeats, device)
    summ = profiling.summarise_profile(walks, calls, wdict["phase"])
    summ["total"].update(wall_s=statistics.median(walls), wall_min_s=min(walls), wall_max_s=max(walls),
                         wall_runs=len(walls))
    if device.type == "cuda" and walks:
        summ["total"]["device_all_kernels_s"] = walks[0]["all_kernels_us"] / 1e6
    run: dict[str, Any] = {"workload": wdict, "execution": execution, **summ}
    if device.type == "cuda":
        run["kernels"] = kernels
    if compile_info is not None:
        run["compile"] = compile_info | {"compile_s": first_s} | dynamo_counters()
    tot = summ["total"]
    harness.log(f"  {execution} {wdict['phase']} {wdict['label']} B{wdict['batch']}"
                + (f" KV{wdict['kv_len']}" if wdict["kv_len"] else "")
                + f": wall {tot['wall_s'] * 1e3:.2f} ms, kernels {tot['device_s'] * 1e3:.2f} ms ({tot['kernels']}), "
                f"first call {first_s:.1f} s")
    return run


def static_cache(dec: random_model.DecodeInputs, max_len: int) -> Any:
    """A StaticCache of `max_len` positions holding the decode inputs' KV (its fill level is kv_len)."""
    from transformers import StaticCache

    cache = StaticCache(config=dec.text_config, max_cache_len=max_len)
    for i, (k, v) in enumerate(dec.kv):
        cache.update(k, v, i)
    return cache


def run_all(model: nn.Module, device: torch.device, opts: argparse.Namespace,
            emit: Callable[[dict[str, Any]], None]) -> None:
    from dsocr_trace.workload import make_workload

    swap = Compiled(model)
    prefill_paths = tuple(STAGE_MODULES)
    for mode, crops, batch in harness.parse_modes(opts.modes):
        wl = make_workload(mode, crops=crops, batch=batch)
        wdict = random_model.workload_dict(wl, "prefill", None)
        gen = torch.Generator(device=device)
        gen.manual_seed(opts.seed + 1)
        inputs = random_model.prefill_inputs(wl, device, gen)

        def prefill(inputs: dict[str, Any] = inputs) -> Any:
            return model(**inputs, use_cache=False)

        for execution in ("eager", "compiled"):
            info = None
            if execution == "compiled":
                fresh_compile()
                swap.compile(prefill_paths, opts.backend, opts.prefill_mode)
                info = {"backend": opts.backend, "mode": mode_of(opts, opts.prefill_mode),
                        "compiled": list(prefill_paths)}
            try:
                emit(measure(model, prefill, prefill_paths, wdict, execution, device, opts, info))
            except Exception as exc:  # a failed compile is a result too: recorded, the rest still run
                emit(failed(wdict, execution, exc, device))
            finally:
                swap.restore()
    kvs = harness.parse_ints(opts.decode_kv) if opts.decode_kv.strip() else []
    for batch in harness.parse_ints(opts.batches) if kvs else []:
        for kv in kvs:
            wl = make_workload("base", batch=batch, kv_len=kv)
            wdict = random_model.workload_dict(wl, "decode", kv)
            gen = torch.Generator(device=device)
            gen.manual_seed(opts.seed + 1)
            dec = random_model.DecodeInputs(model, batch, kv, device, gen)

            def eager_step(dec: random_model.DecodeInputs = dec) -> Any:
                return model(**dec.kwargs())

            try:
                emit(measure(model, eager_step, DECODE_MODULES, wdict, "eager", device, opts, None))
            except Exception as exc:
                emit(failed(wdict, "eager", exc, device))
            fresh_compile()
            steps = 1 + opts.warmup + opts.wall_runs + opts.repeats
            try:
                cache = static_cache(dec, kv + steps + 8)
                swap.compile(DECODE_MODULES, opts.backend, opts.decode_mode)
                info = {"backend": opts.backend, "mode": mode_of(opts, opts.decode_mode),
                        "compiled": list(DECODE_MODULES), "cache": "StaticCache", "max_cache_len": kv + steps + 8}

                def compiled_step(cache: Any = cache, dec: random_model.DecodeInputs = dec) -> Any:
                    # each step is a new CUDA-graph generation: the previous step's outputs may be overwritten
                    mark = getattr(torch.compiler, "cudagraph_mark_step_begin", None)
                    if mark is not None:
                        mark()
                    return model(input_ids=dec.input_ids, cache=cache, use_cache=True)

                emit(measure(model, compiled_step, DECODE_MODULES, wdict, "compiled", device, opts, info))
            except Exception as exc:
                emit(failed(wdict, "compiled", exc, device))
            finally:
                swap.restore()


def mode_of(opts: argparse.Namespace, mode: str) -> str | None:
    """The inductor mode a compile used (other backends take none)."""
    return mode if opts.backend == "inductor" else None


def failed(wdict: dict[str, Any], execution: str, exc: Exception, device: torch.device) -> dict[str, Any]:
    msg = f"{type(exc).__name__}: {exc}"[:2000]
    harness.log(f"  FAILED {execution} {wdict['phase']} {wdict['label']}: {msg[:300]}")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
    return {"workload": wdict, "execution": execution, "error": msg}


def validate_compiled_result(doc: dict[str, Any]) -> list[str]:
    problems = []
    if doc.get("schema") != harness.SCHEMA:
        problems.append(f"schema is {doc.get('schema')!r}")
    for i, run in enumerate(doc.get("runs") or []):
        if run.get("execution") not in ("eager", "compiled"):
            problems.append(f"run {i}: execution {run.get('execution')!r}")
        if "error" in run:
            continue
        for key in ("wall_s", "device_s", "kernels"):
            if not isinstance(run.get("total", {}).get(key), (int, float)):
                problems.append(f"run {i}: total.{key} missing")
        if run.get("execution") == "compiled" and "compile" not in run:
            problems.append(f"run {i}: compiled run without compile info")
    return problems


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m dsocr_trace.validate.compile_harness",
                                 description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (measured.json)")
    ap.add_argument("--modes", default=DEFAULT_MODES, help=f"prefill workloads mode[:WxH][@batch] (default "
                                                          f"{DEFAULT_MODES}; '' = none)")
    ap.add_argument("--decode-kv", default=DEFAULT_KV, help=f"decode KV lengths (default {DEFAULT_KV}; '' = none)")
    ap.add_argument("--batches", default=DEFAULT_BATCHES, help=f"decode batch sizes (default {DEFAULT_BATCHES})")
    ap.add_argument("--backend", default="inductor", help="torch.compile backend (inductor; eager/aot_eager: smoke)")
    ap.add_argument("--prefill-mode", default="default", help="inductor mode of the prefill stages")
    ap.add_argument("--decode-mode", default="reduce-overhead", help="inductor mode of the decode step")
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu (CPU: smoke test only)")
    ap.add_argument("--config", default=None, help="another DeepSeek-OCR config.json (smoke tests: fewer layers)")
    ap.add_argument("--quick", action="store_true", help="fewer runs (smoke)")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    device = random_model.cuda_device(args.device, "pass --device cpu --backend eager for a smoke run")
    if device is None:
        return 2
    args.warmup = 1 if args.quick else 3
    args.wall_runs = 2 if args.quick else 20
    args.repeats = 1 if args.quick else 3
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / "measured.json"
    t_start = time.perf_counter()
    torch.manual_seed(args.seed)
    model = build_model(device, args.seed, args.config).eval()
    tc = random_model.text_config_of(model)
    doc: dict[str, Any] = {
        "schema": harness.SCHEMA, "device": random_model.device_info(device),
        "config": {"experts_implementation": getattr(tc, "_experts_implementation", None),
                   "attn_implementation": getattr(tc, "_attn_implementation", None), "seed": args.seed,
                   "warmup": args.warmup, "wall_runs": args.wall_runs, "repeats": args.repeats, "quick": args.quick,
                   "weights": "random normal std 0.02, norms 1", "dtype": "bfloat16",
                   "model_config": args.config or "official", "backend": args.backend,
                   "prefill_mode": args.prefill_mode, "decode_mode": args.decode_mode},
        "runs": [],
    }
    harness.log(f"device {device}; model ready in {time.perf_counter() - t_start:.1f} s")

    def emit(run: dict[str, Any]) -> None:
        doc["runs"].append(run)
        doc["elapsed_s"] = time.perf_counter() - t_start
        with open(out_file, "w") as f:
            json.dump(harness._clean(doc), f, sort_keys=True, indent=1)

    run_all(model, device, args, emit)
    problems = validate_compiled_result(harness._clean(doc))
    harness.log(f"wrote {out_file} ({len(doc['runs'])} runs) in {time.perf_counter() - t_start:.1f} s"
                + (f"; format problems: {problems}" if problems else ""))
    return 1 if any("error" in r for r in doc["runs"]) or problems else 0


if __name__ == "__main__":
    sys.exit(main())
