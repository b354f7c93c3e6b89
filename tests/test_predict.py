"""Latency primitives against hand-computed values."""

from __future__ import annotations

import math

import pytest

from dsocr_trace.costs.base import Cost
from dsocr_trace.hardware import Curve, DeviceSpec, KindCurves, Profile, default_profile, load_device
from dsocr_trace.hardware.profile import DEFAULT_HOST_MODULE_S, DEFAULT_HOST_OP_S, TIMED_KINDS
from dsocr_trace.predict import efficiency, host_time, kernel_time, replay

# A toy GPU with round numbers: 100 TFLOP/s tensor, 10 TFLOP/s CUDA core, 1 TB/s.
SPEC = DeviceSpec(key="toy", name="toy", tc_flops=1e14, cc_flops=1e13, mem_bw=1e12, mem_bytes=1e10, l2_bytes=1e7,
                  sm_count=100, peaks_by_dtype={"bf16": 1e14, "fp16": 1e14, "fp8": 2e14, "fp32": 1e13})
FLAT = {k: KindCurves(compute=Curve(((1.0, 0.5),)), memory=Curve(((1.0, 0.8),))) for k in TIMED_KINDS}
# elementwise math differs so the CUDA-core part of a tensor-core kind can be told apart
FLAT["elementwise"] = KindCurves(compute=Curve(((1.0, 0.25),)), memory=Curve(((1.0, 0.8),)))
PROF = Profile(source="spec-default", tc_flops=1e14, cc_flops=1e13, mem_bw=1e12, curves=FLAT, launch_s=2e-6,
               strided_penalty=0.35)


def gemm_cost(m: int, n: int, k: int, **shape) -> Cost:
    return Cost(tc_flops=2.0 * m * n * k, bytes_read=2.0 * (m * k + k * n), bytes_written=2.0 * m * n, kind="gemm",
                shape={"m": m, "n": n, "k": k, **shape})


# -- efficiency curves -----------------------------------------------------------------------------------------
def test_efficiency_log_linear_and_clamped():
    c = Curve(((1e6, 0.1), (1e8, 0.3), (1e11, 0.75)))
    assert efficiency(c, 1e7) == pytest.approx(0.2)  # halfway in log10 between 1e6 and 1e8
    assert efficiency(c, 1e9) == pytest.approx(0.3 + 0.45 / 3)  # a third of the way from 1e8 to 1e11
    assert efficiency(c, 1e3) == 0.1 and efficiency(c, 0) == 0.1  # clamped below
    assert efficiency(c, 1e15) == 0.75  # clamped above
    assert efficiency([(1.0, 0.4)], 123.0) == 0.4  # plain sequences work too


# -- kernel_time -----------------------------------------------------------------------------------------------
def test_gemm_compute_bound():
    # 1024^3: 2 * 1024^3 = 2147483648 FLOPs at 1e14 * 0.5 -> 4.294967296e-5 s
    # bytes: 3 matrices of 1024*1024 bf16 = 6291456 B at 1e12 * 0.8 -> 7.86432e-6 s
    t = kernel_time(gemm_cost(1024, 1024, 1024), SPEC, PROF)
    assert t.compute_s == pytest.approx(4.294967296e-5)
    assert t.memory_s == pytest.approx(7.86432e-6)
    assert t.device_s == pytest.approx(4.294967296e-5)
    assert (t.bound, t.efficiency, t.source) == ("compute", 0.5, "spec-default")


def test_elementwise_memory_bound_and_strided_penalty():
    # 8e6 B read + 8e6 B written at 1e12 * 0.8 -> 2e-5 s
    c = Cost(bytes_read=8e6, bytes_written=8e6, kind="elementwise")
    t = kernel_time(c, SPEC, PROF)
    assert t.memory_s == pytest.approx(2e-5) and t.device_s == pytest.approx(2e-5)
    assert (t.bound, t.efficiency) == ("memory", 0.8)
    # strided copy: efficiency 0.8 * 0.35 = 0.28 -> 16e6 / 2.8e11 = 5.714285714e-5 s
    s = kernel_time(Cost(bytes_read=8e6, bytes_written=8e6, kind="copy", shape={"contiguous": False}), SPEC, PROF)
    assert s.device_s == pytest.approx(16e6 / 2.8e11) and s.efficiency == pytest.approx(0.28)
    b = kernel_time(Cost(bytes_read=8e6, bytes_written=8e6, kind="elementwise", shape={"broadcast": True}), SPEC, PROF)
    assert b.device_s == pytest.approx(s.device_s)
    # the penalty is for copy/elementwise only
    r = kernel_time(Cost(bytes_read=8e6, bytes_written=8e6, kind="reduction", shape={"contiguous": False}), SPEC, PROF)
    assert r.device_s == pytest.approx(2e-5)


