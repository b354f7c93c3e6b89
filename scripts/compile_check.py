"""torch.compile predicted (`--execution compiled`) vs measured on the lent H200 (any CPU).

    python scripts/compile_check.py      # writes benchmarks/results/h200-compile/validation.md

Measured: benchmarks/results/h200-compile (validate/compile_harness.py: each stage compiled with inductor for the
prefill; the language model and lm_head with mode="reduce-overhead" and a StaticCache for decode). Predicted:
the packaged H200 profile's kernel families over the fused plan (inductor-style fusion: pointwise chains within a
module, fused RMSNorm and MoE groups), decode replayed as CUDA graphs. Device time needs nothing from these
measurements. The two host constants do: the per-step host cost of a compiled decode (Profile.compiled_step_s) is
the B1 KV1000 step's wall minus its kernels (fitted there; the other three decode points are held out), the
per-kernel host cost of a compiled prefill (Profile.compiled_launch_s) is the one prefill's (in sample).
"""

from __future__ import annotations

import json
from pathlib import Path

from dsocr_trace.analyze import run_analysis
from dsocr_trace.hardware.profile import packaged_profile
from dsocr_trace.hardware.spec import load_device
from dsocr_trace.request import predict_phases
from dsocr_trace.workload import make_workload

ROOT = Path(__file__).resolve().parents[1]
RES = ROOT / "benchmarks" / "results" / "h200-compile"
MODEL = "deepseek-ai/DeepSeek-OCR"


def main() -> None:
    spec = load_device("h200")
    prof = packaged_profile(spec)
    runs = json.loads((RES / "measured.json").read_text())["runs"]
    runs += json.loads((RES / "measured_decode.json").read_text())["runs"]
    lines = ["# torch.compile on the H200: predicted vs measured", "",
             "`python scripts/compile_check.py`; see its docstring for what is fitted where.", "",
             "| workload | execution | quantity | predicted ms | measured ms | error | note |",
             "|---|---|---|---:|---:|---:|---|"]
    for r in runs:
        w = r["workload"]
        if "error" in r or not r.get("total", {}).get("device_s"):
            continue
        kv = w.get("kv_len") if w["phase"] == "decode" else None
        wl = make_workload(w["mode"], batch=w["batch"], kv_len=kv, output_tokens=1)
        a = run_analysis(MODEL, wl)
        ex = r["execution"]
        pred = predict_phases(a, spec, prof, ex)
        ph = pred["phases"][w["phase"]]
        tag = f"{w['label']} B{w['batch']}" + (f" KV{kv}" if kv else "") + f" {w['phase']}"
        fitted = ex == "compiled" and (w["phase"] == "prefill" or (w["batch"] == 1 and kv == 1000))
        pairs = (("device", ph["device_s"], r["total"]["device_s"]), ("wall", ph["wall_s"], r["total"]["wall_s"]))
        for q, p, m in pairs:
            note = "host constant fitted here" if fitted and q == "wall" else ""
            lines.append(f"| {tag} | {ex} | {q} | {p * 1e3:.3f} | {m * 1e3:.3f} | {(p - m) / m * 100:+.1f}% | "
                         f"{note} |")
        if w["phase"] == "prefill":
            for st, m in sorted((r.get("stages") or {}).items()):
                key = {"decoder": "decoder.prefill", "lm_head": "lm_head.prefill"}.get(st, st)
                p = pred["stages"].get(key, {}).get("device_s", 0.0)
                if m["device_s"] > 0 and st != "projector":  # the harness times only the projector's linear
                    lines.append(f"| {tag} | {ex} | {st} device | {p * 1e3:.3f} | {m['device_s'] * 1e3:.3f} | "
                                 f"{(p - m['device_s']) / m['device_s'] * 100:+.1f}% | |")
    (RES / "validation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
