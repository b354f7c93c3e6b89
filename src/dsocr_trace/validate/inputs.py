"""The files `compare` and `diff` read, checked by schema before any arithmetic: measured timings and reports.

Measured files (`dsocr-trace/measured/1`, specs/measured-format.md) refuse unknown keys at every level but the
free-form `device`, `config`, `spread` and `checks` mappings, so a misspelt `device_s` is reported rather than
read as "no measurement". The shipped JSON Schema (schemas/measured-schema.json) is generated from
`MeasuredFile` (`python -m dsocr_trace.validate.inputs`), so the two cannot disagree.

Reports are checked for the parts compare and diff read (types, ranges, non-empty tables); keys a newer
version adds are left alone, so a report stays readable across versions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dsocr_trace.errors import UserError, from_validation, one_line
from dsocr_trace.workload import MODES

MEASURED_SCHEMA = "dsocr-trace/measured/1"
Mode = Literal["tiny", "small", "base", "large", "gundam"]
assert set(Mode.__args__) == set(MODES)  # type: ignore[attr-defined]
Seconds = float


def _seconds(gt: bool = False) -> Any:
    return Field(default=None, gt=0) if gt else Field(default=None, ge=0)


class _Measured(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class MeasuredWorkload(_Measured):
    mode: Mode
    batch: int = Field(ge=1)
    phase: Literal["prefill", "decode"]
    label: str | None = None
    crops: list[int] | None = Field(default=None, min_length=2, max_length=2)
    prompt_tokens: int | None = Field(default=None, ge=0)
    kv_len: int | None = Field(default=None, ge=0, description="cached positions before the decode step")
    vision_tokens: int | None = Field(default=None, ge=0)
    prefill_tokens: int | None = Field(default=None, ge=0)


class MeasuredTotal(_Measured):
    device_s: float | None = _seconds()
    wall_s: float | None = _seconds(gt=True)
    kernels: int | None = Field(default=None, ge=0)
    wall_min_s: float | None = _seconds()
    wall_max_s: float | None = _seconds()
    wall_runs: int | None = Field(default=None, ge=0)
    wall_back_to_back_s: float | None = _seconds()
    host_s: float | None = _seconds()
    host_ops: int | None = Field(default=None, ge=0)
    host_ops_launching: int | None = Field(default=None, ge=0)
    launches: int | None = Field(default=None, ge=0)
    module_calls: int | None = Field(default=None, ge=0)
    device_outside_modules_s: float | None = None  # total minus module kernels: timing noise can make it < 0


class MeasuredStage(_Measured):
    device_s: float = Field(ge=0)
    kernels: int | None = Field(default=None, ge=0)
    wall_s: float | None = _seconds()


class MeasuredModule(_Measured):
    # inclusive minus children, in floating point: a module without own kernels can come out at -1e-21
    device_s: float = Field(ge=-1e-9, description="kernel time of the module's own ops (exclusive)")
    device_incl_s: float | None = _seconds()
    kernels: int | None = Field(default=None, ge=0)
    calls: int | None = Field(default=None, ge=0)


class MeasuredRun(_Measured):
    workload: MeasuredWorkload
    execution: Literal["eager", "graph", "compiled"] = "eager"
    total: MeasuredTotal | None = None
    stages: dict[str, MeasuredStage] | None = None
    modules: dict[str, MeasuredModule] | None = None
    spread: dict[str, float] | None = None
    checks: dict[str, Any] | None = None
    error: str | None = None


class MeasuredFile(_Measured):
    """dsocr-trace measured timings (see specs/measured-format.md); seconds."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False,
                              title="dsocr-trace measured timings (see specs/measured-format.md); seconds")

    schema_: Literal["dsocr-trace/measured/1"] = Field(alias="schema")
    device: dict[str, Any] = Field(default_factory=dict)
    runs: list[MeasuredRun]
    config: dict[str, Any] | None = None
    elapsed_s: float | None = _seconds()


_MEASURED_HINTS = {
    "runs": "give a list of runs, each {workload, execution, total, modules}",
    "total": "give total.device_s (summed kernel seconds) or, for a CUDA-graph run, total.wall_s",
    "device_s": "give seconds as a number, e.g. 0.0123",
    "wall_s": "give seconds as a number > 0",
    "workload": "give {mode, batch, phase} (and crops, kv_len where they apply)",
    "mode": f"use one of {', '.join(MODES)}",
    "phase": "use prefill or decode",
    "execution": "use eager or graph (a CUDA-graph replay)",
    "schema": f"set it to {MEASURED_SCHEMA!r}",
}
_MEASURED_HINT = "see specs/measured-format.md"


