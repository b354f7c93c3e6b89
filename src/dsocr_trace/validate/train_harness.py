"""Measure one DeepSeek-OCR fine-tuning step on a real device: device time per stage, module and pass, step and
part walls, peak memory.

The model is the inference harness's (`random_model.build_random_model`: official config, random bf16 weights),
prepared for training by `models.training.prepare_model` and stepped by `models.training.train_step`: the same
step `dsocr-trace analyze --phase train` traces (forward + ForCausalLMLoss, backward, gradient clipping and the
per-stage optimizers, zero_grad). Pages are random pixels; labels are the input ids with the image positions
ignored.

Per workload (mode, batch, trainable part, checkpointing):
* wall time of whole steps and of each part (CUDA events at the part boundaries), median/min/max over
  `wall_runs` steps after warm-up steps (the first creates the optimizer states);
* memory: torch.cuda.max_memory_allocated over one step started from steady state (weights and optimizer
  states resident, no gradients), plus memory_allocated at the step's start, at the end of the forward and at
  the end of the backward;
* device time from torch.profiler over `repeats` steps, each kernel attributed to a (pass, module):
  - forward: the innermost module range (forward hooks open `mod:<path>` ranges, as in the inference harness);
  - backward: the autograd engine runs each node under an "autograd::engine::evaluate_function" event that
    carries the node's sequence number; the forward op that created the node carries the same number inside
    its module's range, so every backward kernel goes to the module whose forward op it differentiates (the
    profiler's own link between forward and backward; module hooks do not run in the backward pass);
  - recompute: a checkpointed layer's forward runs again inside a backward node; its children's module
    hooks open ranges there, and kernels under them count as recompute of that module;
  - optimizer: `opt:<piece>` ranges around clipping ("whole_model") and each stage's optimizer (under mixed
    precision with its gradient casts and the copy back).
  Exclusive per module, summed per stage (`trace.ir.stage_of(path, "train")`), median over the repeats.

Output `measured.json` (schema dsocr-trace/measured/1, rewritten after every workload):
    runs: [{"workload": {..., "phase": "train", "kv_len": null}, "execution": "eager",
            "train": {optimizer, trainable, lora_rank, checkpointing, precision, ...},
            "stages": {stage: {"device_s", "kernels", "passes": {pass: {"device_s", "kernels"}}}},
            "modules": {path: {"device_s", "kernels", "passes": {...}}},
            "passes": {pass: {"device_s", "kernels"}},
            "total": {"device_s", "kernels", "wall_s", "wall_min_s", "wall_max_s", "wall_runs",
                      "forward_wall_s", "backward_wall_s", "optimizer_wall_s",
                      "device_all_kernels_s" (GPU: every kernel of the step, attributed or not)},
            "memory": {"max_allocated_bytes", "allocated_at_start_bytes", "allocated_after_forward_bytes",
                       "allocated_after_backward_bytes", "weights_bytes", "optimizer_state_bytes",
                       "gradients_bytes"},
            "spread": {"total": (max - min) / median of the profiled device time},
            "checks": {"loss", "loss_finite"}, "error"?: str}]
Passes: forward, backward, recompute, optimizer (as `OpNode.pass_kind` in the trace). On CPU (smoke runs) the
CPU time of each op stands in for kernel time and memory fields are null.

GPU run (about 2-3 minutes on an H200 for the default workloads):
    python -m dsocr_trace.validate.train_harness --out runs/train-h200
    python -m dsocr_trace.validate.train_harness --out runs/train-ckpt --modes base --batches 2,8 \\
        --trainable full,lora --checkpointing on
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dsocr_trace.validate import harness, profiling, random_model
from dsocr_trace.validate.events import child_events

PASSES = ("forward", "backward", "recompute", "optimizer")
PART_PREFIX = "dsocr:"
OPT_PREFIX = "opt:"
BACKWARD_NODE = "autograd::engine::evaluate_function: "
DEFAULT_MODES = "tiny,base"
DEFAULT_BATCHES = "1,2,4"
DEFAULT_TRAINABLE = "decoder,lora"
WHOLE_MODEL = "whole_model"


# ---------------------------------------------------------------------------------------------------------
# profiler walk (pure: unit-tested with fake events)


def _kernels(ev: Any) -> tuple[float, int]:
    us, n = 0.0, 0
    for k in ev.kernels:
        if k.name.startswith((profiling.RANGE_PREFIX, PART_PREFIX, OPT_PREFIX)):
            continue  # a GPU-side user annotation, not a kernel
        us += float(k.duration)
        n += 1
    return us, n


def all_kernels_us(events: list[Any]) -> float:
    """Every device kernel (and memcpy/memset) of a profile, linked to a CPU op or not; GPU-side copies of the
    harness's own ranges (user annotations) excluded."""
    own = (profiling.RANGE_PREFIX, PART_PREFIX, OPT_PREFIX, profiling.STEP_NAME)
    return sum(float(e.device_time_total) for e in events if e.device_type.name == "CUDA"
               and not getattr(e, "is_user_annotation", False) and not e.name.startswith(own))


