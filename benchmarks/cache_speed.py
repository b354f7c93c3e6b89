"""How fast traced work is reused: analyze and the 180-point sweep in fresh processes with a cold and a warm disk
cache, and sweep points per second once their (mode, batch, GPU, execution) is priced.

    python benchmarks/cache_speed.py --out benchmarks/results/cache

Each timing is one fresh `dsocr-trace` process (imports included; `import_s` is the bare import cost of the CLI
module and torch, measured separately), so the numbers are what a user waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = ["sweep", "--modes", "tiny,small,base,large,gundam:2x3", "--devices", "rtx5090,h100,h200",
         "--batch", "1,2,4,8,16,32", "--output-tokens", "500,2000"]
ANALYZE = ["analyze", "--mode", "base", "--device", "h100", "--json"]


def _timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dsocr_trace", *argv], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _points_per_s() -> dict[str, float]:
    """Rows per second of run_sweep over output-token counts once the combinations are priced (in-process)."""
    from dsocr_trace.sweep import run_sweep

    run_sweep("deepseek-ai/DeepSeek-OCR", "tiny,base", "h100,h200", "1,8", "500")  # price the combinations
    tokens = ",".join(str(n) for n in range(100, 100 + 250 * 4, 4))  # 250 output lengths
    t0 = time.perf_counter()
    rows = run_sweep("deepseek-ai/DeepSeek-OCR", "tiny,base", "h100,h200", "1,8", tokens)
    sec = time.perf_counter() - t0
    return {"points": len(rows), "seconds": round(sec, 3), "points_per_s": round(len(rows) / sec, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/cache"))
    args = ap.parse_args()
    cache = tempfile.mkdtemp(prefix="dsocr-trace-bench-cache-")
    env = dict(os.environ, DSOCR_TRACE_CACHE=cache)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, transformers, dsocr_trace.cli"], check=True)
    import_s = time.perf_counter() - t0
    doc = {
        "command": "python benchmarks/cache_speed.py",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "import_s": round(import_s, 2),
        "analyze_cold_s": round(_timed(ANALYZE, env), 2),
        "analyze_warm_s": round(_timed(ANALYZE, env), 2),
        "sweep_180_cold_s": round(_timed([*SWEEP, "--out", f"{cache}/a.csv"], env), 2),
        "sweep_180_warm_s": round(_timed([*SWEEP, "--out", f"{cache}/b.csv"], env), 2),
    }
    os.environ["DSOCR_TRACE_CACHE"] = cache
    doc["priced_points"] = _points_per_s()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(json.dumps(doc, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
