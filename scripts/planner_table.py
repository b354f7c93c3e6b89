"""The planner's table: base and gundam 2x3 on RTX 5090 and H100, eager and fused, 1000 output tokens.

    python scripts/planner_table.py > planner-table.md      # from any folder
"""

from __future__ import annotations

import sys
from pathlib import Path

# the checkout this script lives in, whatever the working folder and whatever copy is installed
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dsocr_trace.analyze import run_analysis
from dsocr_trace.hardware.profile import packaged_profile
from dsocr_trace.hardware.spec import load_device
from dsocr_trace.request import predict_request
from dsocr_trace.workload import make_workload


def main() -> None:
    print("| mode | GPU | profile | execution | vision ms (device / wall) | prefill ms (device / wall) | "
          "ms per output token (device / wall) | TTFT ms | pages/s | pages/GPU-day |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for mode, crops in (("base", None), ("gundam", "2x3")):
        a = run_analysis("deepseek-ai/DeepSeek-OCR", make_workload(mode, crops=crops, output_tokens=1000))
        for dev in ("rtx5090", "h100", "h200"):
            spec = load_device(dev)
            prof = packaged_profile(spec)
            for ex in ("eager", "compiled", "fused"):
                p = predict_request(a, spec, prof, ex)
                st, r = p["stages"], p["request"]
                vis = [st[s] for s in ("vision.sam", "vision.clip", "projector")]
                pre = [st[s] for s in ("decoder.prefill", "lm_head.prefill")]
                v_dev, v_wall = sum(s["device_s"] for s in vis), sum(s["wall_s"] for s in vis)
                p_dev, p_wall = sum(s["device_s"] for s in pre), sum(s["wall_s"] for s in pre)
                label = a.workload.label
                print(f"| {label} | {spec.name} | {prof.source.split(':')[0]} | {ex} | {v_dev * 1e3:.1f} / "
                      f"{v_wall * 1e3:.1f} | {p_dev * 1e3:.1f} / {p_wall * 1e3:.1f} | "
                      f"{r['decode_device_mean_s'] * 1e3:.2f} / {r['tpot_mean_s'] * 1e3:.2f} | "
                      f"{r['ttft_s'] * 1e3:.1f} | {r['pages_per_s']:.3f} | {r['pages_per_gpu_day']:,.0f} |")


if __name__ == "__main__":
    main()