def test_launch_floor_and_multi_kernel():
    # 4 + 4 bytes: 8 / 8e11 = 1e-11 s, far under the 2e-6 s floor
    t = kernel_time(Cost(bytes_read=4, bytes_written=4, kind="elementwise"), SPEC, PROF)
    assert (t.device_s, t.bound, t.launch_s) == (2e-6, "launch", 2e-6)
    # three kernels: the floor once for the body, plus (3 - 1) * 2e-6
    t3 = kernel_time(Cost(bytes_read=4, bytes_written=4, kind="sort", kernels=3), SPEC, PROF)
    assert t3.device_s == pytest.approx(6e-6)
    # a big op of two kernels: body + one extra launch: 2e-5 + 2e-6
    t2 = kernel_time(Cost(bytes_read=8e6, bytes_written=8e6, kind="copy", kernels=2), SPEC, PROF)
    assert t2.device_s == pytest.approx(2.2e-5) and t2.bound == "memory"


def test_free_ops():
    # views and kernel-less ops take no device time (a sync does: its scalar copy, test below)
    for c in (Cost(kind="view", kernels=0), Cost(kind="view", bytes_read=1e9), Cost(kind="sync", kernels=0),
              Cost(kind="elementwise", bytes_read=1e9, kernels=0)):
        t = kernel_time(c, SPEC, PROF)
        assert (t.device_s, t.bound) == (0.0, "none")


def test_cuda_core_flops():
    # reduction: 1e9 CUDA-core FLOPs at 1e13 * 0.5 -> 2e-4 s; 1e6 B at 8e11 -> 1.25e-6 s
    t = kernel_time(Cost(cc_flops=1e9, bytes_read=1e6, kind="reduction"), SPEC, PROF)
    assert t.compute_s == pytest.approx(2e-4) and t.bound == "compute"
    # attention: tensor part 1e10 / (1e14 * 0.5) = 2e-4 s; CUDA-core part follows the elementwise curve:
    # 1e8 / (1e13 * 0.25) = 4e-5 s; total 2.4e-4 s
    a = kernel_time(Cost(tc_flops=1e10, cc_flops=1e8, bytes_read=1e6, kind="attention"), SPEC, PROF)
    assert a.compute_s == pytest.approx(2.4e-4) and a.device_s == pytest.approx(2.4e-4)


def test_dtype_scales_tensor_peak():
    # fp8 on the toy GPU runs at 2e14: 2147483648 / (2e14 * 0.5) = 2.147483648e-5 s
    t = kernel_time(gemm_cost(1024, 1024, 1024, dtype="float8_e4m3fn"), SPEC, PROF)
    assert t.compute_s == pytest.approx(2.147483648e-5)
    # a dtype the device lacks falls back to the BF16 peak
    a100 = load_device("a100")
    p = default_profile(a100)
    assert kernel_time(gemm_cost(4096, 4096, 4096, dtype="fp8"), a100, p).device_s == pytest.approx(
        kernel_time(gemm_cost(4096, 4096, 4096), a100, p).device_s)


def _mm_spec(m: int, n: int, k: int, seconds: float) -> dict:
    return {"op": "aten.mm.default", "attrs": {}, "sources": ["sweep:gemm"], "seconds": seconds, "kernels": [],
            "inputs": [{"shape": [m, k], "strides": [k, 1], "dtype": "bfloat16", "offset": 0, "param": False},
                       {"shape": [k, n], "strides": [1, k], "dtype": "bfloat16", "offset": 0, "param": True}],
            "call": {"args": [{"t": 0}, {"t": 1}], "kwargs": {}}}


