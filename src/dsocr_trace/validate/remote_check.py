"""Predicted vs measured for the official remote code (`remote_harness` runs on a GPU, this on any machine).

Each measured run is re-predicted with `--implementation remote` on the measured GPU's catalog entry and
packaged profile (calibrated on the native model's fixed operator sweep: no remote-code time enters it), twice:
* `uniform`: the tool's default routing, what a user gets;
* `measured-hits`: the experts each MoE layer really used in that run (read from which expert modules ran,
  rows spread evenly over them), so the comparison isolates the kernel plan from the random-weight router.
Prefill stages compare summed kernel time and kernel counts; decode forward steps the step's kernel time and
count; generate() loops the per-token wall against the predicted decode-step wall and its host band.
"""

from __future__ import annotations

import gzip
import json
import re
import statistics
from pathlib import Path
from typing import Any

from dsocr_trace.costs import CostOptions
from dsocr_trace.costs.routing import Routing

STAGE_OF = {"vision.sam": "vision.sam", "vision.clip": "vision.clip", "projector": "projector",
            "decoder": "decoder.prefill", "lm_head": "lm_head.prefill"}
KEY_STAGES = ("decoder", "lm_head")  # what the rewrite models; vision keeps the native trace
_EXPERT = re.compile(r"^model\.layers\.(\d+)\.mlp\.experts\.(\d+)$")


