"""The public Python API: typed results that agree with the CLI's pricing and convert to DataFrames."""

from __future__ import annotations

import pytest

from dsocr_trace import api
from dsocr_trace.errors import UserError
from dsocr_trace.prediction import Target


def test_analyze_with_and_without_a_device() -> None:
    counts = api.analyze("tiny")
    assert counts.prediction is None
    frame = counts.stages_frame()
    assert list(frame["stage"])[:2] == ["vision.sam", "vision.clip"] and "device_ms" not in frame
    r = api.analyze("tiny", device="h100", batch=2, output_tokens=50)
    p = r.prediction
    assert p is not None and p.target.trust == "calibrated"
    assert p.request.batch == 2 and p.request.e2e_s > p.request.ttft_s > 0
    assert p.request.wall_band_e2e_s[0] < p.request.e2e_s < p.request.wall_band_e2e_s[1]
    frame = r.to_frame()
    assert {"stage", "tc_flops", "bytes", "kernels", "device_ms", "wall_ms", "bound"} <= set(frame.columns)
    assert frame["wall_ms"].sum() == pytest.approx((p.request.ttft_s + p.stages["decode.step"].wall_s) * 1e3,
                                                   rel=1e-9)
    assert r.to_json() == api.analyze("tiny", device="h100", batch=2, output_tokens=50).to_json()


def test_sweep_rows_match_analyze() -> None:
    s = api.sweep(["tiny"], ["h100", "rtx5090"], batches=[1, 2], output_tokens=[50])
    df = s.to_frame()
    assert len(df) == 4 and set(df["device"]) == {"h100", "rtx5090"} and df["fits"].all()
    one = api.analyze("tiny", device="h100", batch=2, output_tokens=50).prediction
    row = df[(df["device"] == "h100") & (df["batch"] == 2)].iloc[0]
    assert one is not None and row["ttft_s"] == pytest.approx(one.request.ttft_s, rel=1e-12)
    assert row["e2e_s"] == pytest.approx(one.request.e2e_s, rel=1e-12)


def test_plan_and_devices() -> None:
    p = api.plan("tiny", devices=["h100"], output_tokens=50, tpot_ms=1000, max_batch=4)
    assert p.best is not None and p.best["meets"] and p.best["batch"] == 4
    assert len(p.to_frame()) >= 3
    keys = {d.key: d for d in api.devices()}
    assert keys["h200"].profile == "calibrated" and keys["l40s"].profile in ("transferred", "datasheet")


def test_target_is_typed_and_validated() -> None:
    t = Target.resolve("h200", execution="graph")
    assert t.spec.key == "h200" and t.execution == "graph"
    with pytest.raises(UserError, match="unknown execution"):
        Target.resolve("h200", execution="warp")
    with pytest.raises(UserError, match="weight dtype"):
        Target.resolve("h200", weight_dtype="int3")
    with pytest.raises(UserError, match="non-empty list"):
        api.sweep("tiny", ["h100"])  # type: ignore[arg-type]
    with pytest.raises(UserError, match="unknown mode"):
        api.analyze("huge")


def test_compare_against_committed_h100_measurements(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    measured = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "h100" / "measured.json"
    r = api.analyze("tiny", device="h100")
    (tmp_path / "report.json").write_bytes(r.to_json())
    result = api.compare(tmp_path / "report.json", measured, phase="prefill")
    assert result["runs"] and result["predicted_device"] == r.report["predictions"]["device"]["name"]
    stages = result["runs"][0]["stages"]
    assert "vision.sam" in stages and stages["vision.sam"]["error"] is not None
    with pytest.raises(UserError, match="not a file"):
        api.compare(tmp_path / "report.json", tmp_path / "missing.json")
