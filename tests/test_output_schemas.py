"""The sweep, measured and validation outputs validate against their JSON Schemas in specs/."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _schema(name: str) -> dict:
    spec = json.loads((ROOT / "specs" / f"{name}-schema.json").read_text())
    packaged = json.loads((ROOT / "src" / "dsocr_trace" / "schemas" / f"{name}-schema.json").read_text())
    assert spec == packaged
    return spec


@pytest.mark.parametrize("folder", ["h100", "h100-b"])
def test_committed_measurements_and_validations(folder: str) -> None:
    d = ROOT / "benchmarks" / "results" / folder
    jsonschema.validate(json.loads((d / "measured.json").read_text()), _schema("measured"))
    jsonschema.validate(json.loads((d / "validation.json").read_text()), _schema("validation"))


def test_sweep_rows(tmp_path: Path) -> None:
    from dsocr_trace.commands.sweep import sweep_command

    out = tmp_path / "sweep.json"
    sweep_command(model="deepseek-ai/DeepSeek-OCR", modes="tiny", devices="h100", batch="1", output_tokens="50,100",
                  execution="eager", out=out, force=False)
    rows = json.loads(out.read_text())
    assert len(rows) == 2
    jsonschema.validate(rows, _schema("sweep"))


def test_schema_rejects_a_broken_measured_file() -> None:
    bad = {"schema": "dsocr-trace/measured/1", "runs": [{"workload": {"mode": "huge", "batch": 0, "phase": "x"}}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _schema("measured"))
