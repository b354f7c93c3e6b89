"""What a calibration run becomes: the profile document (`dsocr-trace calibrate`), host costs from its eager
and CUDA-graph decode steps, and the in-model correction factors from its in-model runs.

The kernel-family models themselves are fitted from the document's sweep when a profile is loaded
(dsocr_trace.kernels); this module only turns measurements into the numbers the document stores.
"""

from __future__ import annotations

import statistics
from typing import Any

from dsocr_trace.hardware.profile import SCHEMA


def host_per_call(rows: list[tuple[int, int, int, float]]) -> float | None:
    """Host seconds per Python-level torch call, least squares through the origin over host-bound eager steps
    (calls launching kernels + calls launching none, measured wall). One cost per call: the model's own Python
    between calls is part of it, and the module-call and kernel/no-kernel terms move together in one model, so
    more terms would be fitted on collinear data."""
    pts = [(k + v, w) for k, v, _, w in rows if k + v > 0]
    if not pts:
        return None
    return sum(c * w for c, w in pts) / sum(c * c for c, _ in pts)


def graph_gap(rows: list[tuple[float, float, int]]) -> float | None:
    """Median per-kernel gap of CUDA-graph replays: (graph wall, eager kernel time, kernels) per step."""
    gaps = [(w - d) / k for w, d, k in rows if k > 0 and w > d]
    return statistics.median(gaps) if gaps else None


def profile_document(cal: dict[str, Any], device_key: str, host: list[tuple[int, int, int, float]],
                     graph: list[tuple[float, float, int]], command: str, elapsed_s: float) -> dict[str, Any]:
    """The profile file `dsocr-trace calibrate` writes (schema dsocr-trace/profile/2): what was measured, as
    measured. The latency model's kernel families are fitted from `sweep.points` when it is loaded."""
    dev = cal.get("device") or {}
    peaks = cal.get("peaks") or {}
    return {
        "schema": SCHEMA,
        "source": "calibrated",
        "device": device_key,
        "gpu": dev.get("name"), "sm_count": dev.get("sm_count"), "l2_bytes": dev.get("l2_bytes"),
        "memory_bytes": dev.get("memory_bytes"), "driver": dev.get("driver"), "torch": dev.get("torch"),
        "cuda": dev.get("cuda"), "transformers": dev.get("transformers"), "date": dev.get("date"),
        "host_cpu": dev.get("host_cpu"), "max_sm_clock": dev.get("max_sm_clock"),
        "command": command,
        "elapsed_s": elapsed_s,
        "peaks": {"tc_flops": peaks.get("tc_flops"), "mem_bw": peaks.get("mem_bw")},
        "probes": {k: cal.get(k) for k in ("launch_s", "graph_kernel_s", "host_op_s", "host_op_inplace_s",
                                            "host_linear_s", "host_module_s")},
        "host": {"per_call_s": host_per_call(host), "graph_kernel_s": graph_gap(graph),
                 "fitted_on": {"eager_decode_steps": [list(r) for r in host],
                               "graph_decode_steps": [list(r) for r in graph]}},
        "microbench": {k: cal.get(k, []) for k in ("gemm", "memory")},
        "sweep": cal.get("sweep") or {"points": {}, "errors": {}, "workloads": []},
        "errors": cal.get("errors") or {},
    }