def load(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    doc: dict[str, Any] = json.loads(raw)
    return doc


def measured_hits(run: dict[str, Any], experts: int = 64) -> Routing | None:
    """Per MoE layer, the experts whose module ran in this run, as a routing histogram (even rows)."""
    hits: dict[int, set[int]] = {}
    for path, rec in run.get("modules", {}).items():
        m = _EXPERT.match(path)
        if m and rec.get("calls", 0) > 0:
            hits.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    if not hits:
        return None
    hist = tuple((layer, tuple(1 if e in used else 0 for e in range(experts))) for layer, used in sorted(hits.items()))
    return Routing(kind="histogram", histogram=hist, source="measured expert hits")


def _workload(w: dict[str, Any]) -> Any:
    from dsocr_trace.workload import make_workload

    if w["phase"] == "prefill":
        crops = f"{w['crops'][0]}x{w['crops'][1]}" if w.get("crops") else None
        return make_workload(w["mode"], crops=crops, batch=w["batch"], prompt_tokens=w["prompt_tokens"])
    return make_workload("base", batch=w["batch"], kv_len=w["kv_len"] + 1)


# The remote DeepseekOCRModel subclasses DeepseekV2Model and calls its forward in the same module call, so the
# harness (remote_stage) books the decoder model's own ops (the 4-D mask) with the vision glue as "projector";
# the prediction's ops of the native path that stands for that module are booked the same way.
DECODER_MODEL = "model.language_model"


def _decoder_model_self(modules: dict[str, dict[str, Any]]) -> tuple[float, int]:
    """Device time and kernels of DECODER_MODEL's own ops (its inclusive total less its children's)."""
    own = modules.get(DECODER_MODEL)
    if own is None:
        return 0.0, 0
    depth = DECODER_MODEL.count(".") + 1
    kids = [v for k, v in modules.items() if k.startswith(DECODER_MODEL + ".") and k.count(".") == depth]
    return (own["device_s"] - sum(v["device_s"] for v in kids), own["kernels"] - sum(v["kernels"] for v in kids))


def _as_harness_books(stages: dict[str, Any], modules: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Predicted prefill stages with DECODER_MODEL's own ops moved from the decoder to the projector."""
    dev, kern = _decoder_model_self(modules)
    out = {k: dict(v) for k, v in stages.items()}
    out["decoder.prefill"]["device_s"] -= dev
    out["decoder.prefill"]["kernels"] -= kern
    out["projector"]["device_s"] += dev
    out["projector"]["kernels"] += kern
    return out


def _err(pred: float, meas: float) -> float | None:
    return pred / meas - 1.0 if meas > 0 else None


def partition_target(doc: dict[str, Any], source_figures: dict[str, Any]) -> Any:
    """The prediction target of a run made inside an SM partition of an H200: the partition's spec and the
    figures measured inside it, the full card's calibration moved there by the cross-GPU model (never a time
    measured on the partition itself). `source_figures`: the full card's figures taken the same way."""
    from dsocr_trace.hardware.profile import packaged_profile, transfer_profile
    from dsocr_trace.hardware.spec import load_device, partition_of
    from dsocr_trace.prediction import Target
    from dsocr_trace.validate.partition import gpu_figures_of

    card = load_device("h200")
    spec = partition_of(card, int(doc["device"]["partition_sms"]))
    moved = transfer_profile(packaged_profile(card), spec, figures=gpu_figures_of({"figures": doc["figures"]}, spec),
                             source=gpu_figures_of(source_figures, card))
    return Target(spec, moved, "eager", "bf16", ())


def compare(doc: dict[str, Any], target: Any = None) -> dict[str, Any]:
    """Every run of a remote-harness document against its prediction on `target` (default: the catalog H200
    with its packaged profile)."""
    from dsocr_trace.analyze import run_analysis
    from dsocr_trace.hardware.profile import HOST_BAND
    from dsocr_trace.prediction import Target, predict
    from dsocr_trace.request import fit_decode, fit_points
    from dsocr_trace.workload import make_workload

    if target is None:
        target = Target.resolve("h200", None, None, "eager", "bf16")
    model = "deepseek-ai/DeepSeek-OCR"
    rows: list[dict[str, Any]] = []
    for run in doc.get("runs", []):
        if "error" in run:
            continue
        w = run["workload"]
        wl = _workload(w)
        for routing_name, routing in (("uniform", Routing()), ("measured-hits", measured_hits(run))):
            if routing is None:
                continue
            a = run_analysis(model, wl, opts=CostOptions(routing=routing), implementation="remote")
            sections = predict(a, target).sections
            ps = sections["stages"]
            if w["phase"] == "prefill":
                ps = _as_harness_books(ps, sections["modules"]["prefill"])
            base = {"phase": w["phase"], "workload": w["label"], "batch": w["batch"], "kv_len": w["kv_len"],
                    "routing": routing_name}
            if w["phase"] == "prefill":
                for st, m in sorted(run["stages"].items()):
                    p = ps[STAGE_OF[st]]
                    rows.append(base | {"stage": st, "pred_device_s": p["device_s"], "meas_device_s": m["device_s"],
                                        "err": _err(p["device_s"], m["device_s"]), "pred_kernels": p["kernels"],
                                        "meas_kernels": m["kernels"],
                                        "kernel_err": _err(p["kernels"], m["kernels"])})
            else:
                p, m = ps["decode.step"], run["total"]
                rows.append(base | {"stage": "decode.step", "pred_device_s": p["device_s"],
                                    "meas_device_s": m["device_s"], "err": _err(p["device_s"], m["device_s"]),
                                    "pred_kernels": p["kernels"], "meas_kernels": m["kernels"],
                                    "kernel_err": _err(p["kernels"], m["kernels"])})
    loops = []
    for loop in doc.get("loops", []):
        if "error" in loop:
            continue
        w = loop["workload"]
        wl = make_workload("base", batch=w["batch"], kv_len=round(w["kv_mean"]))
        a = run_analysis(model, wl, implementation="remote")
        step = predict(a, target).sections["stages"]["decode.step"]
        kv = round(w["kv_mean"])
        fit = fit_decode(a, target.spec, target.profile, "eager", fit_points(wl))
        walls = [fit.host_scaled(f).step(kv, target.profile).wall_s for f in HOST_BAND]
        meas = loop["per_token"]
        loops.append({"batch": w["batch"], "kv_mean": w["kv_mean"], "meas_wall_s": meas["wall_s"],
                      "pred_wall_s": fit.step(kv, target.profile).wall_s, "band_s": walls,
                      "inside_band": walls[0] <= meas["wall_s"] <= walls[1],
                      "meas_kernels": meas["kernels"], "pred_kernels": step["kernels"],
                      "meas_syncs": meas["syncs_d2h"], "pred_syncs": sum(fit.syncs),
                      "meas_device_s": meas["device_s"], "pred_device_s": step["device_s"]})
    return {"device": doc.get("device", {}).get("name"), "partition_sms": doc.get("device", {}).get("partition_sms"),
            "target": target.spec.key, "profile": target.profile.label, "rows": rows, "loops": loops,
            "summary": summarize(rows)}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for routing in ("uniform", "measured-hits"):
        sel = [r for r in rows if r["routing"] == routing and r["err"] is not None]
        per: dict[str, Any] = {}
        for st in sorted({r["stage"] for r in sel}):
            errs = [abs(r["err"]) for r in sel if r["stage"] == st]
            kerr = [abs(r["kernel_err"]) for r in sel if r["stage"] == st and r["kernel_err"] is not None]
            per[st] = {"n": len(errs), "median_abs_err": statistics.median(errs), "max_abs_err": max(errs),
                       "median_abs_kernel_err": statistics.median(kerr) if kerr else None}
        model_rows = [abs(r["err"]) for r in sel if r["stage"] in (*KEY_STAGES, "decode.step")]
        out[routing] = {"stages": per,
                        "modelled_median_abs_err": statistics.median(model_rows) if model_rows else None}
    return out
