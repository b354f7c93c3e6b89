"""Predicted vs measured: per stage, per module type, per module; relative errors; JSON and Markdown.

Measured data come from the harness (`measured.json`, schema dsocr-trace/measured/1), from a documented
measured-timings file of the same schema taken anywhere, or from a torch.profiler Chrome trace whose
record_function ranges carry module paths (see `chrome.py`). Predictions come from a report.json (its
`predictions`) or are computed here for each measured workload.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

# Module families the accuracy targets name; a path maps to the first family whose pattern matches.
FAMILIES: tuple[tuple[str, str], ...] = (
    ("SAM attention (incl. rel-pos bias)", r"sam_encoder\.layers\.\d+\.attn"),
    ("SAM MLP", r"sam_encoder\.layers\.\d+\.mlp"),
    ("SAM block other (norms, windows, residual)", r"sam_encoder\.layers\.\d+"),
    ("SAM patch embed, neck, convs", r"sam_encoder"),
    ("CLIP block", r"vision_encoder"),
    ("projector and merge", r"^(model\.multi_modal_projector|model\.vision_tower|model)$"),
    ("decoder attention (incl. RoPE, KV-cache update)", r"language_model\.layers\.\d+\.self_attn"),
    ("MoE", r"language_model\.layers\.([1-9]|\d\d+)\.mlp"),
    ("dense MLP", r"language_model\.layers\.0\.mlp"),
    ("RMSNorm", r"(layernorm|\.norm)$"),
    ("decoder other (embedding, RoPE tables, masks)", r"language_model"),
    ("lm_head", r"^(lm_head)?$"),
)
_COMPILED = [(name, re.compile(pat)) for name, pat in FAMILIES]


def family(path: str) -> str:
    for name, pat in _COMPILED:
        if pat.search(path):
            return name
    return "other"


def rel_err(pred: float, meas: float) -> float | None:
    return (pred - meas) / meas if meas > 0 else None


def _pair(pred: float, meas: float) -> dict[str, Any]:
    return {"predicted_s": pred, "measured_s": meas, "error": rel_err(pred, meas)}


def measured_stage_map(run: dict[str, Any]) -> dict[str, float]:
    """Measured device seconds per report stage name."""
    phase = run["workload"]["phase"]
    st = run.get("stages") or {}
    if "device_s" not in run.get("total", {}):
        return {}  # a CUDA-graph run: wall time only
    if phase == "decode":
        return {"decode.step": float(run["total"]["device_s"])}
    names = {"decoder": "decoder.prefill", "lm_head": "lm_head.prefill"}
    if not st and run.get("modules"):
        from dsocr_trace.trace.ir import stage_of

        derived: dict[str, float] = {}
        for path, m in run["modules"].items():
            k = stage_of(path, "prefill")
            derived[k] = derived.get(k, 0.0) + float(m.get("device_s", 0.0))
        return {names.get(k, k): v for k, v in derived.items()}
    return {names.get(k, k): float(v["device_s"]) for k, v in st.items()}


def families_of(modules: dict[str, dict[str, Any]], key: str = "device_s") -> dict[str, float]:
    out: dict[str, float] = {}
    for path, m in modules.items():
        f = family(path)
        out[f] = out.get(f, 0.0) + float(m.get(key, 0.0))
    return out


def predicted_families(nodes: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in nodes:
        f = family(r["module_path"])
        out[f] = out.get(f, 0.0) + float(r["device_s"])
    return out


def compare_run(pred: dict[str, Any], run: dict[str, Any], phase: str) -> dict[str, Any]:
    """pred: a report's `predictions`; run: one measured run of the same workload and phase."""
    meas_stages = measured_stage_map(run)
    stages = {}
    for name, m in sorted(meas_stages.items()):
        p = pred["stages"].get(name, {}).get("device_s", 0.0)
        stages[name] = _pair(p, m)
    fam_m = families_of(run.get("modules") or {})
    fam_p = predicted_families(pred["nodes"][phase])
    fams = {f: _pair(fam_p.get(f, 0.0), fam_m.get(f, 0.0)) for f in sorted(set(fam_m) | set(fam_p))
            if fam_m.get(f, 0.0) > 0 or fam_p.get(f, 0.0) > 0}
    total_m = float(run["total"].get("device_s") or 0.0)
    total_p = float(pred["phases"][phase]["device_s"])
    wall_m = float(run["total"].get("wall_s") or 0.0)
    wall_p = float(pred["phases"][phase]["wall_s"])
    spread = run.get("spread") or {}
    wall_spread = None
    if run["total"].get("wall_min_s") and wall_m:
        wall_spread = (run["total"]["wall_max_s"] - run["total"]["wall_min_s"]) / wall_m
    return {
        "workload": run["workload"],
        "execution": run.get("execution", "eager"),
        "device_total": _pair(total_p, total_m) if total_m else None,
        "wall": _pair(wall_p, wall_m) | {"measured_spread": wall_spread},
        "kernels": {"predicted": sum(1 for r in pred["nodes"][phase] if r["device_s"] > 0),
                    "measured": run["total"].get("kernels")},
        "stages": stages,
        "module_types": fams,
        "device_spread": spread,
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    stage_errs = [abs(v["error"]) for r in rows for v in r["stages"].values() if v["error"] is not None]
    within5 = sum(1 for e in stage_errs if e <= 0.05)
    fam: dict[str, list[float]] = {}
    for r in rows:
        for f, v in r["module_types"].items():
            if v["error"] is not None and v["measured_s"] > 5e-6:
                fam.setdefault(f, []).append(abs(v["error"]))
    walls = [abs(r["wall"]["error"]) for r in rows if r["wall"]["error"] is not None]
    return {
        "runs": len(rows),
        "stage_points": len(stage_errs),
        "stage_within_5pct": within5,
        "stage_mape": statistics.mean(stage_errs) if stage_errs else None,
        "stage_max_abs_error": max(stage_errs) if stage_errs else None,
        "module_type_mae": {f: statistics.mean(v) for f, v in sorted(fam.items())},
        "wall_mape": statistics.mean(walls) if walls else None,
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f}%"


def to_markdown(result: dict[str, Any]) -> str:
    lines = [f"# Predicted vs measured: {result.get('device', {}).get('name', '')}", ""]
    s = result["summary"]
    if result.get("predicted_device"):
        kind = result.get("profile_kind")
        lines += [f"Predicted for {result['predicted_device']}, execution {result.get('predicted_execution', '?')}"
                  + (", profile from datasheet figures only (not calibrated)" if kind == "datasheet" else "") + ".",
                  ""]
    lines += [f"Note: {n}." for n in result.get("notes") or []] + ([""] if result.get("notes") else [])
    lines += [f"Profile: {result.get('profile', '')}. Runs: {s['runs']}. Stage device time within ±5%: "
              f"{s['stage_within_5pct']}/{s['stage_points']} (MAPE {_pct(s['stage_mape'])}, "
              f"max {_pct(s['stage_max_abs_error'])}). Wall MAPE {_pct(s['wall_mape'])}.", ""]
    lines += ["## Per stage (device time)", "",
              "| workload | phase | exec | stage | predicted ms | measured ms | error |",
              "|---|---|---|---|---:|---:|---:|"]
    for r in result["runs"]:
        w = r["workload"]
        tag = f"{w['label']} B{w['batch']}" + (f" KV{w['kv_len']}" if w.get("kv_len") else "")
        for name, v in r["stages"].items():
            lines.append(f"| {tag} | {w['phase']} | {r['execution']} | {name} | {v['predicted_s'] * 1e3:.3f} | "
                         f"{v['measured_s'] * 1e3:.3f} | {_pct(v['error'])} |")
    lines += ["", "## Wall time", "", "| workload | phase | exec | predicted ms | measured ms | error | run spread |",
              "|---|---|---|---:|---:|---:|---:|"]
    for r in result["runs"]:
        w = r["workload"]
        tag = f"{w['label']} B{w['batch']}" + (f" KV{w['kv_len']}" if w.get("kv_len") else "")
        v = r["wall"]
        lines.append(f"| {tag} | {w['phase']} | {r['execution']} | {v['predicted_s'] * 1e3:.2f} | "
                     f"{v['measured_s'] * 1e3:.2f} | {_pct(v['error'])} | {_pct(v.get('measured_spread'))} |")
    lines += ["", "## Per module type (mean absolute device-time error over runs)", "", "| module type | MAE |",
              "|---|---:|"]
    for f, e in s["module_type_mae"].items():
        lines.append(f"| {f} | {e * 100:.1f}% |")
    return "\n".join(lines) + "\n"
