"""What one profiled step of a model says, and the timers around it; shared by every GPU harness (inference,
training step, torch.compile, remote code).

* `ModuleRanges`: forward hooks that open a `torch.profiler.record_function("mod:<path>")` range per module call;
* `walk_step`: the kernel walk of one profiled step: per range the inclusive kernel time and count, its dynamic
  parent, host-op counters (outermost aten ops, those that launched kernels, launches), optionally the kernels by
  name; `summarise_profile` turns the walks of repeated steps into per-module exclusive and per-stage medians
  with their spread;
* `StageWall`, `time_steps`: wall time of whole steps (CUDA events) and of the stage-defining modules.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dsocr_trace.validate.events import child_events

RANGE_PREFIX = "mod:"


STEP_NAME = "dsocr:step"


WALL_HOOKS = {  # module path -> stage whose wall time its forward spans
    "model.vision_tower.sam_encoder": "vision.sam",
    "model.vision_tower.vision_encoder": "vision.clip",
    "model.multi_modal_projector": "projector",
    "model.language_model": "decoder",
    "lm_head": "lm_head",
}


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


def mark(cuda: bool) -> Any:
    """A point in time on the device's stream (a recorded CUDA event) or, without CUDA, on the host clock."""
    if cuda:
        ev = torch.cuda.Event(enable_timing=True)
        ev.record()
        return ev
    return time.perf_counter()


def seconds_between(a: Any, b: Any, cuda: bool) -> float:
    """Seconds between two marks (CUDA events: call after a sync)."""
    return float(a.elapsed_time(b)) / 1e3 if cuda else float(b - a)


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

    def _pre(self, stage: str) -> Callable[..., None]:
        def hook(_mod: nn.Module, _args: Any) -> None:
            self.marks.setdefault(stage, []).append([mark(self.cuda), None])
        return hook

    def _post(self, stage: str) -> Callable[..., None]:
        def hook(_mod: nn.Module, _args: Any, _out: Any) -> None:
            self.marks[stage][-1][1] = mark(self.cuda)
        return hook

    def collect(self) -> dict[str, float]:
        """Seconds per stage for the marks so far (call after a sync), then reset."""
        out = {}
        for stage, pairs in self.marks.items():
            tot = 0.0
            for a, b in pairs:
                tot += seconds_between(a, b, self.cuda)
            out[stage] = tot
        self.marks = {}
        return out

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


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