def _ancestors(ev: Any) -> Iterator[Any]:
    p = ev.cpu_parent
    while p is not None:
        yield p
        p = p.cpu_parent


def walk_train_step(events: list[Any], cpu_time: bool = False) -> dict[str, Any]:
    """Device microseconds and kernel counts per (pass, module) and per optimizer piece for one profiled step.

    `events` are the step's profiler events (FunctionEvents with name, kernels, cpu_children, cpu_parent,
    sequence_nr). With `cpu_time` (CPU smoke runs) each op's self CPU time stands in for kernels."""
    acc: dict[tuple[str, str], list[float]] = {}
    optim: dict[str, list[float]] = {}
    seq_module: dict[int, str] = {}

    def add(key: tuple[str, str] | None, piece: str | None, us: float, n: int) -> None:
        if not us and not n:
            return
        slot = optim.setdefault(piece, [0.0, 0]) if piece is not None else acc.setdefault(key or ("", ""), [0.0, 0])
        slot[0] += us
        slot[1] += n

    def visit(ev: Any, part: str, module: str, piece: str | None) -> None:
        name = ev.name
        if name.startswith(BACKWARD_NODE) and part != "backward-node":
            return  # visited as a backward root
        if name.startswith(profiling.RANGE_PREFIX):
            module = name[len(profiling.RANGE_PREFIX):]
            if part in ("backward", "backward-node"):
                part = "recompute"
        elif name.startswith(OPT_PREFIX):
            piece = name[len(OPT_PREFIX):]
        is_op = "::" in name and not name.startswith(BACKWARD_NODE)
        if part == "forward" and is_op and getattr(ev, "sequence_nr", -1) >= 0:
            seq_module.setdefault(int(ev.sequence_nr), module)
        pass_name = "backward" if part == "backward-node" else part
        if cpu_time:
            if is_op:
                add((pass_name, module), piece if part == "optimizer" else None, float(ev.self_cpu_time_total), 1)
        else:
            us, n = _kernels(ev)
            add((pass_name, module), piece if part == "optimizer" else None, us, n)
        for ch in child_events(ev):
            visit(ch, part, module, piece)

    parts = {e.name[len(PART_PREFIX):]: e for e in events if e.name.startswith(PART_PREFIX)}
    if "forward" in parts:
        visit(parts["forward"], "forward", "", None)
    if "backward" in parts:
        visit(parts["backward"], "backward", "loss", None)  # the gradient seed belongs to the loss
    roots = [e for e in events if e.name.startswith(BACKWARD_NODE)
             and not any(a.name.startswith(BACKWARD_NODE) for a in _ancestors(e))]
    for e in roots:
        visit(e, "backward-node", seq_module.get(int(getattr(e, "sequence_nr", -1)), ""), None)
    if "optimizer" in parts:
        visit(parts["optimizer"], "optimizer", "", WHOLE_MODEL)
    return {"modules": {f"{p}|{m}": v for (p, m), v in sorted(acc.items())},
            "optimizer": dict(sorted(optim.items()))}


