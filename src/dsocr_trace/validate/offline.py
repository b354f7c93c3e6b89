"""Predict every workload of a measured.json with a profile and compare (runs on any CPU).

Nothing is fitted on the runs being checked: host costs, kernel families and in-model factors all come from the
profile (its calibration run). Each run is predicted with the routing it really produced (its measured rows per
expert), so MoE error is the model's, not the routing's. Runs whose workload is one of the profile's calibration
workloads are flagged `held_out: false`; accuracy claims use the held-out ones.

Also here: the in-model factor fit of a calibration run (kernels.inmodel), which needs traces.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from typing import Any

from dsocr_trace.analyze import load_model, run_analysis, trace_phase
from dsocr_trace.costs import CostOptions, cost_trace
from dsocr_trace.costs.routing import Routing, histogram_routing
from dsocr_trace.hardware.profile import Profile
from dsocr_trace.hardware.spec import DeviceSpec, load_device, measured_spec
from dsocr_trace.memory import phase_peak
from dsocr_trace.plan import host_counts, plan
from dsocr_trace.request import phase_wall_band, predict_phases
from dsocr_trace.validate.calsweep import CALIBRATION_DECODE, CALIBRATION_PREFILL, workload_label
from dsocr_trace.validate.compare import compare_run, rel_err, summarize
from dsocr_trace.workload import Workload, make_workload

_GPU_KEYS = (("H200", "h200"), ("H100", "h100"), ("A100", "a100"), ("L40S", "l40s"), ("5090", "rtx5090"),
             ("4090", "rtx4090"))


def device_for(name: str, calibration: Mapping[str, Any] | None = None) -> DeviceSpec | None:
    """The catalog entry of a GPU by its reported name; outside the catalog, the GPU as a calibration measured it
    (hardware.spec.measured_spec), or None without one."""
    for frag, key in _GPU_KEYS:
        if frag in name:
            return load_device(key)
    if calibration is None:
        return None
    peaks, probes = calibration.get("peaks") or {}, calibration.get("probes") or {}
    clock = str(calibration.get("max_sm_clock") or "").split()[0] or None
    return measured_spec(name, int(calibration["sm_count"]), float(calibration["memory_bytes"]),
                         float(calibration.get("l2_bytes") or 0), float(clock) if clock else None,
                         float(peaks["tc_flops"]), float(peaks["mem_bw"]), probes.get("launch_s"))


def run_workload(w: Mapping[str, Any]) -> Workload:
    """The Workload a measured run was made with (decode: the KV length before the step)."""
    crops = f"{w['crops'][0]}x{w['crops'][1]}" if w.get("crops") else None
    kv = w.get("kv_len") if w["phase"] == "decode" else None
    return make_workload(w["mode"], crops=crops, prompt_tokens=int(w.get("prompt_tokens", 12)),
                         batch=int(w["batch"]), output_tokens=1, kv_len=kv)


def run_routing(run: Mapping[str, Any]) -> Routing:
    """The routing the run's random-weight router produced (uniform when the run did not record it)."""
    rows = (run.get("checks") or {}).get("expert_rows")
    if not rows:
        return Routing()
    return histogram_routing({int(k): v for k, v in rows.items()}, "measured")


def run_label(w: Mapping[str, Any]) -> str:
    if w["phase"] == "decode":
        return f"decode@{w['batch']} KV{w.get('kv_len')}"
    crops = f"{w['crops'][0]}x{w['crops'][1]}" if w.get("crops") else None
    return workload_label(w["mode"], crops, int(w["batch"]), int(w.get("prompt_tokens", 12)))


def in_calibration(w: Mapping[str, Any]) -> bool:
    """Whether the run's workload is one of the fixed calibration workloads (validate.calsweep)."""
    if w["phase"] == "decode":
        return any(int(w["batch"]) == b and int(w.get("kv_len") or -1) in kvs for b, kvs in CALIBRATION_DECODE)
    return run_label(w) in {workload_label(*c) for c in CALIBRATION_PREFILL}


HOST_BOUND = 4.0  # a decode step is host-bound when its wall exceeds its kernel time this many times


def host_rows(model_id: str, runs: Iterable[Mapping[str, Any]]) -> list[tuple[int, int, int, float]]:
    """Counts of host work (from our trace of the same workload) against measured wall, host-bound eager
    decode steps only (wall > HOST_BOUND x kernel time): what host cost per call is fitted on at calibration."""
    lm = load_model(model_id)
    rows = []
    for r in runs:
        w, t = r["workload"], r.get("total", {})
        if r.get("execution") != "eager" or "error" in r or not t.get("device_s") or w["phase"] != "decode":
            continue
        if t["wall_s"] < HOST_BOUND * t["device_s"]:
            continue
        wl = run_workload(w)
        tr = trace_phase(lm, model_id, wl, w["phase"], kv_len=wl.kv_len)
        rows.append((*host_counts(tr, cost_trace(tr)), float(t["wall_s"])))
    return rows