def measured_json_schema() -> dict[str, Any]:
    """The JSON Schema shipped as schemas/measured-schema.json."""
    schema = MeasuredFile.model_json_schema(by_alias=True)
    schema["$id"] = MEASURED_SCHEMA
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def check_measured(data: Any, where: str) -> dict[str, Any]:
    """Validate a parsed measured file; a one-line UserError naming the first bad field."""
    if isinstance(data, dict) and data.get("schema") != MEASURED_SCHEMA:
        raise UserError(f"{where} is not a measured-timings file (schema {MEASURED_SCHEMA}) nor a Chrome trace: "
                        "see specs/measured-format.md")
    try:
        MeasuredFile.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc, where, MeasuredFile, _MEASURED_HINTS, _MEASURED_HINT) from None
    for i, run in enumerate(data["runs"]):
        if "error" in run:
            continue
        total = run.get("total")
        if total is None:
            raise UserError(f"{where}: field 'runs[{i}].total' is missing: {_MEASURED_HINTS['total']}")
        if total.get("device_s") is None and total.get("wall_s") is None:
            raise UserError(f"{where}: field 'runs[{i}].total' has neither device_s nor wall_s: "
                            f"{_MEASURED_HINTS['total']}")
    return dict(data)


# -- reports ---------------------------------------------------------------------------------------------------
class _Report(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)


class ReportModel(_Report):
    id: str


class ReportWorkload(_Report):
    mode: Mode
    label: str
    batch: int = Field(ge=1)
    prompt_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=1)
    prefill_tokens: int = Field(ge=1)
    decode_kv_len: int = Field(ge=1)
    crops: list[int] | None = Field(default=None, min_length=2, max_length=2)


class StageCounts(_Report):
    tc_flops: float = Field(ge=0)
    cc_flops: float = Field(ge=0)
    bytes: float = Field(ge=0)
    kernels: int = Field(ge=0)
    ops: int = Field(ge=0)
    intensity_flop_per_byte: float = Field(ge=0)


class PredStage(_Report):
    device_s: float = Field(ge=0)
    host_s: float = Field(ge=0)
    wall_s: float = Field(ge=0)
    kernels: int = Field(ge=0)
    bound: str
    bound_s: dict[str, float] = Field(default_factory=dict)


class PredPhase(_Report):
    wall_s: float = Field(gt=0)
    device_s: float = Field(ge=0)
    host_s: float = Field(ge=0)


class PredNode(_Report):
    module_path: str
    device_s: float = Field(ge=0)


class PredRequest(_Report):
    ttft_s: float = Field(gt=0)
    tpot_mean_s: float = Field(gt=0)
    e2e_s: float = Field(gt=0)
    decode_s: float = Field(ge=0)
    pages_per_s: float = Field(gt=0)
    pages_per_gpu_day: float = Field(gt=0)
    batch: int = Field(ge=1)
    output_tokens: int = Field(ge=1)


class PredDevice(_Report):
    name: str
    key: str


class PredProfile(_Report):
    source: str


class PredPhases(_Report):
    prefill: PredPhase
    decode: PredPhase


class PredNodes(_Report):
    prefill: list[PredNode]
    decode: list[PredNode]


class Predictions(_Report):
    device: PredDevice
    profile: PredProfile
    execution: Literal["eager", "fused", "graph", "compiled"]
    weight_dtype: str
    stages: dict[str, PredStage] = Field(min_length=1)
    phases: PredPhases
    nodes: PredNodes
    request: PredRequest
    module_types: dict[str, dict[str, dict[str, Any]]]


class Report(_Report):
    schema_version: str
    model: ReportModel
    workload: ReportWorkload
    stages: dict[str, StageCounts] = Field(min_length=1)
    module_types: dict[str, dict[str, dict[str, Any]]]
    predictions: Predictions | None = None


_REPORT_HINT = "rerun `dsocr-trace analyze` to write it again"
_REPORT_HINTS = {"predictions": "rerun `dsocr-trace analyze` with --device NAME",
                 "stages": "rerun `dsocr-trace analyze`: a report lists each stage's counts"}


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {what} {str(path)!r} ({one_line(exc, 120)}): check the path") from None


def load_report(path: Path, need_predictions: bool = False) -> dict[str, Any]:
    """A report.json, validated for what compare and diff read."""
    data = read_json(path, "report")
    where = f"report {path}"
    if not isinstance(data, dict) or "stages" not in data or "workload" not in data:
        raise UserError(f"{str(path)!r} is not a dsocr-trace report.json: pass the report.json of an analyze run")
    if need_predictions and not data.get("predictions"):
        raise UserError(f"{str(path)!r} has no predictions: rerun `dsocr-trace analyze` with --device")
    try:
        Report.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc, where, Report, _REPORT_HINTS, _REPORT_HINT) from None
    return data


if __name__ == "__main__":
    import sys

    sys.stdout.write(json.dumps(measured_json_schema(), indent=1, sort_keys=True) + "\n")
