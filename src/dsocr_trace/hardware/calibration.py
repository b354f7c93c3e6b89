"""Turn a calibration run (microbenchmarks on a GPU, `dsocr-trace calibrate`) into a latency profile.

Each microbenchmark is a kernel whose FLOPs and bytes we count with the same formulas the cost rules use;
its measured time gives an efficiency point on the side of the roofline it is bound by (compute if its
intensity is above the measured ridge, memory otherwise). GEMMs go into the profile as a table of measured
times (looked up by nearest shape); elementwise, copy and reduction kernels give the memory curves;
strided copies and broadcast adds give the strided penalty; launch and graph gaps are taken as measured.
Kinds with no microbenchmark keep the spec-derived default curve, shifted by the measured peaks.
"""

from __future__ import annotations

import statistics
from typing import Any

from attrs import evolve

from dsocr_trace.costs.attention import attended_pairs
from dsocr_trace.hardware.profile import Curve, GemmEntry, KindCurves, Profile, default_profile
from dsocr_trace.hardware.spec import DeviceSpec

_MEMORY_KIND = {"copy": "copy", "clone": "copy", "add": "elementwise", "mul": "elementwise",
                "softmax": "reduction", "layer_norm": "reduction", "sum": "reduction"}


def _curve(points: list[tuple[float, float]]) -> Curve | None:
    pts: dict[float, list[float]] = {}
    for size, eff in points:
        if size > 0 and eff > 0:
            pts.setdefault(float(size), []).append(min(eff, 1.0))
    if len(pts) < 2:
        return None
    return Curve(tuple((s, statistics.median(v)) for s, v in sorted(pts.items())))


