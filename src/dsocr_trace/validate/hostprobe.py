"""The host probe: how fast this machine's CPU issues torch calls, measured with CPU tensors only (no GPU).

Eager DeepSeek-OCR decode steps are host-bound (~25 ms of Python and dispatch around ~3 ms of kernels), so the
machine that drives the GPU decides the eager wall. This probe times the same tiny ops as calibrate's host probe
(an allocating add, an add with out=, F.linear, an nn.Linear call) on 8-element CPU tensors, where the kernel
itself is ~100 ns and what is timed is Python, the dispatcher and the allocator. How well either figure predicts
the in-model host cost per call (`analyze --host-us-per-call`) is measured by scripts/host_check.py on the
settings of benchmarks/results/h200-host and h200-host-long (one H200 host each, 2,000-call and 50 ms loops):
not yet well enough to map a CPU figure automatically.

Output JSON (schema dsocr-trace/host-probe/1): {"schema", "cpu_op_s", "cpu_op_inplace_s", "cpu_linear_s",
"cpu_module_s", "python_call_s", "host": {"cpu", "cpus", "python", "torch"}, "cuda": {calibrate's host probe
on cuda:0, with --cuda}, "elapsed_s"}.

Run: `dsocr-trace host --out FILE [--cuda]`, or `python -m dsocr_trace.validate.hostprobe --out FILE [--cuda]
[--label NAME]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA = "dsocr-trace/host-probe/1"
CALLS = 2000  # calls per timed loop at least
# and each timed loop lasts at least this long: time-slicing with a co-runner shows only over several scheduler
# slices (2,000-call loops of ~5 ms read +42% with one co-runner where the model's own calls took +89%)
LOOP_S = 0.05
LOOPS = 9


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (platform.processor() is often just the architecture)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _loop_s(fn: Callable[[], Any], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return time.perf_counter() - t0


def _per_call(fn: Callable[[], Any], calls: int, loops: int, loop_s: float = 0.0) -> float:
    """Median seconds per call over `loops` timed loops of `calls` calls, more calls where a loop would last less
    than `loop_s` (sized from one untimed loop)."""
    if loop_s > 0:
        calls = max(calls, int(loop_s / max(_loop_s(fn, calls) / calls, 1e-9)) + 1)
    return statistics.median(_loop_s(fn, calls) / calls for _ in range(loops))


def probe_cpu(calls: int = CALLS, loops: int = LOOPS, loop_s: float = LOOP_S) -> dict[str, float]:
    """Seconds per tiny torch call on CPU tensors (median of `loops` loops of at least `calls` calls and
    `loop_s` seconds each)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    a, b, c = torch.rand(8) + 1.0, torch.rand(8) + 1.0, torch.empty(8)
    lin = torch.nn.Linear(8, 8)
    x = torch.rand(1, 8)
    w, bias = lin.weight.detach(), lin.bias.detach()

    def nothing() -> None:
        return None

    with torch.no_grad():
        _per_call(lambda: a + b, calls, 2)  # warm-up: allocator caches, dispatcher paths
        op = _per_call(lambda: a + b, calls, loops, loop_s)
        inplace = _per_call(lambda: torch.add(a, b, out=c), calls, loops, loop_s)
        functional = _per_call(lambda: F.linear(x, w, bias), calls, loops, loop_s)
        module = _per_call(lambda: lin(x), calls, loops, loop_s)
    return {"cpu_op_s": op, "cpu_op_inplace_s": inplace, "cpu_linear_s": functional,
            "cpu_module_s": module - functional, "python_call_s": _per_call(nothing, calls * 10, loops, loop_s)}


def probe(cuda: bool = False) -> dict[str, Any]:
    """The probe document; with `cuda`, calibrate's CUDA host probe on cuda:0 beside it (same process)."""
    import torch

    t0 = time.perf_counter()
    doc: dict[str, Any] = {"schema": SCHEMA, **probe_cpu(),
                           "host": {"cpu": cpu_name(), "cpus": os.cpu_count(), "python": platform.python_version(),
                                    "torch": torch.__version__}}
    if cuda:
        from dsocr_trace.validate.calibrate import bench_host

        doc["cuda"] = bench_host(torch.device("cuda:0"))
        doc["cuda"]["gpu"] = torch.cuda.get_device_name(0)
    doc["elapsed_s"] = time.perf_counter() - t0
    return doc


def document_text(doc: dict[str, Any]) -> str:
    """The probe document as written to disk (sorted keys: the same probe gives the same layout)."""
    return json.dumps(doc, sort_keys=True, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dsocr_trace.validate.hostprobe", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output JSON file")
    ap.add_argument("--cuda", action="store_true", help="also run calibrate's CUDA host probe on cuda:0")
    ap.add_argument("--label", default=None, help="a name for this host setting (kept in the file)")
    args = ap.parse_args(argv)
    doc = probe(args.cuda)
    if args.label:
        doc["label"] = args.label
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(document_text(doc))
    print(f"cpu op {doc['cpu_op_s'] * 1e6:.2f} us" + (f", cuda op {doc['cuda']['host_op_s'] * 1e6:.2f} us"
                                                     if "cuda" in doc else "") + f" -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
