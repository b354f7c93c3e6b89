"""KV-cache update (the DynamicCache `cat`) predicted vs measured for one decode step at KV 1000 on the H100.

Measured: CatArrayBatchedCopy kernels launched inside `self_attn` ranges of the first profiled step in the
committed Chrome trace. Predicted: the `aten.cat` nodes of the decode plan in the same modules (the cache's K
and V per layer, and RoPE's rotate_half).

    python scripts/kv_cache_check.py
"""

from __future__ import annotations

from pathlib import Path

from dsocr_trace.analyze import run_analysis
from dsocr_trace.hardware.profile import packaged_profile
from dsocr_trace.hardware.spec import load_device
from dsocr_trace.request import predict_request
from dsocr_trace.validate.chrome import kernel_owners, load_trace
from dsocr_trace.workload import make_workload

TRACE = Path(__file__).resolve().parents[1] / "benchmarks/results/h100/trace_decode_kv1000_b1.json.gz"


def measured_us() -> tuple[int, float]:
    _, owned = kernel_owners(load_trace(TRACE))
    cats = [e for e, owner, step in owned
            if step == 0 and "CatArrayBatchedCopy" in e["name"] and owner.endswith("self_attn")]
    return len(cats), sum(float(e["dur"]) for e in cats)


def main() -> None:
    a = run_analysis("deepseek-ai/DeepSeek-OCR", make_workload("base", kv_len=1000))
    spec = load_device("h100")
    rows = [r for r in predict_request(a, spec, packaged_profile(spec))["nodes"]["decode"]
            if r["op"].startswith("aten.cat") and r["module_path"].endswith("self_attn")]
    n, us = measured_us()
    pred = sum(r["device_s"] for r in rows) * 1e6
    print(f"cat kernels in decoder attention: measured {n} kernels {us:.1f} us, predicted {len(rows)} "
          f"{pred:.1f} us ({(pred - us) / us * 100:+.1f}%)")


if __name__ == "__main__":
    main()
