"""GPUs carved out of one card: CUDA green contexts give a thread an SM partition of the device without changing
any device setting, so one lent H200 yields GPUs of other compute-to-bandwidth balances to validate on (fewer SMs
lower the tensor rate in proportion and the reachable DRAM bandwidth less than in proportion).

`run_in_partition(sms, fn)` runs `fn()` in a thread whose current context is a green context of `sms` SMs. The
harnesses call `make_current(device)` instead of `torch.cuda.set_device`, which would make the primary (full)
context current again; `probe()` checks with a matmul inside the partition that it took. `measure_figures()`
measures what a spec needs beside its datasheet (the few figures a public benchmark gives): large BF16 matmul
FLOP/s, large copy bandwidth, the per-kernel floor and the host cost per call.

Run (on the GPU machine): `python -m dsocr_trace.validate.partition --sms 32 --out DIR [--sweep] [--workloads W
--decode D]`: DIR/figures.json, with --sweep DIR/calibration.json (the quick operator sweep timed inside the
partition) and with --workloads DIR/measured.json (the harness inside the partition).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from dsocr_trace.hardware.spec import DeviceSpec, GpuFigures

T = TypeVar("T")
# the SM count of the green context the calling thread runs in (None: the whole device)
_ACTIVE: dict[int, int] = {}


def active_sms() -> int | None:
    """SMs of the partition the calling thread runs in, None outside one."""
    return _ACTIVE.get(threading.get_ident())


def make_current(device: torch.device) -> None:
    """torch.cuda.set_device, except inside a partition (it would make the full card's context current)."""
    if device.type == "cuda" and active_sms() is None:
        torch.cuda.set_device(device)


def run_in_partition(sms: int | None, fn: Callable[[], T], device_id: int = 0) -> T:
    """fn() in a thread whose current CUDA context is a green context of `sms` SMs (sms None: the full card,
    in the calling thread). Exceptions of fn propagate."""
    if sms is None:
        return fn()
    from torch.cuda import green_contexts as gc

    result: list[Any] = []
    error: list[BaseException] = []

    def worker() -> None:
        try:
            torch.cuda.init()
            ctx = gc.GreenContext.create(num_sms=sms, device_id=device_id)
            ctx.set_context()  # type: ignore[attr-defined]
            _ACTIVE[threading.get_ident()] = sms
            result.append(fn())
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)
        finally:
            _ACTIVE.pop(threading.get_ident(), None)

    t = threading.Thread(target=worker, name=f"partition-{sms}")
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]  # type: ignore[no-any-return]


def events_s(fn: Callable[[], Any], n: int) -> float:
    """Median seconds of fn() over n timed runs (CUDA events on the current stream), after 3 warm-ups."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(n):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b) / 1e3)
    return statistics.median(out)


def matmul_tflops(side: int = 8192, n: int = 10) -> float:
    """Dense BF16 matmul rate (TFLOP/s) at side^3 on random data."""
    x = torch.randn(side, side, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(side, side, device="cuda", dtype=torch.bfloat16)
    s = events_s(lambda: x @ w, n)
    return 2.0 * side**3 / s / 1e12


def copy_gbs(nbytes: int = 1 << 30, n: int = 10) -> float:
    """Device-to-device copy bandwidth (GB/s, bytes read + written) of a large buffer."""
    src = torch.randint(0, 255, (nbytes,), device="cuda", dtype=torch.uint8)
    dst = torch.empty_like(src)
    s = events_s(lambda: dst.copy_(src), n)
    return 2.0 * nbytes / s / 1e9


def probe(sms: int | None) -> dict[str, Any]:
    """A small matmul inside the partition: its rate tells whether the partition took (a full-card rate inside
    a 32-SM context means the primary context was made current again)."""
    return {"sms": sms, "matmul_4096_tflops": matmul_tflops(4096, 5)}


def measure_figures() -> dict[str, Any]:
    """The figures a spec needs beside its datasheet, measured on the current context's SMs."""
    from dsocr_trace.validate.calibrate import bench_host, bench_launch

    dev = torch.device("cuda", torch.cuda.current_device())
    t0 = time.perf_counter()
    out: dict[str, Any] = {"matmul_8192_tflops": matmul_tflops(8192), "matmul_4096_tflops": matmul_tflops(4096),
                           "copy_gbs": copy_gbs()}
    out.update(bench_launch(dev))
    out.update(bench_host(dev))
    out["elapsed_s"] = time.perf_counter() - t0
    return out


def gpu_figures_of(record: dict[str, Any], spec: DeviceSpec) -> GpuFigures:
    """The cross-GPU model's figures (hardware.spec.GpuFigures) of a figures.json record, for `spec` (the card
    or partition it was measured on: SMs, clock and datasheet rate come from the spec)."""
    f = record["figures"]
    return GpuFigures(f["matmul_8192_tflops"] * 1e12, f["copy_gbs"] * 1e9, spec.sm_count, spec.boost_clock_hz,
                      f["launch_s"], spec.tc_flops, spec.reported_sms)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dsocr_trace.validate.partition", description=__doc__.split("\n")[0])
    ap.add_argument("--sms", type=int, default=None, help="SMs of the partition (default: the full card)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--sweep", action="store_true", help="also time the quick operator sweep inside the partition")
    ap.add_argument("--workloads", default=None, help="harness prefill workloads (mode[:WxH][@batch][+pN],...)")
    ap.add_argument("--decode", default="", help="harness decode points 'B:KV,KV;B:KV'")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("CUDA is not available: run this on the GPU machine", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def work() -> int:
        from dsocr_trace.validate import calibrate, harness, random_model

        t0 = time.perf_counter()
        doc: dict[str, Any] = {"schema": "dsocr-trace/partition/1", "sms": args.sms,
                               "device": random_model.device_info(torch.device("cuda", 0)), "probe": probe(args.sms)}
        doc["figures"] = measure_figures()
        (out / "figures.json").write_text(json.dumps(harness._clean(doc), sort_keys=True, indent=1))
        harness.log(f"partition {args.sms}: figures {doc['figures']['matmul_8192_tflops']:.0f} TFLOP/s, "
                    f"{doc['figures']['copy_gbs']:.0f} GB/s in {time.perf_counter() - t0:.1f} s")
        rc = 0
        if args.sweep:
            rc |= calibrate.measure_calibration(out / "calibration.json", quick=True)
        if args.workloads is not None:
            rc |= harness.measure_workloads(out, harness.HarnessOptions(
                modes=args.workloads, decode=args.decode, trace="none", no_graph=True))
        return rc

    return run_in_partition(args.sms, work)


if __name__ == "__main__":
    # run through the imported module: `python -m` makes this file __main__, a second module whose partition
    # state (_ACTIVE) the harnesses, which import dsocr_trace.validate.partition, would not see
    from dsocr_trace.validate import partition

    sys.exit(partition.main())
