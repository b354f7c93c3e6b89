"""Diagnostics of fused AdamW on a GPU (benchmarks/results/h200-optimizer-ops), over 118 tensors of 23M bf16
elements:

* states: one call's time (CUDA events, median of 5) with second moments zero, |randn| and randn (sqrt of a
  negative moment is NaN). Measured on an H200: 14.08, 14.17 and 21.45 ms.
* events: how torch.profiler attributes the call's kernels. Kineto lists them under an "Activity Buffer Request"
  child as well, so summing an event's kernels and its children's counts them twice (27.4 vs 13.7 ms; CUDA
  events 14.1 ms); opbench.kernel_us skips that child (validate/events.py).

    python benchmarks/validation/fused_adamw_diagnostics.py [states|events]      (GPU machine; both by default)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch

from dsocr_trace.validate.partition import events_s

TENSORS, NUMEL = 118, 23_000_000


def adamw_call(kind: str) -> Callable[[], None]:
    """A fused AdamW step over fresh lists whose second moments are `kind` (zeros, abs, randn)."""
    dev = torch.device("cuda")
    ps = [torch.randn(NUMEL, device=dev, dtype=torch.bfloat16) for _ in range(TENSORS)]
    gs = [torch.randn_like(p) for p in ps]
    ms = [torch.zeros_like(p) if kind == "zeros" else torch.randn_like(p) for p in ps]
    vs = [torch.zeros_like(p) if kind == "zeros" else torch.randn_like(p) for p in ps]
    if kind == "abs":
        vs = [t.abs_() for t in vs]
    steps = [torch.ones((), device=dev) for _ in ps]

    def call() -> None:
        torch._fused_adamw_(ps, gs, ms, vs, [], steps, lr=1e-5, beta1=0.9, beta2=0.999, weight_decay=0.0,
                            eps=1e-8, amsgrad=False, maximize=False)
    for _ in range(3):
        call()
    torch.cuda.synchronize()
    return call


def states() -> None:
    for kind in ("zeros", "randn", "abs"):
        print(f"{kind}: {events_s(adamw_call(kind), 5) * 1e3:.2f} ms")
        torch.cuda.empty_cache()


def events() -> None:
    from torch.profiler import ProfilerActivity, profile, record_function

    from dsocr_trace.validate.opbench import kernel_us

    call = adamw_call("zeros")
    print(f"cuda events: {events_s(call, 1) * 1e3:.3f} ms")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        with record_function("op|adamw|0"):
            call()
        torch.cuda.synchronize()

    def walk(ev: Any, depth: int) -> None:
        ks = list(ev.kernels)
        if ks or not ev.name.startswith("cuda"):
            print("  " * depth + f"{ev.name}: {len(ks)} kernels, {sum(k.duration for k in ks) / 1e3:.3f} ms")
        for ch in ev.cpu_children:
            walk(ch, depth + 1)

    for ev in prof.events():
        if ev.name.startswith("op|") and ev.cpu_parent is None and ev.device_type.name == "CPU":
            walk(ev, 0)
            print(f"opbench.kernel_us (profiler bookkeeping events skipped): {kernel_us(ev) / 1e3:.3f} ms")


if __name__ == "__main__":
    which = sys.argv[1:] or ["states", "events"]
    for w in which:
        {"states": states, "events": events}[w]()