def summarise_train(walks: list[dict[str, Any]], stage_fn: Callable[[str, str], str]) -> dict[str, Any]:
    """Median over the profiled steps: per module (exclusive) and pass, per stage and pass, per pass."""
    def per_step(w: dict[str, Any]) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict[str, list[float]]]]:
        mods: dict[str, dict[str, list[float]]] = {}
        stages: dict[str, dict[str, list[float]]] = {}
        for key, (us, n) in w["modules"].items():
            p, path = key.split("|", 1)
            m = mods.setdefault(path, {}).setdefault(p, [0.0, 0])
            m[0] += us
            m[1] += n
            st = stages.setdefault(stage_fn(path, "train"), {}).setdefault(p, [0.0, 0])
            st[0] += us
            st[1] += n
        for piece, (us, n) in w["optimizer"].items():
            stage = WHOLE_MODEL if piece == "clip" else piece
            st = stages.setdefault(stage, {}).setdefault("optimizer", [0.0, 0])
            st[0] += us
            st[1] += n
        return mods, stages

    reps = [per_step(w) for w in walks]

    def med(path: tuple[str, ...], which: int) -> dict[str, Any]:
        def get(d: dict[str, Any]) -> list[float]:
            for k in path:
                d = d.get(k, {})
            return d if isinstance(d, list) else [0.0, 0]
        vals = [get(r[which]) for r in reps]
        return {"device_s": statistics.median(v[0] for v in vals) / 1e6, "kernels": int(vals[0][1])}

    def block(keys: set[str], which: int) -> dict[str, Any]:
        out = {}
        for k in sorted(keys):
            passes = {p: med((k, p), which) for p in PASSES}
            out[k] = {"device_s": sum(v["device_s"] for v in passes.values()),
                      "kernels": sum(v["kernels"] for v in passes.values()), "passes": passes}
        return out

    modules = block({k for r in reps for k in r[0]}, 0)
    stages = block({k for r in reps for k in r[1]}, 1)
    passes = {p: {"device_s": sum(s["passes"][p]["device_s"] for s in stages.values()),
                  "kernels": sum(s["passes"][p]["kernels"] for s in stages.values())} for p in PASSES}
    totals = [sum(us for (us, _) in w["modules"].values()) + sum(us for (us, _) in w["optimizer"].values())
              for w in walks]
    med_total, spread = profiling.median_spread([t / 1e6 for t in totals])
    return {"modules": modules, "stages": stages, "passes": passes,
            "total": {"device_s": med_total, "kernels": sum(p["kernels"] for p in passes.values())},
            "spread": {"total": spread}}


def validate_train_result(doc: dict[str, Any]) -> list[str]:
    """Problems with the shape of a training measured file (empty when fine)."""
    problems = []
    if doc.get("schema") != harness.SCHEMA:
        problems.append(f"schema is {doc.get('schema')!r}")
    for i, run in enumerate(doc.get("runs") or []):
        if run.get("workload", {}).get("phase") != "train" or run.get("execution") != "eager":
            problems.append(f"run {i}: not an eager train run")
        if "error" in run:
            continue
        for key in ("wall_s", "device_s", "forward_wall_s", "backward_wall_s", "optimizer_wall_s"):
            if not isinstance(run.get("total", {}).get(key), (int, float)):
                problems.append(f"run {i}: total.{key} missing")
        for stage, rec in run.get("stages", {}).items():
            if set(rec.get("passes", {})) != set(PASSES):
                problems.append(f"run {i}: stage {stage!r} passes {sorted(rec.get('passes', {}))}")
    return problems


# ---------------------------------------------------------------------------------------------------------
# the model and one step


def build_model(device: torch.device, seed: int, config: str | None) -> nn.Module:
    """random_model.build_random_model, or (smoke runs) the same from another config.json (fewer layers)."""
    if config is None:
        return random_model.build_random_model(device, seed=seed)
    from dsocr_trace.models.deepseek_ocr import build

    with open(config) as f:
        cfg = json.load(f)
    model = build(cfg, device="meta").to_empty(device=device)
    random_model.init_random_(model, device, seed=seed)
    return model


