"""Measured timings from a torch.profiler Chrome trace (export_chrome_trace), for cards this project never ran.

What the trace must hold: `record_function` ranges named `mod:<module path>` opened and closed by module
forward hooks (as `dsocr_trace.validate.harness` does; any harness can), optionally one `dsocr:step` range
per step. Each kernel (and memcpy/memset) is tied to the CPU launch that issued it by its correlation id; the
innermost `mod:` range enclosing that launch on the same thread owns the kernel. Result: the measured-file
format of `compare` (schema dsocr-trace/measured/1), one run per `dsocr:step` range (or one for the trace).
"""

from __future__ import annotations

import bisect
import gzip
import json
from pathlib import Path
from typing import Any

from dsocr_trace.errors import UserError

RANGE_PREFIX = "mod:"
STEP_NAME = "dsocr:step"
_DEVICE_CATS = ("kernel", "gpu_memcpy", "gpu_memset")


def load_trace(path: Path) -> list[dict[str, Any]]:
    try:
        raw = gzip.open(path).read() if str(path).endswith(".gz") else path.read_bytes()
        doc = json.loads(raw)
    except (OSError, EOFError, ValueError) as exc:  # EOFError: a truncated .gz
        raise UserError(f"cannot read Chrome trace {str(path)!r} ({exc or 'truncated'}): pass a whole torch.profiler "
                        "JSON trace") from None
    events = doc.get("traceEvents") if isinstance(doc, dict) else doc
    if not isinstance(events, list):
        raise UserError(f"{str(path)!r} has no traceEvents: pass a torch.profiler Chrome trace")
    usable = [e for e in events if _well_formed(e)]
    if events and not usable:
        raise UserError(f"{str(path)!r}: none of its {len(events)} events is an object with numeric ts and dur: "
                        "pass a torch.profiler Chrome trace")
    return usable


def _well_formed(e: Any) -> bool:
    """An event this reader can place: an object with an args object; kernels, ranges and launches with numeric
    ts and dur (other events may lack them)."""
    if not isinstance(e, dict) or not isinstance(e.get("args", {}), dict):
        return False
    timed = e.get("cat") in (*_DEVICE_CATS, "user_annotation", "cuda_runtime", "cuda_driver")
    for k in ("ts", "dur"):
        if k not in e and not timed:
            continue
        v = e.get(k)
        if isinstance(v, bool) or not isinstance(v, int | float):
            return False
    return True


def kernel_owners(events: list[dict[str, Any]]) -> tuple[int, list[tuple[dict[str, Any], str, int]]]:
    """(number of steps, [(device event, owning module path, step index)]) for every kernel, memcpy and memset.

    A kernel belongs to the innermost `mod:` range enclosing the CPU launch that issued it (same thread), and
    to the `dsocr:step` range holding that launch (one step spanning the trace when there is none)."""
    launches = {e["args"]["correlation"]: e for e in events
                if e.get("cat") in ("cuda_runtime", "cuda_driver") and "correlation" in e.get("args", {})}
    ranges: dict[Any, list[tuple[float, float, str]]] = {}
    steps: list[tuple[float, float]] = []
    for e in events:
        if e.get("cat") != "user_annotation":
            continue
        name = e.get("name", "")
        if name.startswith(RANGE_PREFIX):
            ranges.setdefault(e.get("tid"), []).append((float(e["ts"]), float(e["ts"]) + float(e["dur"]),
                                                        name[len(RANGE_PREFIX):]))
        elif name == STEP_NAME:
            steps.append((float(e["ts"]), float(e["ts"]) + float(e["dur"])))
    if not ranges:
        raise UserError("the trace has no 'mod:<module path>' record_function ranges: open one per module "
                        "forward (see dsocr_trace.validate.harness) and profile again")
    starts = {tid: sorted(r) for tid, r in ranges.items()}
    keys = {tid: [r[0] for r in rs] for tid, rs in starts.items()}
    steps = sorted(steps) or [(float("-inf"), float("inf"))]
    owned = []
    for e in events:
        if e.get("cat") not in _DEVICE_CATS:
            continue
        launch = launches.get(e.get("args", {}).get("correlation"))
        if launch is None:
            continue
        ts, tid = float(launch["ts"]), launch.get("tid")
        rs = starts.get(tid, [])
        i = bisect.bisect_right(keys.get(tid, []), ts)
        owner = ""
        for s, end, path in reversed(rs[:i]):  # the innermost enclosing range starts last
            if s <= ts <= end:
                owner = path
                break
        k = next((j for j, (s, end) in enumerate(steps) if s <= ts <= end), None)
        if k is not None:
            owned.append((e, owner, k))
    return len(steps), owned


def modules_from_trace(events: list[dict[str, Any]], stage_fn: Any, phase: str) -> list[dict[str, Any]]:
    n_steps, owned = kernel_owners(events)
    runs: list[dict[str, Any]] = [{"modules": {}, "total_us": 0.0, "kernels": 0} for _ in range(n_steps)]
    for e, owner, k in owned:
        run = runs[k]
        m = run["modules"].setdefault(owner, {"device_s": 0.0, "kernels": 0})
        m["device_s"] += float(e["dur"]) * 1e-6
        m["kernels"] += 1
        run["total_us"] += float(e["dur"])
        run["kernels"] += 1
    out = []
    for run in runs:
        stages: dict[str, dict[str, Any]] = {}
        for path, m in run["modules"].items():
            st = stages.setdefault(stage_fn(path, phase), {"device_s": 0.0, "kernels": 0})
            st["device_s"] += m["device_s"]
            st["kernels"] += m["kernels"]
        out.append({"modules": run["modules"], "stages": stages,
                    "total": {"device_s": run["total_us"] * 1e-6, "kernels": run["kernels"]}})
    return out


def step_phases(events: list[dict[str, Any]], stage_fn: Any) -> list[str]:
    """Per profiled step: 'prefill' when its kernels run under a vision-tower module (a prefill encodes the
    page), else 'decode'. Only meaningful for a model with a vision tower (every DeepSeek-OCR prefill has one)."""
    n_steps, owned = kernel_owners(events)
    vision = [False] * n_steps
    for _, owner, k in owned:
        if not vision[k] and stage_fn(owner, "prefill").startswith("vision"):
            vision[k] = True
    return ["prefill" if v else "decode" for v in vision]


def trace_execution(events: list[dict[str, Any]]) -> str:
    """'graph' when the trace replays CUDA graphs (a cudaGraphLaunch), else 'eager'."""
    for e in events:
        if e.get("cat") in ("cuda_runtime", "cuda_driver") and "GraphLaunch" in str(e.get("name", "")):
            return "graph"
    return "eager"


def measured_from_trace(path: Path | list[dict[str, Any]], workload: dict[str, Any], stage_fn: Any,
                        steps: list[int] | None = None) -> dict[str, Any]:
    """A measured-file document (one run per profiled step, or the given steps) from a Chrome trace of
    `workload`; `path` may be the already loaded events."""
    events = load_trace(path) if isinstance(path, Path) else path
    execution = trace_execution(events)
    runs = []
    for k, r in enumerate(modules_from_trace(events, stage_fn, workload["phase"])):
        if steps is None or k in steps:
            runs.append({"workload": workload, "execution": execution, **r})
    return {"schema": "dsocr-trace/measured/1",
            "device": {"name": "from Chrome trace", "source": str(path) if isinstance(path, Path) else "events"},
            "runs": runs}