def test_calibrated_gemm_goes_through_its_family():
    from dsocr_trace.costs.base import cost_of
    from dsocr_trace.kernels.query import node_of_spec

    # two measured points of one weight shape: 1024 x 1024 at M = 64 and M = 4096
    sweep = {"a": _mm_spec(64, 1024, 1024, 4e-6), "b": _mm_spec(4096, 1024, 1024, 1e-4)}
    prof = Profile(source="calibrated", tc_flops=1e14, cc_flops=1e13, mem_bw=1e12, curves=FLAT, launch_s=2e-6,
                   sweep=sweep)
    node = node_of_spec(_mm_spec(512, 1024, 1024, 1.0))
    t = kernel_time(cost_of(node), SPEC, prof, node)
    assert t.source == "calibrated:class"
    # efficiency = ideal / measured at each point, linear in log M between them; ideal = max(FLOPs/peak, bytes/bw)
    def ideal(m: int) -> float:
        return max(2 * m * 1024 * 1024 / 1e14, 2 * (m * 1024 + 1024 * 1024 + m * 1024) / 1e12)
    e64, e4096 = ideal(64) / 4e-6, ideal(4096) / 1e-4
    f = (math.log10(512) - math.log10(64)) / (math.log10(4096) - math.log10(64))
    assert t.device_s == pytest.approx(ideal(512) / (e64 + f * (e4096 - e64)))
    # at a measured point the model returns the measurement; outside the range efficiency holds
    n64 = node_of_spec(_mm_spec(64, 1024, 1024, 1.0))
    assert kernel_time(cost_of(n64), SPEC, prof, n64).device_s == pytest.approx(4e-6)
    big = node_of_spec(_mm_spec(16384, 1024, 1024, 1.0))
    assert kernel_time(cost_of(big), SPEC, prof, big).device_s == pytest.approx(ideal(16384) / e4096)
    # a kind no family covers falls back to the roofline and says so
    e = kernel_time(Cost(bytes_read=8e6, bytes_written=8e6, kind="sort"), SPEC, prof)
    assert e.source == "calibrated:roofline"


def test_decode_gemm_is_memory_bound_on_real_devices():
    # m = 1 against a 4096 x 4096 bf16 weight: 3.4e7 FLOPs, 3.4e7 bytes -> intensity ~1 FLOP/B
    for key in ("h100", "rtx5090", "a100", "rtx4090"):
        spec = load_device(key)
        t = kernel_time(gemm_cost(1, 4096, 4096), spec, default_profile(spec))
        assert t.bound == "memory", key
        big = kernel_time(gemm_cost(8192, 8192, 8192), spec, default_profile(spec))
        assert big.bound == "compute" and big.efficiency == pytest.approx(0.75), key


def test_default_profile_monotonic():
    spec = load_device("h100")
    p = default_profile(spec)
    for kind in TIMED_KINDS:
        prev = 0.0
        for e in range(0, 14):
            t = kernel_time(Cost(tc_flops=10.0**e, kind=kind), spec, p).device_s
            assert t >= prev, (kind, e)
            prev = t
        prev = 0.0
        for e in range(0, 11):
            t = kernel_time(Cost(bytes_read=10.0**e, kind=kind), spec, p).device_s
            assert t >= prev, (kind, e)
            prev = t
    # finer: monotonic within a segment, between the points of the curve too
    prev = 0.0
    for i in range(200):
        t = kernel_time(gemm_cost(1 + 40 * i, 4096, 4096), spec, p).device_s
        assert t >= prev
        prev = t


def test_bound_switches_at_ridge():
    # flat curves: ridge at (1e14 * 0.5) / (1e12 * 0.8) = 62.5 FLOP/B. 1e8 B take 1.25e-4 s.
    nbytes = 1e8
    bounds = []
    for ai in (1, 10, 50, 62, 63, 80, 500):
        t = kernel_time(Cost(tc_flops=ai * nbytes, bytes_read=nbytes, kind="gemm"), SPEC, PROF)
        bounds.append(t.bound)
        assert t.device_s == pytest.approx(max(ai * nbytes / 5e13, 1.25e-4))
    assert bounds == ["memory"] * 4 + ["compute"] * 3


def test_bound_switches_on_h100_default_profile():
    # square-ish GEMMs m x 4096 x 4096 grow in intensity with m: memory-bound when skinny, compute-bound when fat
    spec = load_device("h100")
    p = default_profile(spec)
    bounds = [kernel_time(gemm_cost(m, 4096, 4096), spec, p).bound for m in (1, 8, 32, 128, 512, 2048, 8192)]
    first_compute = bounds.index("compute")
    assert all(b == "memory" for b in bounds[:first_compute]) and all(b == "compute" for b in bounds[first_compute:])
    assert 0 < first_compute < len(bounds) - 1


def test_host_time():
    # 100 ops * 12e-6 + 20 modules * 4e-6 = 1.28e-3 s
    assert DEFAULT_HOST_OP_S == 12e-6 and DEFAULT_HOST_MODULE_S == 4e-6
    assert host_time(100, 20, PROF) == pytest.approx(1.28e-3)
    assert host_time(0, 0, PROF) == 0.0