class Marks:
    """Part boundaries of one step: profiler ranges, CUDA events (or clocks) and memory readings."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.times: dict[str, list[Any]] = {}
        self.memory: dict[str, int] = {}

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        start = profiling.mark(self.cuda)
        with torch.profiler.record_function(PART_PREFIX + name):
            yield
        self.times[name] = [start, profiling.mark(self.cuda)]
        if self.cuda:
            self.memory[name] = int(torch.cuda.memory_allocated())

    @contextmanager
    def piece(self, name: str) -> Iterator[None]:
        with torch.profiler.record_function(OPT_PREFIX + name):
            yield

    def walls(self) -> dict[str, float]:
        """Seconds per part (call after a sync)."""
        return {k: profiling.seconds_between(a, b, self.cuda) for k, (a, b) in self.times.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _bytes(tensors: Any) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(seen.values())


def measure(model: nn.Module, optimizer: Any, wl: Any, cfg: Any, device: torch.device, opts: argparse.Namespace,
            trace_path: Path | None) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    from dsocr_trace.models.deepseek_ocr import IMAGE_TOKEN_ID
    from dsocr_trace.models.training import labels_for, train_step
    from dsocr_trace.trace.ir import stage_of

    gen = torch.Generator(device=device)
    gen.manual_seed(opts.seed + 1)
    inputs = random_model.prefill_inputs(wl, device, gen)
    labels = labels_for(inputs["input_ids"], IMAGE_TOKEN_ID)

    def step(marks: Marks) -> torch.Tensor:
        return train_step(model, inputs, labels, optimizer, mark=marks.part, optimizer_mark=marks.piece)

    t0 = time.perf_counter()
    loss = None
    for _ in range(opts.warmup):
        loss = step(Marks(device))
    _sync(device)
    t_warm = time.perf_counter() - t0
    loss_value = float(loss) if loss is not None else float("nan")
    walls, parts = [], []
    for _ in range(opts.wall_runs):
        marks = Marks(device)
        _sync(device)
        start = profiling.mark(marks.cuda)
        step(marks)
        end = profiling.mark(marks.cuda)
        _sync(device)
        walls.append(profiling.seconds_between(start, end, marks.cuda))
        parts.append(marks.walls())
    memory: dict[str, Any] = {"max_allocated_bytes": None, "allocated_at_start_bytes": None,
                              "allocated_after_forward_bytes": None, "allocated_after_backward_bytes": None}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        memory["allocated_at_start_bytes"] = int(torch.cuda.memory_allocated(device))
        marks = Marks(device)
        step(marks)
        _sync(device)
        memory.update(max_allocated_bytes=int(torch.cuda.max_memory_allocated(device)),
                      allocated_after_forward_bytes=marks.memory.get("forward"),
                      allocated_after_backward_bytes=marks.memory.get("backward"))
    memory.update(weights_bytes=_bytes([*model.parameters(), *model.buffers()]),
                  optimizer_state_bytes=_bytes([t for t, _ in optimizer.state_tensors().items()]),
                  gradients_bytes=sum(p.numel() * p.element_size() for p in optimizer.params))
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    ranges = profiling.ModuleRanges(model)
    walks = []
    try:
        for r in range(opts.repeats):
            with profile(activities=acts) as prof:
                step(Marks(device))
                _sync(device)
            events = list(prof.events())
            walks.append(walk_train_step(events, cpu_time=device.type != "cuda"))
            # every kernel of the step, attributed or not (a check on the walk)
            walks[-1]["all_kernels_us"] = all_kernels_us(events)
            if trace_path is not None and r == 0:
                prof.export_chrome_trace(str(trace_path))
    finally:
        ranges.remove()
    summ = summarise_train(walks, stage_of)
    if device.type == "cuda":
        summ["total"]["device_all_kernels_s"] = statistics.median(w["all_kernels_us"] for w in walks) / 1e6
    summ["total"].update(wall_s=statistics.median(walls), wall_min_s=min(walls), wall_max_s=max(walls),
                         wall_runs=len(walls),
                         **{f"{p}_wall_s": statistics.median(x.get(p, 0.0) for x in parts)
                            for p in ("forward", "backward", "optimizer")})
    run = {"workload": random_model.workload_dict(wl, "train", None), "execution": "eager", "train": cfg.to_dict(),
           "memory": memory, "checks": {"loss": loss_value, "loss_finite": bool(torch.isfinite(torch.tensor(
               loss_value)))}, **summ}
    tot = summ["total"]
    harness.log(f"  train {wl.label} B{wl.batch} {cfg.trainable} ckpt={cfg.checkpointing}: wall "
                f"{tot['wall_s'] * 1e3:.1f} ms (fwd {tot['forward_wall_s'] * 1e3:.1f}, bwd "
                f"{tot['backward_wall_s'] * 1e3:.1f}, opt {tot['optimizer_wall_s'] * 1e3:.1f}), kernels "
                f"{tot['device_s'] * 1e3:.1f} ms, peak "
                + (f"{memory['max_allocated_bytes'] / 2**30:.2f} GiB" if memory["max_allocated_bytes"] else "n/a")
                + f", loss {loss_value:.3f}, warm-up {t_warm:.1f} s, total {time.perf_counter() - t0:.1f} s")
    return run


# ---------------------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m dsocr_trace.validate.train_harness",
                                 description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (measured.json, a Chrome trace)")
    ap.add_argument("--modes", default=DEFAULT_MODES, help=f"mode[:WxH] list (default {DEFAULT_MODES}); each runs "
                    "at every --batches size")
    ap.add_argument("--batches", default=DEFAULT_BATCHES, help=f"batch sizes (default {DEFAULT_BATCHES})")
    ap.add_argument("--trainable", default=DEFAULT_TRAINABLE, help="full,decoder,lora (default decoder,lora)")
    ap.add_argument("--checkpointing", default="off", help="off, on or off,on")
    ap.add_argument("--optimizer", default="adamw", choices=("adamw", "sgd"))
    ap.add_argument("--precision", default="bf16", choices=("bf16", "mixed"))
    ap.add_argument("--lora-rank", type=int, default=16)
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu (CPU: smoke test only)")
    ap.add_argument("--config", default=None, help="another DeepSeek-OCR config.json (smoke tests: fewer layers)")
    ap.add_argument("--quick", action="store_true", help="fewer steps (smoke runs)")
    ap.add_argument("--trace", action="store_true", help="write a Chrome trace of the first workload's step")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def main(argv: list[str] | None = None) -> int:
    from dsocr_trace.models.training import StepOptimizer, TrainConfig, enable_checkpointing, prepare_model
    from dsocr_trace.trace.ir import stage_of
    from dsocr_trace.workload import make_workload

    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    device = random_model.cuda_device(args.device)
    if device is None:
        return 2
    args.warmup = 1 if args.quick else 2
    args.wall_runs = 1 if args.quick else 5
    args.repeats = 1 if args.quick else 2
    ckpt_flags = [c.strip() == "on" for c in args.checkpointing.split(",") if c.strip()]
    workloads = [make_workload(m, crops=c, batch=b)
                 for m, c, _ in harness.parse_modes(args.modes) for b in harness.parse_ints(args.batches)]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / "measured.json"
    t_start = time.perf_counter()
    doc: dict[str, Any] = {
        "schema": harness.SCHEMA, "device": random_model.device_info(device),
        "config": {"seed": args.seed, "warmup": args.warmup, "wall_runs": args.wall_runs, "repeats": args.repeats,
                   "quick": args.quick, "weights": "random normal std 0.02, norms 1", "dtype": "bfloat16",
                   "model_config": args.config or "official"},
        "runs": [],
    }
    traced = False
    for trainable in [t.strip() for t in args.trainable.split(",") if t.strip()]:
        torch.manual_seed(args.seed)
        model = build_model(device, args.seed, args.config)
        cfg = TrainConfig(optimizer=args.optimizer, trainable=trainable, lora_rank=args.lora_rank,
                          precision=args.precision)
        vocab = int(random_model.text_config_of(model).vocab_size)
        prepare_model(model, cfg, vocab)
        optimizer = StepOptimizer(model, cfg, stage_of)
        harness.log(f"{trainable}: model ready ({sum(p.numel() for p in model.parameters() if p.requires_grad):,} "
                    f"trainable parameters) after {time.perf_counter() - t_start:.1f} s")
        for ckpt in ckpt_flags:
            enable_checkpointing(model, enabled=ckpt)
            run_cfg = TrainConfig(optimizer=args.optimizer, trainable=trainable, lora_rank=args.lora_rank,
                                  precision=args.precision, checkpointing=ckpt)
            for wl in workloads:
                trace_path = out_dir / "trace_train_first.json.gz" if args.trace and not traced else None
                traced = traced or trace_path is not None
                try:
                    run = measure(model, optimizer, wl, run_cfg, device, args, trace_path)
                except Exception as exc:  # a workload that fails (out of memory) is recorded, the rest still run
                    msg = f"{type(exc).__name__}: {exc}"[:2000]
                    harness.log(f"  FAILED train {wl.label} B{wl.batch} {trainable}: {msg[:300]}")
                    run = {"workload": random_model.workload_dict(wl, "train", None), "execution": "eager",
                           "train": run_cfg.to_dict(), "error": msg}
                    for p in optimizer.params:
                        p.grad = None
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                doc["runs"].append(run)
                doc["elapsed_s"] = time.perf_counter() - t_start
                with open(out_file, "w") as f:
                    json.dump(harness._clean(doc), f, sort_keys=True, indent=1)
        del model, optimizer
        if device.type == "cuda":
            torch.cuda.empty_cache()
    problems = validate_train_result(harness._clean(doc))
    harness.log(f"wrote {out_file} ({len(doc['runs'])} runs) in {time.perf_counter() - t_start:.1f} s"
                + (f"; format problems: {problems}" if problems else ""))
    return 1 if any("error" in r for r in doc["runs"]) or problems else 0


if __name__ == "__main__":
    sys.exit(main())
