"""Sweep throughput once traces are cached: every round re-costs each (trace, device, execution) from the
cached device-independent arrays (the per-device pricing cache is cleared before each round).

Run: python -m pytest benchmarks/test_sweep_speed.py --benchmark-enable -q
"""

from __future__ import annotations

from typing import Any

import pytest

from dsocr_trace import sweep
from dsocr_trace.models.source import DEFAULT_MODEL

MODES = "tiny,small,base,large,gundam:2x3"
DEVICES = "rtx5090,h100,h200"
BATCH = "1,8"
TOKENS = "500,1000,2000"
EXECUTION = "eager,fused"


def _run() -> list[dict[str, Any]]:
    return sweep.run_sweep(DEFAULT_MODEL, MODES, DEVICES, BATCH, TOKENS, EXECUTION)


def test_sweep_points_per_second(benchmark: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _run()  # traces, costs and plan arrays: built once, kept across rounds
    points = len(rows)
    assert points == 5 * 3 * 2 * 3 * 2

    result = benchmark.pedantic(_run, setup=sweep.clear_pricing, rounds=20, iterations=1, warmup_rounds=1)
    assert len(result) == points
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable: ran once, nothing measured
        return
    mean = stats.stats.mean
    best = stats.stats.min
    benchmark.extra_info["points"] = points
    benchmark.extra_info["points_per_s_mean"] = points / mean
    benchmark.extra_info["points_per_s_best"] = points / best
    with capsys.disabled():
        print(f"\nsweep re-costing: {points} points, mean {mean * 1e3:.1f} ms -> {points / mean:,.0f} points/s "
              f"(best {best * 1e3:.1f} ms -> {points / best:,.0f} points/s)")
