"""One fine-tuning step, predicted (`analyze --phase train`) vs measured on the lent H200 (any CPU).

    python scripts/train_check.py      # writes validation.md in each of RESULTS

Measured: measured.json of each folder in RESULTS (validate/train_harness.py: random weights, synthetic pages
and labels; per stage and pass kernel time, step wall, torch.cuda.max_memory_allocated). Predicted: the
packaged H200 profile over the traced step; memory from the traced liveness (train.memory). The profile's sweep
holds inference workloads plus the training-step sweep (validate.calsweep.CALIBRATION_TRAIN: other modes,
batches, LoRA rank and checkpointing than any run here; optimizer kernels on synthetic lists). Exact shapes are
held out: for each run, every sweep point whose query equals one of that run's traced ops is dropped before the
fit (the count is reported), so no prediction reads a time measured on its own shapes.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import attrs

from dsocr_trace.costs import cost_of
from dsocr_trace.hardware.profile import Profile, packaged_profile
from dsocr_trace.hardware.spec import DeviceSpec, load_device
from dsocr_trace.kernels.model import PerfModel, cached_points, perf_model
from dsocr_trace.kernels.query import query_of
from dsocr_trace.models.training import TrainConfig
from dsocr_trace.train.analysis import run_train_analysis
from dsocr_trace.train.memory import train_memory
from dsocr_trace.train.predict import predict_train
from dsocr_trace.workload import make_workload

ROOT = Path(__file__).resolve().parents[1]
RESULTS = (ROOT / "benchmarks" / "results" / "h200-train", ROOT / "benchmarks" / "results" / "h200-train-ckpt")
MODEL = "deepseek-ai/DeepSeek-OCR"


def err(p: float, m: float) -> float | None:
    return (p - m) / m if m > 0 else None


def without_own_shapes(prof: Profile, trace: Any) -> tuple[Profile, int]:
    """prof refitted without the sweep points whose query is one of the trace's ops: (profile, points dropped)."""
    own = set()
    for n in trace.nodes:
        c = cost_of(n)
        if c is not None and c.kernels > 0:
            own.add(query_of(n, c))
    pts = cached_points(prof.sweep)
    kept = [p for p in pts if p.q not in own]
    base = perf_model(prof)
    return attrs.evolve(prof, cache=[PerfModel(kept, base.hw, factors=prof.factors)]), len(pts) - len(kept)


def check(res: Path, spec: DeviceSpec, prof: Profile) -> None:
    runs = json.loads((res / "measured.json").read_text())["runs"]
    lines = ["# Training step on the H200: predicted vs measured", "",
             "`python scripts/train_check.py`; see its docstring. Device times in ms; memory in GiB. "
             "`dropped`: sweep points on the run's own shapes, left out of its fit.", "",
             "| workload | trainable | ckpt | step device pred | meas | err | forward err | backward err | "
             "optimizer err | peak mem pred | meas | err | dropped |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    summary: dict[str, list[float]] = {"step": [], "forward": [], "backward": [], "optimizer": [], "memory": []}
    stage_rows = []
    for r in runs:
        if "error" in r:
            continue
        w, t = r["workload"], r["train"]
        cfg = TrainConfig(optimizer=t["optimizer"], trainable=t["trainable"],
                          lora_rank=t["lora_rank"] or 16, checkpointing=bool(t["checkpointing"]),
                          precision=t["precision"])
        wl = make_workload(w["mode"], batch=w["batch"], output_tokens=1)
        ta = run_train_analysis(MODEL, wl, cfg)
        held, dropped = without_own_shapes(prof, ta.trace)
        pred = predict_train(ta, spec, held)
        mem = train_memory(ta.trace, ta.omitted_params_bytes, spec.mem_bytes)
        pp: dict[str, float] = {}
        for st in pred["stages"].values():
            for p, v in st["passes"].items():
                pp[p] = pp.get(p, 0.0) + v["device_s"]
        step_p = sum(pp.values())
        step_m = float(r["total"]["device_s"])
        errs = {p: err(pp.get(p, 0.0), float(r["passes"][p]["device_s"])) for p in ("forward", "backward", "optimizer")}
        mp, mm = float(mem["peak"]["allocated_bytes"]), float(r["memory"]["max_allocated_bytes"])
        e_step, e_mem = err(step_p, step_m), err(mp, mm)
        summary["step"].append(abs(e_step or 0))
        summary["memory"].append(abs(e_mem or 0))
        for p, e in errs.items():
            if e is not None:
                summary[p].append(abs(e))

        def f(e: float | None) -> str:
            return "-" if e is None else f"{e * 100:+.1f}%"
        lines.append(f"| {w['label']} B{w['batch']} | {t['trainable']} | {'on' if t['checkpointing'] else 'off'} | "
                     f"{step_p * 1e3:.2f} | {step_m * 1e3:.2f} | "
                     f"{f(e_step)} | {f(errs['forward'])} | {f(errs['backward'])} | {f(errs['optimizer'])} | "
                     f"{mp / 2**30:.2f} | {mm / 2**30:.2f} | {f(e_mem)} | {dropped} |")
        for name, st in r["stages"].items():
            ps = pred["stages"].get(name, {}).get("device_s", 0.0)
            if st["device_s"] > 1e-4:
                stage_rows.append(abs(err(ps, st["device_s"]) or 0))
        print(lines[-1], flush=True)
    lines += ["", "| quantity | runs | median abs error | max abs error |", "|---|---:|---:|---:|"]
    for k, v in summary.items():
        if v:
            lines.append(f"| {k} | {len(v)} | {statistics.median(v) * 100:.1f}% | {max(v) * 100:.1f}% |")
    if stage_rows:
        lines.append(f"| stage device (all stages > 0.1 ms) | {len(stage_rows)} | "
                     f"{statistics.median(stage_rows) * 100:.1f}% | {max(stage_rows) * 100:.1f}% |")
    (res / "validation.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    spec = load_device("h200")
    prof = packaged_profile(spec)
    for res in RESULTS:
        check(res, spec, prof)


if __name__ == "__main__":
    main()