# -- replay ----------------------------------------------------------------------------------------------------
def test_replay_host_bound():
    # host 10 per op, device 1: the device waits on each launch; wall = 4 * 10 + 1 = 41
    r = replay([(10.0, 1.0, False)] * 4)
    assert r.wall_s == pytest.approx(41.0)
    assert r.host_s == 40.0 and r.device_busy_s == 4.0 and r.device_idle_s == pytest.approx(37.0)
    assert r.start == [10.0, 20.0, 30.0, 40.0] and r.end == [11.0, 21.0, 31.0, 41.0]
    assert sum(b - a for a, b in r.gaps) == pytest.approx(r.device_idle_s)


def test_replay_device_bound():
    # host 1 per op, device 10: kernels queue back to back after the first launch; wall = 1 + 4 * 10 = 41
    r = replay([(1.0, 10.0, False)] * 4)
    assert r.wall_s == pytest.approx(41.0)
    assert r.start == [1.0, 11.0, 21.0, 31.0] and r.gaps == [(0.0, 1.0)]
    assert r.issue == [1.0, 2.0, 3.0, 4.0] and r.host_wait_s == 0.0


def test_replay_sync_in_middle():
    # item 0: issued at 1, runs 1..11; item 1: issued at 2, runs 11..21, host waits to 21 (waited 19);
    # item 2: issued at 22, runs 22..32. wall = 32; device idle (0,1) and (21,22)
    r = replay([(1.0, 10.0, False), (1.0, 10.0, True), (1.0, 10.0, False)])
    assert r.wall_s == pytest.approx(32.0)
    assert r.host_wait_s == pytest.approx(19.0) and r.host_s == 3.0
    assert r.gaps == [(0.0, 1.0), (21.0, 22.0)] and r.device_idle_s == pytest.approx(2.0)
    # without the sync the host runs ahead: wall = 1 + 30 = 31
    assert replay([(1.0, 10.0, False)] * 3).wall_s == pytest.approx(31.0)


def test_replay_zero_device_items():
    # a view (0 device) between kernels changes nothing on the device; a sync item waits for everything before it
    r = replay([(1.0, 10.0, False), (1.0, 0.0, True), (5.0, 1.0, False)])
    # kernel 0 runs 1..11; sync item issued at 2, host waits to 11; item 2 issued at 16, runs 16..17
    assert r.wall_s == pytest.approx(17.0) and r.host_wait_s == pytest.approx(9.0)


def test_replay_graph():
    # one launch (3) replaces every host cost; kernels 1 apart: 3..13, (no node), 14..34; sync at the end
    r = replay([(5.0, 10.0, False), (5.0, 0.0, False), (5.0, 20.0, True)], graph=True, graph_launch_s=3.0,
               graph_kernel_s=1.0)
    assert r.start == [3.0, 13.0, 14.0] and r.end == [13.0, 13.0, 34.0]
    assert r.wall_s == pytest.approx(34.0) and r.host_s == 3.0 and r.host_wait_s == pytest.approx(31.0)
    assert r.device_busy_s == 30.0 and r.gaps == [(0.0, 3.0), (13.0, 14.0)]
    # n kernels of d: wall = launch + n * d + (n - 1) * gap = 3 + 100 * 2 + 99 * 1 = 302
    assert replay([(9.0, 2.0, False)] * 100, graph=True, graph_launch_s=3.0,
                  graph_kernel_s=1.0).wall_s == pytest.approx(302.0)


def test_replay_empty():
    r = replay([])
    assert r.wall_s == 0.0 and r.gaps == [] and r.start == []
    assert replay([], graph=True, graph_launch_s=3.0).wall_s == 3.0


def test_a_host_sync_costs_its_scalar_copy() -> None:
    """`.item()` copies a scalar to the host on the copy engine: the measured copy time, on any profile."""
    from dsocr_trace.hardware.profile import DEFAULT_SYNC_COPY_S, packaged_profile

    sync = Cost(bytes_read=8.0, kind="sync", kernels=1)
    for name in ("h200", "l40s"):
        spec = load_device(name)
        prof = packaged_profile(spec) if name == "h200" else default_profile(spec)
        assert kernel_time(sync, spec, prof).device_s == DEFAULT_SYNC_COPY_S > 0
    assert kernel_time(Cost(kind="view"), spec, prof).device_s == 0.0