def _split(points: list[tuple[float, float, float]], peak_flops: float, bw: float
           ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(flops, bytes, seconds) -> compute-side and memory-side efficiency points."""
    comp, mem = [], []
    for flops, nbytes, secs in points:
        if secs <= 0:
            continue
        t_c, t_m = flops / peak_flops, nbytes / bw
        if t_c >= t_m:
            comp.append((flops, t_c / secs))
        else:
            mem.append((nbytes, t_m / secs))
    return comp, mem


def attention_point(e: dict[str, Any]) -> tuple[float, float, float]:
    b, h, tq, tk, d = e["batch"], e["heads"], e["q_len"], e["kv_len"], e["head_dim"]
    pairs = b * h * attended_pairs(tq, tk, bool(e.get("causal")))
    flops = 2.0 * pairs * (d + d)
    nbytes = 2.0 * b * h * d * (2 * tq + 2 * tk)  # q, o, k, v in bf16
    if e.get("mask"):
        nbytes += 2.0 * b * h * tq * tk  # dense float bias
    return flops, nbytes, float(e["seconds"])


def grouped_point(e: dict[str, Any]) -> tuple[float, float, float]:
    rows, n, k = e["rows"], e["n"], e["k"]
    hit = e.get("experts_hit") or e.get("experts", 1)
    flops = 2.0 * rows * n * k
    nbytes = 2.0 * (rows * k + hit * k * n + rows * n)
    return flops, nbytes, float(e["seconds"])


def profile_from_calibration(cal: dict[str, Any], spec: DeviceSpec, source: str = "calibrated:calibration.json",
                             op_times: dict[str, Any] | None = None) -> Profile:
    base = default_profile(spec)
    peaks = cal.get("peaks") or {}
    tc = float(peaks.get("tc_flops") or base.tc_flops)
    bw = float(peaks.get("mem_bw") or base.mem_bw)
    curves = dict(base.curves)
    # default curves were relative to the datasheet; keep their shape, re-anchored at the measured peaks
    conv = [(2.0 * e["batch"] * e["c_out"] * e["out_side"] ** 2 * e["c_in"] * e["kernel"] ** 2, float(e["bytes"]),
             float(e["seconds"])) for e in cal.get("conv", []) if "seconds" in e]
    kind_points: tuple[tuple[str, list[tuple[float, float, float]]], ...] = (
        ("attention", [attention_point(e) for e in cal.get("attention", []) if "seconds" in e]),
                      ("grouped_gemm", [grouped_point(e) for e in cal.get("grouped_gemm", []) if "seconds" in e]),
        ("conv", conv))
    for kind, pts in kind_points:
        comp, mem = _split(pts, tc, bw)
        old = curves[kind]
        curves[kind] = KindCurves(compute=_curve(comp) or old.compute, memory=_curve(mem) or old.memory)
    mem_points: dict[str, list[tuple[float, float]]] = {}
    strided: list[float] = []
    contiguous_eff: dict[int, float] = {}
    for e in cal.get("memory", []):
        if "seconds" not in e or e["seconds"] <= 0:
            continue
        eff = e["bytes"] / (bw * e["seconds"])
        if e.get("contiguous", True) and e["op"] in _MEMORY_KIND:
            mem_points.setdefault(_MEMORY_KIND[e["op"]], []).append((e["bytes"], eff))
            if e["op"] == "copy":
                contiguous_eff[int(e["size"])] = eff
    for e in cal.get("memory", []):
        if not e.get("contiguous", True) and e.get("seconds") and int(e["size"]) in contiguous_eff \
                and e["bytes"] >= 16 << 20:
            strided.append((e["bytes"] / (bw * e["seconds"])) / contiguous_eff[int(e["size"])])
    for kind, mpts in mem_points.items():
        c = _curve(mpts)
        if c is not None:
            curves[kind] = KindCurves(compute=curves[kind].compute, memory=c)
    if "copy" in mem_points:  # allocations/fills write like copies
        curves["alloc"] = KindCurves(compute=curves["alloc"].compute, memory=curves["copy"].memory)
    gemm = tuple(GemmEntry(int(g["m"]), int(g["n"]), int(g["k"]), float(g["seconds"]))
                 for g in cal.get("gemm", []) if g.get("seconds"))
    dev = cal.get("device") or {}

    def pos(name: str, default: float) -> float:
        v = cal.get(name)
        return float(v) if isinstance(v, (int, float)) and v > 0 else default

    return evolve(
        base,
        source=source,
        tc_flops=tc,
        mem_bw=bw,
        curves=curves,
        gemm_table=gemm,
        op_table={k: float(v) for k, v in ((op_times or {}).get("times") or {}).items() if v and v > 0},
        device=spec.key,
        launch_s=pos("launch_s", base.launch_s),
        graph_kernel_s=pos("graph_kernel_s", base.graph_kernel_s),
        host_op_s=pos("host_op_s", base.host_op_s),
        launch_host_s=pos("host_op_s", base.launch_host_s),
        host_module_s=pos("host_module_s", 0.0),
        strided_penalty=min(1.0, statistics.median(strided)) if strided else base.strided_penalty,
        gpu=dev.get("name"),
        driver=dev.get("driver"),
        torch=dev.get("torch"),
        cuda=dev.get("cuda"),
        date=dev.get("date"),
    )


def fit_host_costs(profile: Profile, rows: list[tuple[int, int, int, float]]) -> Profile:
    """Host cost per Python-level torch call from host-bound eager steps measured in the same session.

    rows: (calls launching kernels, calls launching none, module calls, measured wall seconds) of steps whose
    wall is host time (eager decode: ~24 ms of wall over ~2.5 ms of kernels on an H100). One cost per call,
    least squares through the origin: the model's own Python between calls is part of it. Module calls and
    the kernel/no-kernel split move together in one model, so more terms would be fitted on collinear data.
    """
    pts = [(k + v, w) for k, v, _, w in rows if k + v > 0]
    if not pts:
        return profile
    a = sum(c * w for c, w in pts) / sum(c * c for c, _ in pts)
    return evolve(profile, host_op_s=a, host_view_s=None, host_module_s=0.0)


def fit_graph_gap(profile: Profile, rows: list[tuple[float, float, int]]) -> Profile:
    """Per-kernel gap inside a CUDA-graph replay: (graph wall, kernel time, kernels) of the same step measured
    eagerly in the same session; the median gap over the steps given."""
    gaps = [(w - d) / k for w, d, k in rows if k > 0 and w > d]
    if not gaps:
        return profile
    return evolve(profile, graph_kernel_s=statistics.median(gaps))


PROFILE2_SCHEMA = "dsocr-trace/profile/2"


def host_per_call(rows: list[tuple[int, int, int, float]]) -> float | None:
    """Host seconds per Python-level torch call, least squares through the origin over host-bound eager steps
    (calls launching kernels + calls launching none, measured wall): see fit_host_costs."""
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
        "schema": PROFILE2_SCHEMA,
        "source": "calibrated",
        "device": device_key,
        "gpu": dev.get("name"), "sm_count": dev.get("sm_count"), "l2_bytes": dev.get("l2_bytes"),
        "memory_bytes": dev.get("memory_bytes"), "driver": dev.get("driver"), "torch": dev.get("torch"),
        "cuda": dev.get("cuda"), "transformers": dev.get("transformers"), "date": dev.get("date"),
        "host_cpu": dev.get("host_cpu"),
        "command": command,
        "elapsed_s": elapsed_s,
        "peaks": {"tc_flops": peaks.get("tc_flops"), "mem_bw": peaks.get("mem_bw")},
        "probes": {k: cal.get(k) for k in ("launch_s", "graph_kernel_s", "host_op_s", "host_op_inplace_s",
                                            "host_linear_s", "host_module_s")},
        "host": {"per_call_s": host_per_call(host), "graph_kernel_s": graph_gap(graph),
                 "fitted_on": {"eager_decode_steps": [list(r) for r in host],
                               "graph_decode_steps": [list(r) for r in graph]}},
        "microbench": {k: cal.get(k, []) for k in ("gemm", "grouped_gemm", "attention", "conv", "memory")},
        "sweep": cal.get("sweep") or {"points": {}, "errors": {}, "workloads": []},
        "errors": cal.get("errors") or {},
    }
