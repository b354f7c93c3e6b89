"""Re-run the committed H100 validation offline (CPU): predict every measured workload with the calibrated
profile and compare. Writes benchmarks/results/<run>/validation.{json,md}.

    python scripts/validate_h100.py benchmarks/results/h100
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dsocr_trace.validate.compare import to_markdown
from dsocr_trace.validate.offline import validate_measured


def main(folder: str, calib_folder: str | None = None) -> None:
    d = Path(folder)
    c = Path(calib_folder or folder)
    measured = json.loads((d / "measured.json").read_text())
    calibration = json.loads((c / "calibration.json").read_text())
    op_times = json.loads((c / "optimes.json").read_text())
    res = validate_measured(measured, calibration, "deepseek-ai/DeepSeek-OCR", op_times=op_times)
    (d / "validation.json").write_text(json.dumps(res, indent=1, sort_keys=True))
    (d / "validation.md").write_text(to_markdown(res))
    print(json.dumps(res["summary"], indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
