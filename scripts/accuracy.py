"""Accuracy of the latency model against the committed GPU measurements (any CPU, a few minutes).

    python scripts/accuracy.py [OUT_DIR]        # default benchmarks/results/accuracy

Every figure is a prediction of a measurement that was not fitted on: the profile is fitted on its calibration
sweep and calibration workloads only; held-out workloads (validate) share no workload shape with them.

* held out: the H200 workloads `dsocr-trace validate` measured (benchmarks/results/h200-cli/val), predicted with
  the profile `dsocr-trace calibrate` wrote in the same session (packaged as hardware/profiles/h200.json.gz);
  also the held-out workloads of the first H200 session (another machine, benchmarks/results/h200);
* leave one out: a whole page grid (gundam 2x3) and a whole batch size (8: prefill and decode) removed from the
  calibration (their sweep points and in-model runs), the profile refitted, their in-model runs predicted;
* across GPUs: the H100 profile moved to the H200 by the measured bandwidth ratio (and the reverse);
* datasheet only: no calibration at all;
* per kernel family: every sweep ladder point predicted by its family fitted without it (standalone time).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from attrs import evolve

from dsocr_trace.hardware.profile import (
    HOST_BAND,
    Profile,
    default_profile,
    packaged_profile,
    profile_from_document,
    transfer_profile,
)
from dsocr_trace.hardware.spec import load_device
from dsocr_trace.kernels.inmodel import fit_factors
from dsocr_trace.kernels.model import PerfModel, cached_points, perf_model
from dsocr_trace.validate.offline import inmodel_observations, run_label, validate_measured

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MODEL = "deepseek-ai/DeepSeek-OCR"


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def stage_points(result: Mapping[str, Any], held_out_only: bool = False) -> list[dict[str, Any]]:
    out = []
    for r in result["runs"]:
        if r.get("execution") != "eager" or (held_out_only and not r.get("held_out")):
            continue
        for name, v in r["stages"].items():
            if v["error"] is not None and v["measured_s"] > 0:
                out.append({"run": r.get("label"), "stage": name, "predicted_s": v["predicted_s"],
                            "measured_s": v["measured_s"], "error": v["error"]})
    return out


def stats(errors: Iterable[float]) -> dict[str, Any]:
    a = sorted(abs(e) for e in errors)
    if not a:
        return {"n": 0}
    return {"n": len(a), "median_abs": statistics.median(a), "mean_abs": statistics.mean(a), "max_abs": a[-1],
            "within_5pct": sum(1 for e in a if e <= 0.05), "within_8pct": sum(1 for e in a if e <= 0.08),
            "within_20pct": sum(1 for e in a if e <= 0.20)}


def evaluate(name: str, measured: Mapping[str, Any], profile: Profile, device: str, held_out_only: bool,
             runs_filter: Any = None) -> dict[str, Any]:
    runs = [r for r in measured["runs"] if runs_filter is None or runs_filter(r)]
    res = validate_measured({**measured, "runs": runs}, profile, load_device(device), MODEL)
    pts = stage_points(res, held_out_only)
    walls = [r["wall"] for r in res["runs"] if r["wall"]["error"] is not None
             and (r.get("held_out") or not held_out_only)]
    mem = [r["memory"]["error"] for r in res["runs"] if r.get("memory") and (r.get("held_out") or not held_out_only)]
    graph = [w["error"] for r, w in ((r, r["wall"]) for r in res["runs"])
             if r.get("execution") == "graph" and w["error"] is not None]
    eager_runs = [r for r in res["runs"] if r.get("execution") == "eager" and r["wall"]["error"] is not None
                  and (r.get("held_out") or not held_out_only)]
    eager_walls = [r["wall"]["error"] for r in eager_runs]
    in_band = sum(1 for r in eager_runs if r["wall"].get("in_band"))
    print(f"{name}: {stats(p['error'] for p in pts)}", flush=True)
    return {"name": name, "profile": profile.label, "device": device, "stages": pts,
            "stage_stats": stats(p["error"] for p in pts), "graph_wall_stats": stats(graph),
            "eager_wall_stats": stats(eager_walls), "eager_in_band": [in_band, len(eager_runs)],
            "memory_stats": stats(mem),
            "memory": [{"run": r.get("label"), **r["memory"]} for r in res["runs"] if r.get("memory")],
            "walls": [{"run": r.get("label"), "execution": r.get("execution"), **r["wall"]} for r in res["runs"]],
            "module_types": res["summary"]["module_type_mae"], "n_walls": len(walls)}


def leave_out(doc: Mapping[str, Any], device: str, drop: set[str], inmodel: list[dict[str, Any]],
              keep_run: Any) -> Profile:
    """The profile refitted without the sweep points measured only for `drop` workloads and without their
    in-model runs."""
    pts = {k: v for k, v in doc["sweep"]["points"].items() if not (set(v.get("sources") or ()) <= drop)}
    d2 = {**doc, "sweep": {**doc["sweep"], "points": pts}, "factors": {}}
    prof = profile_from_document(d2, load_device(device), "leave-one-out")
    kept = [r for r in inmodel if keep_run(r)]
    return evolve(prof, factors=fit_factors(inmodel_observations(perf_model(prof), kept, MODEL)), cache=[])


def family_loo(profile: Profile, every: int = 2) -> dict[str, Any]:
    """Each sweep ladder point (every `every`-th) predicted standalone by its family fitted without it."""
    pts = cached_points(profile.sweep)
    model = perf_model(profile)
    assert model is not None
    hw = model.hw
    errs: dict[str, list[float]] = {}
    ladder = [i for i, p in enumerate(pts) if any(s.startswith("sweep:") for s in p.sources)]
    for j, i in enumerate(ladder):
        if j % every:
            continue
        p = pts[i]
        fam_pts = [q for k, q in enumerate(pts) if k != i and q.q.family == p.q.family]
        e = PerfModel(fam_pts, hw).standalone(p.q)
        if e is not None:
            errs.setdefault(p.q.family, []).append((e.seconds - p.seconds) / p.seconds)
    return {f: stats(v) for f, v in sorted(errs.items())}


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def markdown(res: Mapping[str, Any]) -> str:
    lines = ["# Latency-model accuracy (device time per stage unless said)", "",
             "`python scripts/accuracy.py` (CPU) on the committed measurements; see the script's docstring for what "
             "is held out where.", "",
             "| check | profile | stage points | median abs error | max abs error | within ±5% | within ±8% | "
             "within ±20% |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for c in res["checks"]:
        s = c["stage_stats"]
        if not s.get("n"):
            continue
        lines.append(f"| {c['name']} | {c['profile']} | {s['n']} | {pct(s['median_abs'])} | {pct(s['max_abs'])} | "
                     f"{s['within_5pct']}/{s['n']} | {s['within_8pct']}/{s['n']} | {s['within_20pct']}/{s['n']} |")
    lines += ["", "Walls and memory (host band: each eager run re-predicted with the profile's host costs "
              f"x {HOST_BAND[0]:.2f} and x {HOST_BAND[1]:.2f}, the spread between three H200 hosts, as "
              "`request.wall_band` gives it):", "",
              "| check | CUDA-graph decode wall (median / max) | eager wall (median / max) "
              "| eager wall inside the host band | peak memory (median / max) |",
              "|---|---|---|---|---|"]
    for c in res["checks"]:
        g, e, m = c["graph_wall_stats"], c["eager_wall_stats"], c["memory_stats"]

        def mm(s: Mapping[str, Any]) -> str:
            return f"{pct(s.get('median_abs'))} / {pct(s.get('max_abs'))} ({s.get('n', 0)})" if s.get("n") else "-"
        b = c.get("eager_in_band") or [0, 0]
        lines.append(f"| {c['name']} | {mm(g)} | {mm(e)} | {b[0]}/{b[1]} | {mm(m)} |")
    lines += ["", "## Per kernel family (standalone, each ladder point left out of its own fit)", "",
              "| family | points | median abs error | within ±5% | max |", "|---|---:|---:|---:|---:|"]
    for f, s in res["families"].items():
        lines.append(f"| {f} | {s['n']} | {pct(s['median_abs'])} | {s['within_5pct']}/{s['n']} | "
                     f"{pct(s['max_abs'])} |")
    for c in res["checks"]:
        lines += ["", f"## {c['name']}", "", f"Profile: {c['profile']}.", "",
                  "| run | stage | predicted ms | measured ms | error |", "|---|---|---:|---:|---:|"]
        for p in c["stages"]:
            lines.append(f"| {p['run']} | {p['stage']} | {p['predicted_s'] * 1e3:.3f} | {p['measured_s'] * 1e3:.3f} "
                         f"| {p['error'] * 100:+.1f}% |")
        if c["memory"]:
            lines += ["", "| run | predicted peak GiB | measured peak GiB | error |", "|---|---:|---:|---:|"]
            for m in c["memory"]:
                lines.append(f"| {m['run']} | {m['predicted_bytes'] / 2**30:.2f} | {m['measured_bytes'] / 2**30:.2f} | "
                             f"{m['error'] * 100:+.1f}% |")
        lines += ["", "| run | execution | predicted wall ms | host band ms | measured wall ms | error | "
                  "measured run spread |", "|---|---|---:|---:|---:|---:|---:|"]
        for w in c["walls"]:
            band = w.get("band_s")
            bt = (f"{band[0] * 1e3:.2f}-{band[1] * 1e3:.2f}" + ("" if w.get("in_band") else " (outside)")
                  if band else "-")
            lines.append(f"| {w['run']} | {w['execution']} | {w['predicted_s'] * 1e3:.2f} | {bt} | "
                         f"{w['measured_s'] * 1e3:.2f} | {pct(w['error'])} | {pct(w.get('measured_spread'))} |")
    return "\n".join(lines) + "\n"


def main(out_dir: str = str(RESULTS / "accuracy")) -> None:
    h200, h100 = packaged_profile(load_device("h200")), packaged_profile(load_device("h100"))
    held = load(RESULTS / "h200-cli" / "val" / "measured.json")
    first = load(RESULTS / "h200" / "measured.json")
    inmodel = load(RESULTS / "h200-cli" / "profile.inmodel.json")
    h100_meas = load(RESULTS / "h100" / "measured.json")
    doc = h200.document
    checks = [
        evaluate("H200 held out (same session as the calibration)", held, h200, "h200", True),
        evaluate("H200 held out, first session (another machine)", first, h200, "h200", True),
        evaluate("H200 calibration workloads (in sample, for reference)", inmodel, h200, "h200", False),
    ]
    grid = leave_out(doc, "h200", {"gundam:2x3"}, inmodel["runs"], lambda r: run_label(r["workload"]) != "gundam:2x3")
    checks.append(evaluate("H200 leave one page grid out (gundam 2x3)", inmodel, grid, "h200", False,
                           lambda r: run_label(r["workload"]) == "gundam:2x3"))
    b8 = leave_out(doc, "h200", {"base@8", "decode@8"}, inmodel["runs"], lambda r: int(r["workload"]["batch"]) != 8)
    checks.append(evaluate("H200 leave one batch size out (8: prefill and decode)", inmodel, b8, "h200", False,
                           lambda r: int(r["workload"]["batch"]) == 8))
    checks += [
        evaluate("H100 profile moved to the H200 (held-out H200 runs)", held,
                 transfer_profile(h100, load_device("h200")), "h200", True),
        evaluate("H200 profile moved to the H100 (all H100 runs)", h100_meas,
                 transfer_profile(h200, load_device("h100")), "h100", False),
        evaluate("H100 calibration workloads (in sample, for reference)", h100_meas, h100, "h100", False),
        evaluate("H200 datasheet only (held-out runs)", held, default_profile(load_device("h200")), "h200", True),
        evaluate("H100 datasheet only (all H100 runs)", h100_meas, default_profile(load_device("h100")), "h100",
                 False),
    ]
    res = {"checks": checks, "families": family_loo(h200)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.json").write_text(json.dumps(res, indent=1, sort_keys=True))
    (out / "accuracy.md").write_text(markdown(res))
    print(f"wrote {out}/accuracy.md")


if __name__ == "__main__":
    main(*sys.argv[1:])
