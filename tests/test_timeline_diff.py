from __future__ import annotations

import itertools
import json
from pathlib import Path

from dsocr_trace.commands.analyze import analyze_command
from dsocr_trace.commands.compare import diff_command


def _run(tmp: Path, name: str, **kw: object) -> dict:
    args: dict = dict(model="deepseek-ai/DeepSeek-OCR", mode="base", crops=None, image_size=None, prompt_tokens=12,
                      output_tokens=16, batch=1, kv_len=None, tracer="dispatch", out=tmp / name, graphml=None,
                      force=False, device="h100")
    args.update(kw)
    return analyze_command(**args)


def test_timeline_is_a_chrome_trace(tmp_path: Path) -> None:
    _run(tmp_path, "r", timeline=tmp_path / "t.json")
    doc = json.loads((tmp_path / "t.json").read_text())
    ev = doc["traceEvents"]
    kernels = [e for e in ev if e.get("ph") == "X" and e.get("tid") == 0]
    assert kernels and all(e["dur"] >= 0 and "module" in e["args"] and "bound" in e["args"] for e in kernels)
    # kernels on the GPU track never overlap within a phase
    for pid in {e["pid"] for e in kernels}:
        k = sorted((e["ts"], e["ts"] + e["dur"]) for e in kernels if e["pid"] == pid)
        assert all(a[1] <= b[0] + 1e-6 for a, b in itertools.pairwise(k))


def test_diff_eager_vs_fused(tmp_path: Path) -> None:
    _run(tmp_path, "eager")
    _run(tmp_path, "fused", execution="fused")
    res = diff_command(tmp_path / "eager" / "report.json", tmp_path / "fused" / "report.json", tmp_path / "d", False)
    st = res["stages"]["decode.step"]
    assert st["tc_flops"]["delta"] == 0  # the same graph
    assert st["wall_s"]["ratio"] < 0.5  # CUDA-graph decode removes the Python host time
    assert (tmp_path / "d" / "diff.md").read_text().startswith("# diff")
    assert res["request"]["pages_per_s"]["ratio"] > 1
