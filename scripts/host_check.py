"""Does a host probe predict the host cost of eager decode? Leave-one-setting-out on the lent H200.

    python scripts/host_check.py [FOLDER]     # default benchmarks/results/h200-host; writes FOLDER/host-check.md

Measured (benchmarks/validation/run_h200_host.sh): one H200 driven by one pinned CPU core at four host
settings (alone, SMT sibling busy, core shared with one and two busy loops); at each, the CPU-only probe
(validate.hostprobe), calibrate's CUDA host probe, and eager decode steps (harness). For each setting the
in-model host cost per call is fitted from that setting's walls (calibration.host_per_call); the ratio
per-call / probe figure is taken as the median over the *other* settings and applied to the held-out setting's
probe, and its decode walls are predicted with the packaged H200 profile driven by that host cost
(hardware.profile.host_scaled). Baseline: the packaged profile's own calibration host, no probe.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from dsocr_trace.hardware.calibration import host_per_call
from dsocr_trace.hardware.profile import Profile, host_scaled, packaged_profile
from dsocr_trace.hardware.spec import DeviceSpec, load_device
from dsocr_trace.validate.offline import host_rows, validate_measured

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "h200-host"
SETTINGS = ("alone", "smt", "share1", "share2")
MODEL = "deepseek-ai/DeepSeek-OCR"


def wall_errors(measured: dict[str, Any], prof: Profile, spec: DeviceSpec) -> list[float]:
    return [r["wall"]["error"] for r in validate_measured(measured, prof, spec, MODEL)["runs"]]


def main(results: Path = RESULTS) -> None:
    spec = load_device("h200")
    prof = packaged_profile(spec)
    data = {}
    for s in SETTINGS:
        meas = json.loads((results / s / "measured.json").read_text())
        probe = json.loads((results / s / "probe.json").read_text())
        data[s] = {"measured": meas, "per_call": host_per_call(host_rows(MODEL, meas["runs"])),
                   "cpu": probe["cpu_op_s"], "cuda": probe["cuda"]["host_op_s"]}
    lines = ["# Host probe vs eager decode walls (H200, one pinned core, four host settings)", "",
             "`python scripts/host_check.py`; see its docstring. Per call in us; wall errors are predicted vs "
             "measured eager decode step walls (tiny, batch 1 KV 300/1000/3000, batch 4 KV 1000).", "",
             "| setting | CPU probe | CUDA probe | in-model per call | no probe: median / worst | "
             "CPU probe, LOSO: median / worst | CUDA probe, LOSO: median / worst |", "|---|---|---|---|---|---|---|"]
    summary: dict[str, list[float]] = {"none": [], "cpu": [], "cuda": []}
    for s in SETTINGS:
        d = data[s]
        cells = []
        for key in ("none", "cpu", "cuda"):
            if key == "none":
                p = prof
            else:
                ratio = statistics.median(data[o]["per_call"] / data[o][key] for o in SETTINGS if o != s)
                p = host_scaled(prof, ratio * d[key] / prof.host_op_s)
            errs = [abs(e) for e in wall_errors(d["measured"], p, spec)]
            summary[key] += errs
            cells.append(f"{statistics.median(errs):.0%} / {max(errs):.0%}")
        lines.append(f"| {s} | {d['cpu'] * 1e6:.2f} | {d['cuda'] * 1e6:.2f} | {d['per_call'] * 1e6:.1f} | "
                     + " | ".join(cells) + " |")
    lines += ["", "All steps: " + ", ".join(f"{k}: median {statistics.median(v):.0%}, worst {max(v):.0%}"
                                           for k, v in summary.items()), ""]
    (results / "host-check.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS)
