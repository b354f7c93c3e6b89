"""How good is a `calibrate --quick` profile? Held-out H200 runs predicted with it and with the packaged profile.

    python scripts/quick_check.py      # prints the held-out stage summary of both

Measured: benchmarks/results/h200/measured.json (validate runs; held out = outside the full calibration set, a
superset of what --quick runs). Quick profile: benchmarks/results/h200-quick/quick/profile.json.
"""

from __future__ import annotations

import json
from pathlib import Path

from dsocr_trace.hardware.profile import load_profile, packaged_profile
from dsocr_trace.hardware.spec import load_device
from dsocr_trace.validate.offline import validate_measured

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    spec = load_device("h200")
    meas = json.loads((ROOT / "benchmarks" / "results" / "h200" / "measured.json").read_text())
    quick = load_profile(ROOT / "benchmarks" / "results" / "h200-quick" / "quick" / "profile.json", spec)
    for name, prof in (("packaged", packaged_profile(spec)), ("calibrate --quick", quick)):
        s = validate_measured(meas, prof, spec, "deepseek-ai/DeepSeek-OCR")["summary_held_out"]
        print(f"{name}: {s['runs']} held-out runs, stage MAPE {s['stage_mape']:.1%}, worst "
              f"{s['stage_max_abs_error']:.1%}, {s['stage_within_5pct']}/{s['stage_points']} stage points within 5%")


if __name__ == "__main__":
    main()
