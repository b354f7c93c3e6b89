"""Build the packaged calibrated profile of a GPU from a committed measurement folder.

    python scripts/build_profile.py benchmarks/results/h100 src/dsocr_trace/hardware/profiles/h100.json

Inputs: calibration.json (microbenchmarks), optimes.json (operator benchmarks of every traced op),
measured.json (eager and CUDA-graph decode steps of the same card, for the host cost and graph gap fits).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dsocr_trace.hardware.calibration import fit_graph_gap, fit_host_costs, profile_from_calibration
from dsocr_trace.hardware.profile import save_profile
from dsocr_trace.validate.offline import device_for, graph_rows, host_rows


def main(folder: str, out: str) -> None:
    d = Path(folder)
    cal = json.loads((d / "calibration.json").read_text())
    ops = json.loads((d / "optimes.json").read_text())
    measured = json.loads((d / "measured.json").read_text())
    spec = device_for(str(cal.get("device", {}).get("name", "")))
    prof = profile_from_calibration(cal, spec, source=f"calibrated:{Path(out).name}", op_times=ops)
    prof = fit_host_costs(prof, host_rows("deepseek-ai/DeepSeek-OCR", measured["runs"]))
    prof = fit_graph_gap(prof, graph_rows(measured["runs"]))
    save_profile(prof, out)
    print(f"{out}: {len(prof.op_table)} measured ops, host {prof.host_op_s * 1e6:.1f} us/call, "
          f"graph gap {prof.graph_kernel_s * 1e6:.2f} us")


if __name__ == "__main__":
    main(*sys.argv[1:])
