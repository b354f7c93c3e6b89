"""The vectorized pricing and replay agree with the scalar kernel_time / replay, and the sweep built on them
gives the rows the scalar sweep gives."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from attrs import evolve

from dsocr_trace import sweep
from dsocr_trace.analyze import Analysis, run_analysis
from dsocr_trace.costs import Cost
from dsocr_trace.hardware.profile import GemmEntry, Profile, default_profile, packaged_profile, transfer_profile
from dsocr_trace.hardware.spec import DeviceSpec, load_device
from dsocr_trace.models.source import DEFAULT_MODEL
from dsocr_trace.plan import plan, run_plan, uses_graph
from dsocr_trace.predict import kernel_time, replay
from dsocr_trace.request import fit_decode
from dsocr_trace.trace.opkey import op_key
from dsocr_trace.vectorized import arrays_of, device_times, plan_arrays, replay_ends, replay_wall, replay_walls
from dsocr_trace.workload import MAX_POSITIONS, make_workload

RTOL = 1e-9


def _calibrated(analysis: Analysis) -> tuple[DeviceSpec, Profile]:
    """A calibrated-style profile made on an H100, used for an RTX 5090: other peaks and host costs, measured
    GEMMs, and operator-benchmark times for a few ops (rescaled across devices by the scalar path)."""
    spec = load_device("rtx5090")
    base = default_profile(load_device("h100"))
    keyed = [n for n, c in zip(analysis.traces["prefill"].nodes, analysis.costs["prefill"].eager, strict=True)
             if c is not None and c.kernels > 0 and op_key(n) is not None]
    op_table = {k: 3e-5 * (i + 1) for i, n in enumerate(keyed[:: max(1, len(keyed) // 7)])
                if (k := op_key(n)) is not None}
    gemms = (GemmEntry(1, 1280, 1280, 9e-6), GemmEntry(64, 4096, 1280, 2.2e-5), GemmEntry(1024, 1024, 1024, 3e-5),
             GemmEntry(4096, 4096, 4096, 2.4e-4), GemmEntry(256, 129280, 1280, 4e-4), GemmEntry(2, 2, 2, 1e-6))
    prof = evolve(base, source="calibrated:test.json", tc_flops=base.tc_flops * 0.8, mem_bw=base.mem_bw * 0.9,
                  launch_s=2.5e-6, strided_penalty=0.5, host_view_s=3e-6, launch_host_s=5e-6, gemm_table=gemms,
                  op_table=op_table)
    return spec, transfer_profile(prof, load_device("h100"), spec)


def _device(name: str, analysis: Analysis) -> tuple[DeviceSpec, Profile]:
    if name == "calibrated":
        return _calibrated(analysis)
    if name.startswith("packaged-"):  # the shipped H100 measurements (op table, GEMMs), H200 transferred
        spec = load_device(name.removeprefix("packaged-"))
        return spec, packaged_profile(spec)
    spec = load_device(name)
    return spec, default_profile(spec)


@pytest.mark.parametrize("execution", ["eager", "fused"])
@pytest.mark.parametrize("device", ["h100", "rtx5090", "calibrated", "packaged-h100", "packaged-h200"])
def test_device_times_match_kernel_time(base_analysis: Analysis, device: str, execution: str) -> None:
    spec, prof = _device(device, base_analysis)
    for phase in ("prefill", "decode"):
        tr, costs = base_analysis.traces[phase], base_analysis.costs[phase]
        items = plan(tr, costs, spec, prof, execution)
        pa = plan_arrays(items, tr, costs, execution)
        got = device_times(pa.arrays, spec, prof)
        want = np.array([it.device_s for it in items])
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)
        np.testing.assert_array_equal(pa.hosts.host(prof), [it.host_s for it in items])
        # and the whole phase replays to the same wall
        result, _ = run_plan(items, tr, execution, prof)
        sync = pa.sync.copy()
        if phase == "decode":
            sync[-1] = True
        wall = replay_wall(pa.hosts.host(prof), got, sync, uses_graph(tr, execution), prof.graph_launch_s,
                           prof.graph_kernel_s)
        assert wall == pytest.approx(result.wall_s, rel=RTOL)
    if device == "calibrated":  # the table paths were exercised
        sources = {it.time.source for it in plan(base_analysis.traces["prefill"], base_analysis.costs["prefill"],
                                                 spec, prof, execution) if it.time is not None}
        assert "measured-gemm" in sources
        if execution == "eager":
            assert "measured-op" in sources


def test_device_times_edge_costs() -> None:
    """Branches real traces do not reach: dtype peaks, free ops, multi-kernel floors, GEMMs without m/n/k."""
    spec = load_device("h100")
    costs: list[Cost | None] = [
        None,
        Cost(kind="view", kernels=0, bytes_read=1e6),
        Cost(kind="sync", kernels=1, bytes_read=4),
        Cost(kind="elementwise", kernels=0, cc_flops=1e6),
        Cost(kind="gemm", tc_flops=2e12, bytes_read=3e8, shape={"m": 8192, "n": 8192, "k": 8192, "dtype": "fp8"}),
        Cost(kind="gemm", tc_flops=2e12, bytes_read=3e8, shape={"m": 8192, "n": 8192, "k": 8192,
                                                                 "dtype": "float32"}),
        Cost(kind="gemm", tc_flops=2e9, bytes_read=3e6, shape={"dtype": "mystery"}),
        Cost(kind="gemm", tc_flops=2e9, bytes_read=3e6, shape={"m": 0, "n": 8, "k": 8}),
        Cost(kind="gemm", tc_flops=2e9, bytes_read=3e6, shape={"m": "x", "n": 8, "k": 8}),
        Cost(kind="attention", tc_flops=1e10, cc_flops=1e9, bytes_read=1e7, kernels=3),
        Cost(kind="copy", bytes_read=1e3, bytes_written=1e3, kernels=4, shape={"contiguous": False}),
        Cost(kind="elementwise", cc_flops=1e8, bytes_read=1e9, shape={"broadcast": True}),
        Cost(kind="reduction", cc_flops=1e12, bytes_read=1.0),
        Cost(kind="alloc", bytes_written=0.0),
        Cost(kind="sort", cc_flops=1e3, bytes_read=1e15),
    ]
    table = (GemmEntry(8192, 8192, 8192, 1e-3), GemmEntry(8, 8, 8, 1e-7))
    for prof in (default_profile(spec), evolve(default_profile(spec), gemm_table=table)):
        want = [kernel_time(c, spec, prof).device_s if c is not None else 0.0 for c in costs]
        np.testing.assert_allclose(device_times(arrays_of(costs), spec, prof), want, rtol=RTOL, atol=0)
    with pytest.raises(ValueError, match="no efficiency curve"):
        device_times(arrays_of([Cost(kind="nonesuch")]), spec, default_profile(spec))


def _random_sequence(rng: np.random.Generator, n: int, p_sync: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    host = rng.exponential(10e-6, n) * (rng.random(n) < 0.8)
    dev = rng.lognormal(np.log(8e-6), 1.5, n) * (rng.random(n) < 0.7)
    return host, dev, rng.random(n) < p_sync


@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("p_sync", [0.0, 0.03, 0.5])
def test_replay_wall_matches_replay(graph: bool, p_sync: float) -> None:
    rng = np.random.default_rng(7)
    for n in (0, 1, 2, 3, 10, 257, 2000):
        for _ in range(4):
            host, dev, sync = _random_sequence(rng, n, p_sync)
            if n:
                sync[-1] = rng.random() < 0.5
            ref = replay(list(zip(host.tolist(), dev.tolist(), sync.tolist(), strict=True)), graph=graph,
                         graph_launch_s=11e-6, graph_kernel_s=1.3e-6)
            assert replay_wall(host, dev, sync, graph, 11e-6, 1.3e-6) == pytest.approx(ref.wall_s, rel=RTOL)
            issue, start, end = replay_ends(host, dev, sync, graph, 11e-6, 1.3e-6)
            scale = max(ref.wall_s, 1e-12)
            for got, want in ((issue, ref.issue), (start, ref.start), (end, ref.end)):
                np.testing.assert_allclose(got, want, rtol=0, atol=RTOL * scale)


@pytest.mark.parametrize("graph", [False, True])
def test_replay_walls_rows(graph: bool) -> None:
    rng = np.random.default_rng(3)
    host, _, sync = _random_sequence(rng, 500, 0.02)
    devs = np.stack([_random_sequence(rng, 500, 0.0)[1] for _ in range(9)])
    want = [replay(list(zip(host.tolist(), d.tolist(), sync.tolist(), strict=True)), graph=graph).wall_s
            for d in devs]
    np.testing.assert_allclose(replay_walls(host, devs, sync, graph), want, rtol=RTOL)


def test_replay_wall_negative_host_falls_back() -> None:
    host, dev, sync = np.array([5e-6, -2e-6, 4e-6]), np.array([1e-5, 0.0, 3e-6]), np.array([True, False, False])
    ref = replay(list(zip(host.tolist(), dev.tolist(), sync.tolist(), strict=True)))
    assert replay_wall(host, dev, sync) == pytest.approx(ref.wall_s, rel=RTOL)


def _scalar_combo(model: str, mode: str, crops: str | None, batch: int, device: str, execution: str,
                  loaded: Any = None) -> dict[str, Any]:
    """The sweep's combo as it was before vectorizing: kernel_time per item and a scalar replay per KV point."""
    wl = make_workload(mode, crops=crops, batch=batch, output_tokens=1)
    a = run_analysis(model, wl)
    spec = load_device(device)
    prof = default_profile(spec)
    items = plan(a.traces["prefill"], a.costs["prefill"], spec, prof, execution)
    prefill, _ = run_plan(items, a.traces["prefill"], execution, prof)
    p = wl.prefill_tokens
    kvs = sorted({p, (p + MAX_POSITIONS) // 2, MAX_POSITIONS - 1})
    fit = fit_decode(a, spec, prof, execution, kvs)
    grid = np.unique(np.linspace(p, MAX_POSITIONS - 1, 17).astype(int))
    walls = np.array([fit.step(int(kv), execution == "fused", prof).wall_s for kv in grid])
    return {"wl": wl, "ttft_s": prefill.wall_s, "grid": grid, "walls": walls, "spec": spec}


def test_sweep_matches_scalar(monkeypatch: pytest.MonkeyPatch) -> None:
    args = (DEFAULT_MODEL, "tiny", "h100,rtx5090", "1", "100,500", "eager,fused")
    sweep.clear_pricing()
    rows = sweep.run_sweep(*args)
    sweep.clear_pricing()
    monkeypatch.setattr(sweep, "_combo", _scalar_combo)
    want = sweep.run_sweep(*args)
    sweep.clear_pricing()
    assert len(rows) == len(want) == 8
    for got, ref in zip(rows, want, strict=True):
        assert list(got) == list(ref)
        for k, v in ref.items():
            if isinstance(v, float):
                assert got[k] == pytest.approx(v, rel=1e-9), k
            else:
                assert got[k] == v, k
