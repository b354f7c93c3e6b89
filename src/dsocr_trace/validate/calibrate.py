"""Microbenchmarks that calibrate the latency model on the local device (cuda:0 by default).

Timing: warm-up, then CUDA events around batches of calls (batch sized to ~1 ms, at least one call), median of
several batches. Inputs are random (never zeros). Each benchmark cycles through several input sets whose
total size exceeds twice the L2 cache, so memory-bound and small-M GEMMs read from HBM as in the model, where
every layer's weights are distinct.

Output JSON (stdlib json, sorted keys)::

    {"schema": "dsocr-trace/calibration/1",
     "device": {... as the harness ...},
     "gemm": [{"m", "n", "k", "seconds", "tflops"}],                         # bf16 x @ W^T (F.linear)
     "memory": [{"op", "bytes", "size", "seconds", "gbs", "contiguous"}],   # bytes = read + written
     "launch_s",        # per tiny kernel back to back on a busy stream (eager launches, GPU side)
     "graph_kernel_s",  # per tiny kernel inside a CUDA graph replay of 100 of them
     "host_op_s",       # host (Python + dispatcher) cost per tiny allocating aten op, issued without syncs
     "host_op_inplace_s",  # same with out= (no allocation)
     "host_module_s",   # extra host cost of an nn.Linear module call over F.linear
     "peaks": {"tc_flops", "mem_bw"},   # max measured GEMM FLOP/s, max measured copy/clone B/s
     "elapsed_s"}

Run: `python -m dsocr_trace.validate.calibrate --out FILE [--quick] [--device cuda|cpu]`.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from dsocr_trace.validate.harness import _clean, log
from dsocr_trace.validate.partition import make_current
from dsocr_trace.validate.random_model import device_info

SCHEMA = "dsocr-trace/calibration/1"
GEMM_M = (1, 8, 64, 256, 1024, 4096, 16384)
GEMM_NK = ((1280, 1280), (6848, 1280), (1280, 6848), (1792, 1280), (1280, 1792), (2304, 768), (768, 768),
           (3072, 768), (768, 3072), (3072, 1024), (1024, 1024), (4096, 1024), (1024, 4096), (1280, 2048),
           (129280, 1280))
EXPERTS, TOPK, HIDDEN, MOE_I = 64, 6, 1280, 896
MEM_SIZES = tuple(4096 * 4 ** i for i in range(10))  # 4 KiB .. 1 GiB
ROTATE_BYTES = 128 << 20  # > 2x H100 L2 (50 MB)
MAX_SET_BYTES = 3 << 30  # cap on the rotated input sets of one benchmark


HOST_ISSUE_S = 40e-6  # generous host time to issue one benchmarked call (Python + dispatch + launch)
SLEEP_CYCLES_PER_S = 2.0e9  # torch.cuda._sleep counts GPU clock cycles (~2 GHz on data-center parts)


class Bench:
    """Timer bound to a device: CUDA events on GPU, perf_counter on CPU (smoke runs)."""

    def __init__(self, device: torch.device, reps: int = 5, batch_target_s: float = 1e-3) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.reps = reps
        self.batch_target_s = batch_target_s

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def _batch(self, fn: Callable[[int], Any], start: int, count: int) -> float:
        if self.cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            # Keep the GPU busy while the host queues the batch, so the events time the kernels back to back
            # and not the host's launch rate (small kernels finish faster than Python can issue them).
            torch.cuda._sleep(int(min(count * HOST_ISSUE_S, 0.05) * SLEEP_CYCLES_PER_S))
            a.record()
            for i in range(start, start + count):
                fn(i)
            b.record()
            b.synchronize()
            return a.elapsed_time(b) / 1e3
        t0 = time.perf_counter()
        for i in range(start, start + count):
            fn(i)
        return time.perf_counter() - t0

    def __call__(self, fn: Callable[[int], Any]) -> float:
        """Median seconds per call of fn(i); i cycles so callers can rotate buffers."""
        fn(0)
        self.sync()
        one = self._batch(fn, 1, 1)
        one = min(one, self._batch(fn, 2, 1))
        inner = max(1, min(200, int(self.batch_target_s / max(one, 1e-7))))
        times = [self._batch(fn, 3 + r * inner, inner) / inner for r in range(self.reps)]
        return statistics.median(times)


def _rand(shape: tuple[int, ...], device: torch.device, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return (torch.rand(shape, device=device, dtype=torch.float32) * 2 - 1 + 1e-3).to(dtype)


def _n_sets(set_bytes: int) -> int:
    if set_bytes <= 0:
        return 1
    n = max(1, math.ceil(ROTATE_BYTES / set_bytes))
    return max(1, min(n, 64, MAX_SET_BYTES // set_bytes))


def bench_gemm(bench: Bench, device: torch.device, ms: tuple[int, ...], nks: tuple[tuple[int, int], ...],
               max_out_bytes: int) -> list[dict[str, Any]]:
    out = []
    for n, k in nks:
        for m in ms:
            if m * n * 2 > max_out_bytes:
                continue
            sets = _n_sets(2 * (m * k + n * k))
            xs = [_rand((m, k), device) for _ in range(sets)]
            ws = [_rand((n, k), device) for _ in range(sets)]
            def run(i: int, xs: list[torch.Tensor] = xs, ws: list[torch.Tensor] = ws) -> torch.Tensor:
                return F.linear(xs[i % len(xs)], ws[i % len(ws)])

            sec = bench(run)
            flops = 2.0 * m * n * k
            out.append({"m": m, "n": n, "k": k, "seconds": sec, "tflops": flops / sec / 1e12})
            del xs, ws
    return out


def _grouped_mm_fn() -> Callable[..., torch.Tensor] | None:
    fn = getattr(F, "grouped_mm", None) or getattr(torch, "_grouped_mm", None)
    return fn


def _mem_cases(size: int, device: torch.device) -> list[tuple[str, int, bool, Callable[[], Callable[[int], Any]]]]:
    """(op, bytes moved, contiguous, factory of fn(i)) for one input size in bytes (bf16)."""
    n = max(1, size // 2)
    rows = max(1, n // 1024)
    cols = n // rows

    def rot(make: Callable[[], Any], set_bytes: int) -> list[Any]:
        return [make() for _ in range(_n_sets(set_bytes))]

    def f_copy() -> Callable[[int], Any]:
        xs = rot(lambda: (_rand((n,), device), torch.empty(n, device=device, dtype=torch.bfloat16)), 2 * size)
        return lambda i: xs[i % len(xs)][1].copy_(xs[i % len(xs)][0])

    def f_clone() -> Callable[[int], Any]:
        xs = rot(lambda: _rand((n,), device), size)
        return lambda i: xs[i % len(xs)].clone()

    def f_add() -> Callable[[int], Any]:
        xs = rot(lambda: (_rand((n,), device), _rand((n,), device)), 2 * size)
        return lambda i: xs[i % len(xs)][0] + xs[i % len(xs)][1]

    def f_mul() -> Callable[[int], Any]:
        xs = rot(lambda: (_rand((n,), device), _rand((n,), device)), 2 * size)
        return lambda i: xs[i % len(xs)][0] * xs[i % len(xs)][1]

    def f_permute() -> Callable[[int], Any]:
        a = max(1, rows // 16) if rows >= 16 else 1
        b_ = max(1, rows // a)
        xs = rot(lambda: _rand((a, b_, cols), device), size)
        return lambda i: xs[i % len(xs)].permute(0, 2, 1).contiguous()

    w = max(2, round((size / 24) ** 0.25))  # (1,12,T,W,1) + (1,12,T,1,W) -> (1,12,T,W,W) with T = W*W

    def f_bcast() -> Callable[[int], Any]:
        xs = rot(lambda: (_rand((1, 12, w * w, w, 1), device), _rand((1, 12, w * w, 1, w), device)),
                 2 * 12 * w ** 3 * 2)
        return lambda i: xs[i % len(xs)][0] + xs[i % len(xs)][1]

    def f_softmax() -> Callable[[int], Any]:
        xs = rot(lambda: _rand((rows, cols), device), size)
        return lambda i: torch.softmax(xs[i % len(xs)], dim=-1)

    def f_layernorm() -> Callable[[int], Any]:
        xs = rot(lambda: _rand((rows, cols), device), size)
        wt = _rand((cols,), device)
        return lambda i: F.layer_norm(xs[i % len(xs)], (cols,), wt, wt)

    def f_sum() -> Callable[[int], Any]:
        xs = rot(lambda: _rand((rows, cols), device), size)
        return lambda i: xs[i % len(xs)].sum(dim=-1)

    bc_out = 12 * w ** 4 * 2
    return [("copy", 2 * size, True, f_copy), ("clone", 2 * size, True, f_clone), ("add", 3 * size, True, f_add),
            ("mul", 3 * size, True, f_mul), ("permute_contiguous", 2 * size, False, f_permute),
            ("broadcast_add", bc_out + 2 * 12 * w ** 3 * 2, False, f_bcast),
            ("softmax", 2 * size, True, f_softmax), ("layer_norm", 2 * size, True, f_layernorm),
            ("sum", size + 2 * rows, True, f_sum)]


def bench_memory(bench: Bench, device: torch.device, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    out = []
    for size in sizes:
        for op, moved, contig, factory in _mem_cases(size, device):
            try:
                fn = factory()
                sec = bench(fn)
                out.append({"op": op, "size": size, "bytes": moved, "contiguous": contig, "seconds": sec,
                            "gbs": moved / sec / 1e9})
            except Exception as exc:
                out.append({"op": op, "size": size, "bytes": moved, "contiguous": contig,
                            "error": f"{type(exc).__name__}: {exc}"[:300]})
            fn = None  # type: ignore[assignment]
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def bench_launch(device: torch.device, n: int = 100) -> dict[str, Any]:
    """Per-kernel floor of eager launches (busy stream) and of kernels inside a CUDA graph."""
    res: dict[str, Any] = {"launch_s": None, "graph_kernel_s": None}
    if device.type != "cuda":
        return res
    a = torch.rand(1, device=device) + 1.0
    b = torch.rand(1, device=device) + 1.0
    c = torch.empty(1, device=device)
    eager = []
    for _ in range(5):
        torch.cuda.synchronize(device)
        torch.cuda._sleep(2_000_000)  # keeps the GPU busy while the launches queue up
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        for _ in range(n):
            torch.add(a, b, out=c)
        e1.record()
        e1.synchronize()
        eager.append(e0.elapsed_time(e1) / 1e3 / n)
    res["launch_s"] = statistics.median(eager)
    try:
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):
                torch.add(a, b, out=c)
        torch.cuda.current_stream(device).wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(n):
                torch.add(a, b, out=c)
        g.replay()
        torch.cuda.synchronize(device)
        times = []
        for _ in range(10):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            g.replay()
            e1.record()
            e1.synchronize()
            times.append(e0.elapsed_time(e1) / 1e3 / n)
        res["graph_kernel_s"] = statistics.median(times)
    except Exception as exc:
        res["graph_error"] = f"{type(exc).__name__}: {exc}"[:500]
    return res


def bench_host(device: torch.device, n: int = 500) -> dict[str, float]:
    """Host seconds per tiny op (no syncs inside the loop) and extra cost of an nn.Module call."""
    a = torch.rand(8, device=device) + 1.0
    b = torch.rand(8, device=device) + 1.0
    c = torch.empty(8, device=device)
    lin = torch.nn.Linear(8, 8, device=device)
    x = torch.rand(1, 8, device=device)
    w, bias = lin.weight.detach(), lin.bias.detach()

    def loop(fn: Callable[[], Any]) -> float:
        vals = []
        for _ in range(7):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            vals.append((time.perf_counter() - t0) / n)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return statistics.median(vals)

    with torch.no_grad():
        loop(lambda: a + b)  # warm-up
        op = loop(lambda: a + b)
        op_inplace = loop(lambda: torch.add(a, b, out=c))
        functional = loop(lambda: F.linear(x, w, bias))
        module = loop(lambda: lin(x))
    return {"host_op_s": op, "host_op_inplace_s": op_inplace, "host_linear_s": functional,
            "host_module_s": module - functional}


def run_sweep_points(device: torch.device, quick: bool = False, model_id: str | None = None,
                     log_fn: Callable[[str], None] = log) -> dict[str, Any]:
    """The fixed calibration sweep (validate.calsweep: inference workloads and training steps) timed by the
    operator benchmark: {"schema", "workloads", "points": {key: spec + seconds + kernels}, "errors",
    "elapsed_s"}. `quick` keeps every 4th inference spec and skips the training sweep (its meta tracing of
    backward steps takes a quarter of the spec build): a quick profile prices training from inference kernels."""
    from dsocr_trace.validate import calsweep, opbench

    t0 = time.perf_counter()
    sweep = calsweep.build_sweep(model_id or calsweep.MODEL)
    ops = dict(sweep["ops"])
    if not quick:
        train = calsweep.build_train_sweep(model_id or calsweep.MODEL)  # backward, recompute, optimizer kernels
        ops = {**train["ops"], **ops}
        sweep["workloads"] = sweep["workloads"] + train["workloads"]
    if quick:
        ops = {k: v for i, (k, v) in enumerate(ops.items()) if i % 4 == 0 and opbench._spec_bytes(v, 1) < 64e6}
    log_fn(f"sweep: {len(ops)} op specs built in {time.perf_counter() - t0:.1f} s")
    res = opbench.run(ops, device, reps=3 if device.type == "cpu" else 5, log_every=500)
    points = {k: {**ops[k], "seconds": t, "kernels": res["kernels"].get(k, [])} for k, t in res["times"].items()}
    return {"schema": sweep["schema"], "workloads": sweep["workloads"], "points": dict(sorted(points.items())),
            "errors": res["errors"], "elapsed_s": time.perf_counter() - t0, "method": res["method"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dsocr_trace.validate.calibrate", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output JSON file")
    ap.add_argument("--quick", action="store_true", help="fewer shapes (smoke runs)")
    ap.add_argument("--device", default="cuda:0", help="cuda:0 (default) or cpu (smoke test only)")
    ap.add_argument("--no-sweep", action="store_true", help="microbenchmarks only (no operator sweep)")
    args = ap.parse_args(argv)
    return measure_calibration(Path(args.out), quick=args.quick, device_name=args.device, sweep=not args.no_sweep)


def measure_calibration(out: Path, quick: bool = False, device_name: str = "cuda:0", sweep: bool = True) -> int:
    """The microbenchmarks (host, launch, GEMM, grouped GEMM, attention, conv, memory) and, with `sweep`, the
    fixed operator sweep, into the JSON file `out` (rewritten after each step). 2 when CUDA is missing."""
    device = torch.device(device_name)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available: pass --device cpu for a smoke run", file=sys.stderr)
        return 2
    cpu = device.type == "cpu"
    if not cpu:
        make_current(device)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    bench = Bench(device, reps=3 if cpu else 5, batch_target_s=0.02 if cpu else 1e-3)
    doc: dict[str, Any] = {"schema": SCHEMA, "device": device_info(device)}
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        doc["elapsed_s"] = time.perf_counter() - t0
        with open(out, "w") as f:
            json.dump(_clean(doc), f, sort_keys=True, indent=1)

    small = cpu or quick
    ms = (1, 64, 1024) if cpu else ((1, 64, 1024, 16384) if quick else GEMM_M)
    nks = GEMM_NK[:3] if cpu else GEMM_NK
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("host", lambda: doc.update(bench_host(device))),
        ("launch", lambda: doc.update(bench_launch(device))),
        ("gemm", lambda: doc.__setitem__("gemm", bench_gemm(bench, device, ms, nks, 1 << 28 if cpu else 5 << 30))),
        ("memory", lambda: doc.__setitem__("memory", bench_memory(bench, device, MEM_SIZES[:4] if cpu else (
            MEM_SIZES[::2] if quick else MEM_SIZES)))),
    ]
    if sweep:
        steps.append(("sweep", lambda: doc.__setitem__("sweep", run_sweep_points(device, small))))
    for name, fn in steps:
        ts = time.perf_counter()
        try:
            fn()
        except Exception as exc:
            doc.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"[:1000]
            log(f"{name} FAILED: {doc['errors'][name][:300]}")
        log(f"{name} done in {time.perf_counter() - ts:.1f} s")
        save()
    gemm_ok = [g["tflops"] * 1e12 for g in doc.get("gemm", []) if "tflops" in g]
    bw_ok = [m["gbs"] * 1e9 for m in doc.get("memory", []) if m.get("op") in ("copy", "clone") and "gbs" in m]
    doc["peaks"] = {"tc_flops": max(gemm_ok, default=None), "mem_bw": max(bw_ok, default=None)}
    save()
    pk = doc["peaks"]
    log(f"wrote {out} in {time.perf_counter() - t0:.1f} s: peak GEMM "
        f"{(pk['tc_flops'] or 0) / 1e12:.0f} TFLOP/s, peak copy {(pk['mem_bw'] or 0) / 1e9:.0f} GB/s, "
        f"launch {doc.get('launch_s')}, graph kernel {doc.get('graph_kernel_s')}, host op {doc.get('host_op_s'):.2e} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
