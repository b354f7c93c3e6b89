"""Confidence labels: the packaged envelope equals what the committed measurements cover; rows are labelled."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from dsocr_trace.hardware.validated import envelope, phase_confidence, point_confidence

ROOT = Path(__file__).resolve().parents[1]


def test_envelope_is_rebuilt_from_the_committed_measurements() -> None:
    spec = importlib.util.spec_from_file_location("build_envelope", ROOT / "scripts" / "build_envelope.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.envelope(ROOT)["gpus"] == envelope()
    # SM partitions are other GPUs: never part of the full card's envelope
    assert not any("partitions" in s for ph in envelope()["h200"].values() for s in ph["sources"])


@pytest.mark.parametrize(("args", "level", "why"), [
    (("h200", "calibrated", "prefill", "eager", 4), "validated", "inside the measured range"),
    (("h200", "calibrated", "prefill", "fused", 4), "modelled", "fused prefill never measured"),
    # the compile harness's decode runs (measured_decode.json files) count: compiled decode was measured
    (("h200", "calibrated", "decode", "compiled", 4, 2500), "validated", "inside the measured range"),
    (("h100", "calibrated", "decode", "compiled", 1, 1000), "modelled", "compiled decode never measured"),
    (("h100", "calibrated", "prefill", "eager", 64), "extrapolated", "batch 64 outside the measured 1-8"),
    (("h200", "calibrated", "decode", "eager", 1, 100_000), "extrapolated", "KV length 100000 outside"),
    (("h100", "calibrated", "train", "eager", 1), "extrapolated", "no train measured on h100"),
    (("h200", "calibrated", "train", "eager", 8), "extrapolated", "train batch 8 outside the measured 1-4"),
    (("h200", "calibrated", "train", "fused", 2), "modelled", "fused train never measured"),
    (("rtx5090", "transferred", "prefill", "eager", 1), "transferred", "no calibration of its own"),
    (("l40s", "datasheet", "decode", "eager", 1, 500), "datasheet", "datasheet profile"),
])
def test_phase_confidence(args: tuple, level: str, why: str) -> None:
    got, note = phase_confidence(*args)
    assert got == level and why in note


def test_point_takes_the_weaker_phase() -> None:
    # prefill batch 16 is measured on the H200, decode KV 20,000 is not
    level, note = point_confidence("h200", "calibrated", "eager", 16, 1000, 19_000)
    assert level == "extrapolated" and "KV length 20000" in note and "prefill" not in note


def test_sweep_rows_carry_confidence(tmp_path: Path) -> None:
    from dsocr_trace.commands.sweep import sweep_command

    out = tmp_path / "s.json"
    sweep_command(model="deepseek-ai/DeepSeek-OCR", modes="tiny", devices="h200,rtx5090", batch="1,64",
                  output_tokens="500", execution="eager,fused", out=out, force=False)
    rows = json.loads(out.read_text())
    got = {(r["device"], r["execution"], r["batch"]): r["confidence"] for r in rows}
    assert got == {("h200", "eager", 1): "validated", ("h200", "eager", 64): "extrapolated",
                   ("h200", "fused", 1): "modelled", ("h200", "fused", 64): "modelled",
                   ("rtx5090", "eager", 1): "transferred", ("rtx5090", "eager", 64): "transferred",
                   ("rtx5090", "fused", 1): "transferred", ("rtx5090", "fused", 64): "transferred"}
    assert all(r["confidence_note"] for r in rows)
