"""Property tests (hypothesis) of the analytic counts, the latency model, the Gundam grid rule and the replay.

Traced properties draw from a few distinct shapes (each new shape traces the meta model, ~0.5-2 s) and run
derandomized so the suite's time is stable; the pure properties (grid rule, replay) draw freely.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dsocr_trace.analyze import Analysis, load_model, run_analysis, trace_phase
from dsocr_trace.costs import NodeCosts, cost_trace
from dsocr_trace.hardware.profile import default_profile
from dsocr_trace.hardware.spec import load_device
from dsocr_trace.models.source import DEFAULT_MODEL
from dsocr_trace.plan import plan, run_plan, stage_predictions
from dsocr_trace.predict import replay
from dsocr_trace.report.aggregate import REPORT_STAGES, stage_totals
from dsocr_trace.request import predict_request
from dsocr_trace.trace.ir import Trace
from dsocr_trace.workload import MAX_CROPS, MIN_CROPS, MODES, gundam_grid, make_workload

SPEC = load_device("h100")
PROF = default_profile(SPEC)
EXECUTIONS = ("eager", "fused")
TRACED = settings(max_examples=8, deadline=None, database=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow])
PURE = settings(max_examples=300, deadline=None, database=None)
REL = 1e-9  # float slack for sums taken in a different order

# every grid the model accepts, by tile count
GRIDS = sorted({(w, h) for w in range(1, MAX_CROPS + 1) for h in range(1, MAX_CROPS + 1)
                if MIN_CROPS <= w * h <= MAX_CROPS}, key=lambda g: (g[0] * g[1], g))
# a few shapes per traced property, so hypothesis's pairs reuse the trace cache
PROMPTS = (1, 12, 33, 64)
BATCHES = (1, 2, 3, 4)
GUNDAM_GRIDS = ((2, 1), (1, 3), (2, 3), (3, 3))  # 2, 3, 6, 9 tiles; 2x3 is the session fixture's


# ---- helpers ----


def check_costs(costs: NodeCosts) -> None:
    for c in [*costs.eager, *costs.fused.values()]:
        if c is None:
            continue
        for v in (c.tc_flops, c.cc_flops, c.bytes_read, c.bytes_written):
            assert math.isfinite(v) and v >= 0, c
        assert c.kernels >= 0, c


def check_timed(tr: Trace, costs: NodeCosts, execution: str) -> dict[str, float]:
    """Plan and replay one phase; every time non-negative, stage walls summing to the phase wall."""
    items = plan(tr, costs, SPEC, PROF, execution)
    result, _ = run_plan(items, tr, execution, PROF)
    for it in items:
        assert it.device_s >= 0 and it.host_s >= 0, it
    assert result.wall_s >= 0 and result.host_s >= 0 and result.host_wait_s >= 0
    assert result.device_idle_s >= -REL * max(result.wall_s, 1e-12)
    stages = stage_predictions(items, result)
    for s in stages.values():
        assert s["device_s"] >= 0 and s["host_s"] >= 0 and s["wall_s"] >= 0
    assert sum(s["wall_s"] for s in stages.values()) == pytest.approx(result.wall_s, rel=1e-9)
    return {"device_s": sum(it.device_s for it in items), "wall_s": result.wall_s}


def totals(tr: Trace, costs: NodeCosts) -> dict[str, float]:
    st_ = stage_totals({tr.phase: tr}, {tr.phase: costs})
    for name, s in st_.items():
        for k, v in s.items():
            assert math.isfinite(v) and v >= 0, (name, k, v)
    return {k: sum(s[k] for s in st_.values()) for k in ("tc_flops", "cc_flops", "flops", "bytes", "kernels")}


@functools.cache
def prefill(mode: str, crops: tuple[int, int] | None, prompt_tokens: int, batch: int) -> dict[str, float]:
    """Prefill totals and predicted times of one shape (traced once per test session)."""
    wl = make_workload(mode, crops=f"{crops[0]}x{crops[1]}" if crops else None, prompt_tokens=prompt_tokens,
                       batch=batch, output_tokens=1)
    tr = trace_phase(load_model(DEFAULT_MODEL), DEFAULT_MODEL, wl, "prefill")
    costs = cost_trace(tr)
    check_costs(costs)
    out = totals(tr, costs)
    for ex in EXECUTIONS:
        out |= {f"{ex}.{k}": v for k, v in check_timed(tr, costs, ex).items()}
    return out


@functools.cache
def decode(batch: int, kv_len: int) -> dict[str, float]:
    """One decode step attending over kv_len cached positions."""
    wl = make_workload("base", batch=batch, output_tokens=1)
    tr = trace_phase(load_model(DEFAULT_MODEL), DEFAULT_MODEL, wl, "decode", kv_len=kv_len)
    costs = cost_trace(tr)
    check_costs(costs)
    out = totals(tr, costs)
    for ex in EXECUTIONS:
        out |= {f"{ex}.{k}": v for k, v in check_timed(tr, costs, ex).items()}
    return out


MONOTONE = ("tc_flops", "cc_flops", "flops", "bytes", "eager.device_s", "fused.device_s")


def assert_not_less(small: dict[str, float], large: dict[str, float], what: str) -> None:
    for k in MONOTONE:
        assert large[k] >= small[k] * (1 - REL), f"{k} decreases with {what}: {small[k]!r} -> {large[k]!r}"


# ---- valid workloads: no crash, nothing negative ----


@st.composite
def workloads(draw: st.DrawFn) -> dict[str, Any]:
    mode = draw(st.sampled_from(sorted(MODES)))
    kw: dict[str, Any] = {"mode": mode, "prompt_tokens": draw(st.sampled_from(PROMPTS)),
                          "batch": draw(st.sampled_from((1, 2))), "output_tokens": draw(st.sampled_from((1, 64)))}
    if mode == "gundam":
        if draw(st.booleans()):
            w, h = draw(st.sampled_from(GUNDAM_GRIDS))
            kw["crops"] = f"{w}x{h}"
        else:  # the page size picks the grid; a small page gets none
            kw["image_size"] = draw(st.sampled_from(("600x500", "1700x2200", "2200x1700", "1280x640")))
    return kw


@settings(TRACED, max_examples=5)
@given(workloads())
def test_any_valid_workload_costs_are_non_negative(kw: dict[str, Any]) -> None:
    a = run_analysis(DEFAULT_MODEL, make_workload(**kw))
    for phase, tr in a.traces.items():
        check_costs(a.costs[phase])
        for ex in EXECUTIONS:
            check_timed(tr, a.costs[phase], ex)
    st_ = stage_totals(a.traces, a.costs)
    assert set(st_) == set(REPORT_STAGES)
    assert st_["decoder.prefill"]["flops"] > 0 and st_["decode.step"]["flops"] > 0


@pytest.mark.parametrize("execution", EXECUTIONS)
def test_request_prediction_is_consistent(base_analysis: Analysis, execution: str) -> None:
    p = predict_request(base_analysis, SPEC, PROF, execution)
    r = p["request"]
    for k, v in r.items():
        if isinstance(v, int | float):
            assert math.isfinite(v) and v >= 0, (k, v)
    assert r["ttft_s"] > 0 and r["tpot_mean_s"] > 0
    # a faster host never makes a wall longer, a slower one never shorter; the prediction lies between
    band = r["wall_band"]
    for k in ("ttft_s", "tpot_mean_s", "e2e_s"):
        lo, hi = band[k]
        assert lo <= r[k] * (1 + REL) and r[k] <= hi * (1 + REL), (k, lo, r[k], hi)
    assert 0 <= r["decode_host_share"] <= 1
    assert r["e2e_s"] == pytest.approx(r["ttft_s"] + r["decode_s"])
    assert r["pages_per_s"] * r["e2e_s"] == pytest.approx(r["batch"])
    # decode steps only get longer as the KV cache grows
    assert r["tpot_first_s"] <= r["tpot_last_s"] * (1 + REL)
    for ph in p["phases"].values():
        assert ph["wall_s"] >= max(ph["device_s"], ph["host_s"]) * (1 - REL) or ph["host_wait_s"] > 0
    for rows in p["nodes"].values():
        for n in rows:
            assert n["device_s"] >= 0 and n["host_s"] >= 0 and n["end_s"] >= n["start_s"] >= 0


# ---- monotonicity: a workload vs its larger neighbour ----


@TRACED
@given(st.sampled_from(PROMPTS), st.sampled_from(PROMPTS))
def test_monotone_in_prompt_tokens(p1: int, p2: int) -> None:
    assume(p1 < p2)
    assert_not_less(prefill("tiny", None, p1, 1), prefill("tiny", None, p2, 1), f"prompt tokens {p1} -> {p2}")


@TRACED
@given(st.sampled_from(BATCHES), st.sampled_from(BATCHES))
def test_monotone_in_batch(b1: int, b2: int) -> None:
    assume(b1 < b2)
    assert_not_less(prefill("tiny", None, 12, b1), prefill("tiny", None, 12, b2), f"batch {b1} -> {b2}")


@TRACED
@given(st.sampled_from(GUNDAM_GRIDS), st.sampled_from(GUNDAM_GRIDS))
def test_monotone_in_gundam_tiles(g1: tuple[int, int], g2: tuple[int, int]) -> None:
    assume(g1[0] * g1[1] < g2[0] * g2[1])
    assert_not_less(prefill("gundam", g1, 12, 1), prefill("gundam", g2, 12, 1), f"tiles {g1} -> {g2}")


@settings(max_examples=6, deadline=None, database=None, derandomize=True)
@given(st.integers(1, 6000), st.integers(1, 2000), st.sampled_from((1, 2)))
def test_monotone_in_kv_len(kv: int, delta: int, batch: int) -> None:
    small, large = decode(batch, kv), decode(batch, kv + delta)
    assert_not_less(small, large, f"KV length {kv} -> {kv + delta} (batch {batch})")
    assert large["kernels"] == small["kernels"]  # the same op sequence at every KV length


def test_monotone_in_decode_batch() -> None:
    assert_not_less(decode(1, 1000), decode(3, 1000), "decode batch 1 -> 3")


# ---- the Gundam grid rule (pure) ----


@PURE
@given(st.integers(1, 16384), st.integers(1, 16384))
def test_gundam_grid_bounds(width: int, height: int) -> None:
    g = gundam_grid(width, height)
    if width <= 640 and height <= 640:
        assert g is None
        return
    assert g is not None
    w, h = g
    assert w >= 1 and h >= 1 and MIN_CROPS <= w * h <= MAX_CROPS
    # the closest aspect ratio among the allowed grids (ties broken towards more tiles)
    best = min(abs(width / height - i / j) for i, j in GRIDS)
    assert abs(width / height - w / h) == best
    # the workload built from that page size agrees
    wl = make_workload("gundam", image_size=f"{width}x{height}", output_tokens=1)
    assert wl.crops == g and wl.n_tiles == w * h


# ---- the two-lane replay (pure) ----

times = st.floats(0.0, 1e-2, allow_nan=False, allow_infinity=False)
items_no_sync = st.lists(st.tuples(times, times, st.just(False)), max_size=40)
items_any = st.lists(st.tuples(times, times, st.booleans()), max_size=40)


@PURE
@given(items_no_sync)
def test_replay_eager_without_syncs(items: list[tuple[float, float, bool]]) -> None:
    r = replay(items)
    host = sum(h for h, _, _ in items)
    dev = sum(d for _, d, _ in items)
    tol = 1e-9
    assert r.wall_s >= max(host, dev) - tol
    assert r.wall_s <= host + dev + tol
    assert r.host_s == pytest.approx(host, abs=tol) and r.host_wait_s == 0
    assert r.device_busy_s == pytest.approx(dev, abs=tol)
    # in-order stream: the last kernel ends at max over i of (host time to issue i + kernels i..n)
    cum, expect = 0.0, 0.0
    for i, (h, _, _) in enumerate(items):
        cum += h
        expect = max(expect, cum + sum(d for _, d, _ in items[i:]))
    assert r.wall_s == pytest.approx(max(host, expect), abs=tol)
    prev_end = 0.0
    for i, (_, d, _) in enumerate(items):
        assert r.start[i] >= r.issue[i] - tol and r.start[i] >= prev_end - tol
        assert r.end[i] - r.start[i] == pytest.approx(d, abs=tol)
        prev_end = r.end[i]
    assert r.device_idle_s == pytest.approx(r.wall_s - dev, abs=tol)
    assert sum(e - s for s, e in r.gaps) == pytest.approx(r.device_idle_s, abs=tol)


@PURE
@given(items_any)
def test_replay_eager_with_syncs(items: list[tuple[float, float, bool]]) -> None:
    r = replay(items)
    host = sum(h for h, _, _ in items)
    dev = sum(d for _, d, _ in items)
    tol = 1e-9
    assert max(host, dev) - tol <= r.wall_s <= host + dev + tol
    assert r.host_s == pytest.approx(host, abs=tol) and r.host_wait_s >= 0
    assert r.host_s + r.host_wait_s <= r.wall_s + tol
    for i, (_, _, sync) in enumerate(items):
        if sync:  # the host issues nothing more before this kernel is done
            assert all(r.issue[j] >= r.end[i] - tol for j in range(i + 1, len(items)))
    assert sum(e - s for s, e in r.gaps) == pytest.approx(r.device_idle_s, abs=tol)


@PURE
@given(items_any, st.floats(0.0, 1e-3), st.floats(0.0, 1e-5))
def test_replay_graph(items: list[tuple[float, float, bool]], launch: float, gap: float) -> None:
    r = replay(items, graph=True, graph_launch_s=launch, graph_kernel_s=gap)
    kernels = [d for _, d, _ in items if d > 0]
    expect = launch + sum(kernels) + gap * max(len(kernels) - 1, 0)
    assert r.wall_s == pytest.approx(expect, abs=1e-9)  # one launch, then kernels back to back
    assert r.host_s == launch  # the graph launch replaces every item's host time
    assert r.device_busy_s == pytest.approx(sum(kernels), abs=1e-9)
