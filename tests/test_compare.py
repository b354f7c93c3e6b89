"""Predicted-vs-measured on recorded H100 measurements committed under benchmarks/results (CPU only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsocr_trace.commands.analyze import analyze_command
from dsocr_trace.commands.compare import compare_command
from dsocr_trace.hardware.profile import (
    document_bytes,
    load_profile,
    packaged_profile,
    profile_from_document,
    transfer_profile,
)
from dsocr_trace.hardware.spec import load_device
from dsocr_trace.kernels.model import perf_model
from dsocr_trace.trace.ir import stage_of
from dsocr_trace.validate.chrome import measured_from_trace
from dsocr_trace.validate.compare import compare_run, family, rel_err, summarize

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "h100"


def _measured() -> dict:
    return json.loads((RESULTS / "measured.json").read_text())


def test_error_arithmetic() -> None:
    assert rel_err(1.1, 1.0) == pytest.approx(0.1)
    assert rel_err(0.9, 1.0) == pytest.approx(-0.1)
    assert rel_err(1.0, 0.0) is None
    rows = [{"stages": {"a": {"predicted_s": 1.04, "measured_s": 1.0, "error": 0.04},
                        "b": {"predicted_s": 0.8, "measured_s": 1.0, "error": -0.2}},
             "module_types": {"MoE": {"predicted_s": 1.1e-3, "measured_s": 1e-3, "error": 0.1}},
             "wall": {"error": -0.05}}]
    s = summarize(rows)
    assert s["stage_within_5pct"] == 1 and s["stage_points"] == 2
    assert s["stage_mape"] == pytest.approx(0.12)
    assert s["module_type_mae"]["MoE"] == pytest.approx(0.1)
    assert s["wall_mape"] == pytest.approx(0.05)


def test_module_families() -> None:
    assert family("model.vision_tower.sam_encoder.layers.2.attn") == "SAM attention (incl. rel-pos bias)"
    assert family("model.vision_tower.sam_encoder.layers.2.mlp.lin1") == "SAM MLP"
    assert family("model.vision_tower.vision_encoder.encoder.layers.3.mlp.fc1") == "CLIP block"
    assert family("model.language_model.layers.0.mlp.gate_proj") == "dense MLP"
    assert family("model.language_model.layers.5.mlp.experts") == "MoE"
    assert family("model.language_model.layers.5.input_layernorm") == "RMSNorm"
    assert family("model.language_model.norm") == "RMSNorm"
    assert family("lm_head") == "lm_head" and family("") == "lm_head"


def test_packaged_profiles_are_calibrated_and_round_trip() -> None:
    h100, h200 = packaged_profile(load_device("h100")), packaged_profile(load_device("h200"))
    for p, gpu in ((h100, "H100"), (h200, "H200")):
        assert p.source == "calibrated" and gpu in (p.gpu or "") and p.date and p.driver and p.torch
        assert len(p.sweep) > 1000 and p.factors and perf_model(p) is not None
        assert p.label.startswith("calibrated on")
        again = profile_from_document(json.loads(document_bytes(p.document)), load_device(p.device or ""), "t")
        assert document_bytes(again.document) == document_bytes(p.document) and again.factors == p.factors
    moved = transfer_profile(h100, load_device("h200"))
    assert moved.source == "transferred" and moved.transfer is not None
    # the H200's measured copy figure (its device file) over the H100 calibration's
    assert moved.transfer.bw_ratio == pytest.approx(4271.7e9 / h100.mem_bw) and "transferred" in moved.label


def test_chrome_trace_matches_harness_measurement() -> None:
    w = {"mode": "base", "label": "base", "crops": None, "batch": 1, "prompt_tokens": 12, "phase": "decode",
         "kv_len": 1000}
    doc = measured_from_trace(RESULTS / "trace_decode_kv1000_b1.json.gz", w, stage_of)
    harness = next(r for r in _measured()["runs"] if r["execution"] == "eager" and r["workload"]["phase"] == "decode"
                   and r["workload"]["kv_len"] == 1000 and r["workload"]["batch"] == 1)
    assert len(doc["runs"]) == 3  # three profiled repeats
    for run in doc["runs"]:
        assert run["total"]["kernels"] == harness["total"]["kernels"]
        assert run["total"]["device_s"] == pytest.approx(harness["total"]["device_s"], rel=0.01)
    mods = doc["runs"][0]["modules"]
    for path in ("lm_head", "model.language_model.layers.3.mlp.experts"):
        assert mods[path]["device_s"] == pytest.approx(harness["modules"][path]["device_s"], rel=0.05)


def test_compare_report_against_recorded_h100(tmp_path: Path) -> None:
    """The committed H100 measurement of base mode (prefill and decode at KV 1000) against a fresh prediction
    with the packaged H100 profile: device time per stage within 10%."""
    report = analyze_command(model="deepseek-ai/DeepSeek-OCR", mode="base", crops=None, image_size=None,
                             prompt_tokens=12, output_tokens=20, batch=1, kv_len=1000, tracer="dispatch",
                             out=tmp_path / "run", graphml=None, force=False, device="h100")
    assert report["predictions"]["profile"]["source"].startswith("calibrated")
    res = compare_command(tmp_path / "run" / "report.json", RESULTS / "measured.json", None, tmp_path / "cmp", False)
    phases = {r["workload"]["phase"] for r in res["runs"]}
    assert phases == {"prefill", "decode"}
    for r in res["runs"]:
        for name, v in r["stages"].items():
            assert v["measured_s"] > 0
            assert abs(v["error"]) < 0.10 or v["measured_s"] < 1e-4, (name, v)
    assert (tmp_path / "cmp" / "compare.md").read_text().startswith("# Predicted vs measured")


def test_compare_run_on_one_measured_run() -> None:
    from dsocr_trace.analyze import run_analysis
    from dsocr_trace.report.build import build_report
    from dsocr_trace.request import predict_request
    from dsocr_trace.workload import make_workload

    m = _measured()
    run = next(r for r in m["runs"] if r["execution"] == "eager" and r["workload"]["label"] == "tiny")
    a = run_analysis("deepseek-ai/DeepSeek-OCR", make_workload("tiny", output_tokens=4))
    spec = load_device("h100")
    pred = build_report(a, predict_request(a, spec, packaged_profile(spec)))["predictions"]
    row = compare_run(pred, run, "prefill")
    assert set(row["stages"]) == {"vision.sam", "vision.clip", "projector", "decoder.prefill", "lm_head.prefill"}
    for v in row["stages"].values():
        assert v["error"] == pytest.approx((v["predicted_s"] - v["measured_s"]) / v["measured_s"])


def test_profile_file_errors(tmp_path: Path) -> None:
    from dsocr_trace.errors import UserError

    spec = load_device("h100")
    p = tmp_path / "p.json"
    p.write_text("{")
    with pytest.raises(UserError):
        load_profile(p, spec)
    good = packaged_profile(spec).document
    for field, value, match in (("factors", {"gemmc:1": -1.0}, "factors.gemmc:1"), ("schema", "x/1", "schema"),
                                ("peaks", {"tc_flops": "fast", "mem_bw": 1e12}, "peaks.tc_flops"),
                                ("sweep", {}, "sweep.points")):
        p.write_text(json.dumps({**good, field: value}))
        with pytest.raises(UserError, match=match):
            load_profile(p, spec)
