"""Predict every workload of a measured.json with a calibrated profile and compare (runs on any CPU).

Host costs: fitted on the host-bound eager decode steps of the same measurement session (the issue's "host
costs calibrated on the same machine in the same run"); prefill walls are then out-of-sample checks.
"""

from __future__ import annotations

from typing import Any

from dsocr_trace.analyze import load_model, run_analysis, trace_phase
from dsocr_trace.costs import cost_trace
from dsocr_trace.hardware.calibration import fit_graph_gap, fit_host_costs, profile_from_calibration
from dsocr_trace.hardware.profile import Profile
from dsocr_trace.hardware.spec import DeviceSpec, load_device
from dsocr_trace.plan import host_counts
from dsocr_trace.report.build import build_report
from dsocr_trace.request import predict_request
from dsocr_trace.validate.compare import compare_run, summarize
from dsocr_trace.workload import make_workload

_GPU_KEYS = (("H200", "h200"), ("H100", "h100"), ("A100", "a100"), ("L40S", "l40s"), ("5090", "rtx5090"),
             ("4090", "rtx4090"))


def device_for(name: str) -> DeviceSpec:
    for frag, key in _GPU_KEYS:
        if frag in name:
            return load_device(key)
    return load_device("h100")


def _workload(w: dict[str, Any]) -> Any:
    crops = f"{w['crops'][0]}x{w['crops'][1]}" if w.get("crops") else None
    kv = w.get("kv_len") if w["phase"] == "decode" else None
    return make_workload(w["mode"], crops=crops, prompt_tokens=int(w.get("prompt_tokens", 12)),
                         batch=int(w["batch"]), output_tokens=1, kv_len=kv)


HOST_BOUND = 4.0  # a step is host-bound when its wall exceeds its kernel time this many times


def host_rows(model_id: str, runs: list[dict[str, Any]]) -> list[tuple[int, int, int, float]]:
    """Counts of host work (from our trace of the same workload) against measured wall, host-bound steps only."""
    lm = load_model(model_id)
    rows = []
    for r in runs:
        w, t = r["workload"], r.get("total", {})
        if r.get("execution") != "eager" or "error" in r or not t.get("device_s") or w["phase"] != "decode":
            continue
        if t["wall_s"] < HOST_BOUND * t["device_s"]:
            continue
        wl = _workload(w)
        tr = trace_phase(lm, model_id, wl, w["phase"], kv_len=wl.kv_len)
        rows.append((*host_counts(tr, cost_trace(tr)), float(t["wall_s"])))
    return rows


def graph_rows(runs: list[dict[str, Any]]) -> list[tuple[float, float, int]]:
    eager = {(r["workload"]["batch"], r["workload"].get("kv_len")): r["total"] for r in runs
             if r.get("execution") == "eager" and r["workload"]["phase"] == "decode" and "error" not in r}
    out = []
    for r in runs:
        if r.get("execution") == "graph" and "error" not in r:
            e = eager.get((r["workload"]["batch"], r["workload"].get("kv_len")))
            if e:
                out.append((float(r["total"]["wall_s"]), float(e["device_s"]), int(e["kernels"])))
    return out


def validate_measured(measured: dict[str, Any], calibration: dict[str, Any] | None, model_id: str,
                      profile: Profile | None = None, spec: DeviceSpec | None = None,
                      op_times: dict[str, Any] | None = None, fit_host: bool = True) -> dict[str, Any]:
    spec = spec or device_for(str(measured.get("device", {}).get("name", "")))
    if profile is None:
        if calibration is None:
            raise ValueError("need a calibration or a profile")
        profile = profile_from_calibration(calibration, spec, op_times=op_times)
    if fit_host:
        profile = fit_host_costs(profile, host_rows(model_id, measured["runs"]))
        profile = fit_graph_gap(profile, graph_rows(measured["runs"]))
    rows = []
    for r in measured["runs"]:
        if "error" in r:
            continue
        w = r["workload"]
        wl = _workload(w)
        a = run_analysis(model_id, wl)
        execution = r.get("execution", "eager")
        pred = predict_request(a, spec, profile, execution)
        report = build_report(a, pred)
        rows.append(compare_run(report["predictions"], r, w["phase"]))
    return {
        "schema": "dsocr-trace/validation/1",
        "device": measured.get("device", {}),
        "profile": profile.source,
        "host_costs": {"host_op_s": profile.host_op_s, "host_view_s": profile.host_view_s,
                       "host_module_s": profile.host_module_s, "graph_kernel_s": profile.graph_kernel_s,
                       "fitted_on": f"host-bound eager decode steps (wall > {HOST_BOUND}x kernel time) and "
                                    "CUDA-graph decode replays of this measurement session; prefill walls are "
                                    "out of sample"},
        "runs": rows,
        "summary": summarize(rows),
    }