def graph_rows(runs: Iterable[Mapping[str, Any]]) -> list[tuple[float, float, int]]:
    runs = list(runs)
    eager = {(r["workload"]["batch"], r["workload"].get("kv_len")): r["total"] for r in runs
             if r.get("execution") == "eager" and r["workload"]["phase"] == "decode" and "error" not in r}
    out = []
    for r in runs:
        if r.get("execution") == "graph" and "error" not in r:
            e = eager.get((r["workload"]["batch"], r["workload"].get("kv_len")))
            if e:
                out.append((float(r["total"]["wall_s"]), float(e["device_s"]), int(e["kernels"])))
    return out


def memory_row(run: Mapping[str, Any], analysis: Any) -> dict[str, Any] | None:
    """Predicted vs measured peak device memory of the run's step (torch.cuda.max_memory_allocated)."""
    mem = (run.get("checks") or {}).get("memory") or {}
    if not mem.get("peak_allocated_bytes"):
        return None
    phase = run["workload"]["phase"]
    pred = phase_peak(analysis.traces[phase], analysis.params, held_bytes=int(mem.get("held_by_harness_bytes", 0)))
    meas = float(mem["peak_allocated_bytes"])
    return {"predicted_bytes": pred["total_bytes"], "measured_bytes": meas,
            "error": rel_err(pred["total_bytes"], meas), "components": pred}


def validate_measured(measured: Mapping[str, Any], profile: Profile, spec: DeviceSpec,
                      model_id: str) -> dict[str, Any]:
    """Every run of a measured file predicted with `profile` on `spec` and compared."""
    rows = []
    for r in measured["runs"]:
        if "error" in r:
            continue
        w = r["workload"]
        wl = run_workload(w)
        a = run_analysis(model_id, wl, opts=CostOptions(routing=run_routing(r)))
        execution = r.get("execution", "eager")
        pred = predict_phases(a, spec, profile, execution)
        row = compare_run(pred, dict(r), w["phase"])
        if execution == "eager" and row["wall"]["measured_s"]:
            # the eager wall is the host's: the same plan behind a host at either end of HOST_BAND
            tr = a.traces[w["phase"]]
            band = sorted(phase_wall_band(plan(tr, a.costs[w["phase"]], spec, profile, execution), tr, execution,
                                          profile))
            row["wall"] |= {"band_s": band, "in_band": band[0] <= row["wall"]["measured_s"] <= band[1]}
        row["held_out"] = not in_calibration(w)
        row["label"] = run_label(w)
        if execution == "eager":
            row["memory"] = memory_row(r, a)
        rows.append(row)
    return {
        "schema": "dsocr-trace/validation/1",
        "device": measured.get("device", {}),
        "profile": profile.label,
        "provenance": profile.provenance(),
        "host_costs": {"host_op_s": profile.host_op_s, "graph_kernel_s": profile.graph_kernel_s,
                       "fitted_on": "the profile's calibration run (eager and CUDA-graph decode steps of the "
                                    "calibration set), not on these runs"},
        "runs": rows,
        "summary": summarize(rows),
        "summary_held_out": summarize([x for x in rows if x["held_out"]]),
    }


# -- in-model factors ------------------------------------------------------------------------------------
def inmodel_observations(model: Any, runs: Iterable[Mapping[str, Any]], model_id: str
                         ) -> list[tuple[dict[str, float], float]]:
    """Per module of each eager run: (standalone estimate per in-model bucket, measured exclusive seconds)."""
    from dsocr_trace.kernels.inmodel import bucket_of
    from dsocr_trace.kernels.query import query_of

    lm = load_model(model_id)
    obs: list[tuple[dict[str, float], float]] = []
    for r in runs:
        if r.get("execution") != "eager" or "error" in r or not r.get("modules"):
            continue
        w = r["workload"]
        wl = run_workload(w)
        tr = trace_phase(lm, model_id, wl, w["phase"], kv_len=wl.kv_len)
        costs = cost_trace(tr, CostOptions(routing=run_routing(r)))
        per: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
        for n, c in zip(tr.nodes, costs.eager, strict=True):
            if n.members or c is None or c.kernels <= 0 or c.kind in ("view", "sync"):
                continue
            q = query_of(n, c)
            e = model.standalone(q)
            if e is None:
                continue
            per[n.module_path][bucket_of(q, e)] += e.seconds
        for path, m in r["modules"].items():
            if path in per and float(m.get("device_s", 0.0)) > 0:
                obs.append((dict(per[path]), float(m["device_s"])))
    return obs
