"""The public Python API: what the CLI does, as functions returning typed results.

    import dsocr_trace.api as dt
    r = dt.analyze("base", device="h100", batch=4)
    r.prediction.request.ttft_s          # typed numbers
    r.stages_frame()                     # one row per stage: counts and times together, snake_case + unit
    dt.sweep(["tiny", "base"], ["rtx5090", "h100"], batches=[1, 8]).to_frame()
    dt.plan("base", devices=["h100", "h200"], ttft_ms=300, tpot_ms=25).best

Every function validates its input like the CLI (a `dsocr_trace.errors.UserError` names what to pass instead)
and prices through the same code (analyze.run_analysis, prediction.predict, sweep.run_sweep,
planner.plan_search), so an API answer equals the CLI's for the same point. Names here are stable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from dsocr_trace.errors import UserError
from dsocr_trace.models.source import DEFAULT_MODEL
from dsocr_trace.prediction import Prediction, Target, prediction_of

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AnalyzeResult", "DeviceInfo", "PlanResult", "SweepResult", "analyze", "compare", "devices", "plan",
           "sweep"]


def _frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        raise UserError("pandas is needed for DataFrames: pip install pandas") from None
    return pd.DataFrame(list(rows))


@frozen
class AnalyzeResult:
    """One analyzed request: the report (report.json's content), its typed prediction when a GPU was given, and
    the warnings the CLI would print."""

    report: dict[str, Any] = field(repr=False)
    prediction: Prediction | None
    warnings: list[str]

    def stage_rows(self) -> list[dict[str, Any]]:
        """Per stage: FLOPs, bytes, kernels and (with a GPU) device, host and wall time, bound and confidence, in
        one row."""
        preds = (self.report.get("predictions") or {}).get("stages") or {}
        out = []
        for name, s in self.report["stages"].items():
            row: dict[str, Any] = {"stage": name, "tc_flops": s["tc_flops"], "cc_flops": s["cc_flops"],
                                   "bytes": s["bytes"], "ops": int(s["ops"]), "kernels": int(s["kernels"])}
            p = preds.get(name)
            if p:
                row |= {"kernels": int(p["kernels"]), "device_ms": p["device_s"] * 1e3, "host_ms": p["host_s"] * 1e3,
                        "wall_ms": p["wall_s"] * 1e3, "bound": p["bound"], "confidence": p.get("confidence")}
            out.append(row)
        return out

    def stages_frame(self) -> pd.DataFrame:
        return _frame(self.stage_rows())

    def to_frame(self) -> pd.DataFrame:
        return self.stages_frame()

    def to_json(self) -> bytes:
        """report.json's bytes (byte-identical for the same inputs)."""
        from dsocr_trace.report.build import dumps

        return dumps(self.report)


def analyze(mode: str = "base", *, model: str = DEFAULT_MODEL, device: str | None = None,
            device_file: str | Path | None = None, profile: str | Path | None = None, crops: str | None = None,
            image_size: str | None = None, batch: int = 1, prompt_tokens: int | None = None,
            output_tokens: int = 500, execution: str = "eager", weight_dtype: str = "bf16",
            routing: str | None = None, implementation: str = "native") -> AnalyzeResult:
    """Trace and cost one request (counts always; times, memory and cost with a device), as
    `dsocr-trace analyze`."""
    from dsocr_trace.analyze import run_analysis
    from dsocr_trace.commands.analyze import analyze_warnings
    from dsocr_trace.costs import CostOptions
    from dsocr_trace.costs.routing import parse_routing
    from dsocr_trace.report.build import build_report
    from dsocr_trace.workload import DEFAULT_PROMPT_TOKENS, make_workload

    wl = make_workload(mode, crops=crops, image_size=image_size,
                       prompt_tokens=DEFAULT_PROMPT_TOKENS if prompt_tokens is None else prompt_tokens,
                       output_tokens=output_tokens, batch=batch)
    target = None
    if device is not None or device_file is not None:
        target = Target.resolve(device, None if device_file is None else Path(device_file),
                                None if profile is None else Path(profile), execution, weight_dtype)
    elif profile is not None:
        raise UserError("profile needs the GPU it was measured on: add device= or device_file=")
    from dsocr_trace.commands.analyze import REMOTE_NOTE
    from dsocr_trace.trace.remote import check_implementation

    check_implementation(implementation, execution, False)
    a = run_analysis(model, wl, opts=CostOptions(routing=parse_routing(routing)), implementation=implementation)
    pred = None
    if target is not None:
        from dsocr_trace.prediction import predict

        pred = predict(a, target)
    report = build_report(a, pred.sections if pred is not None else None)
    warnings = [*(target.notes if target is not None else ()), *analyze_warnings(report, image_size, mode),
                *((REMOTE_NOTE,) if implementation != "native" else ())]
    report["warnings"] = warnings
    return AnalyzeResult(report, pred, warnings)


@frozen
class SweepResult:
    """One row per (mode, device, execution, batch, output tokens): TTFT, time per token, throughput, cost and
    whether it fits in memory."""

    rows: list[dict[str, Any]] = field(repr=False)

    def to_frame(self) -> pd.DataFrame:
        return _frame(self.rows)


def sweep(modes: Sequence[str] = ("base",), devices: Sequence[str] = ("h100",), *, batches: Sequence[int] = (1,),
          output_tokens: Sequence[int] = (500,), executions: Sequence[str] = ("eager",),
          model: str = DEFAULT_MODEL, weight_dtype: str = "bf16", implementation: str = "native",
          prompt_tokens: int | None = None, routing: str | None = None) -> SweepResult:
    """Every combination priced, as `dsocr-trace sweep` (modes: 'tiny', ..., 'gundam:2x3')."""
    from dsocr_trace.capacity import annotate
    from dsocr_trace.costs.routing import parse_routing
    from dsocr_trace.hardware.spec import load_device
    from dsocr_trace.sweep import run_sweep
    from dsocr_trace.workload import DEFAULT_PROMPT_TOKENS

    for name, values in (("modes", modes), ("devices", devices), ("batches", batches),
                         ("output_tokens", output_tokens), ("executions", executions)):
        if isinstance(values, str) or not values:
            raise UserError(f"{name} must be a non-empty list (got {values!r})")
    rows = run_sweep(model, ",".join(modes), ",".join(devices), ",".join(map(str, batches)),
                     ",".join(map(str, output_tokens)), ",".join(executions), routing=parse_routing(routing),
                     implementation=implementation,
                     prompt_tokens=DEFAULT_PROMPT_TOKENS if prompt_tokens is None else prompt_tokens)
    specs = {d: load_device(d) for d in dict.fromkeys(devices)}
    return SweepResult(annotate(rows, model, specs, weight_dtype))


@frozen
class PlanResult:
    """Every evaluated point of a capacity plan, ranked: points meeting the targets first."""

    rows: list[dict[str, Any]] = field(repr=False)
    targets: str

    @property
    def best(self) -> dict[str, Any] | None:
        """The top-ranked point that meets every target, or None."""
        return next((r for r in self.rows if r["meets"]), None)

    def to_frame(self) -> pd.DataFrame:
        return _frame(self.rows)


def plan(mode: str = "base", *, devices: Sequence[str] = ("h100",), output_tokens: int = 500,
         ttft_ms: float | None = None, tpot_ms: float | None = None, executions: Sequence[str] = ("eager",),
         max_batch: int = 64, model: str = DEFAULT_MODEL, weight_dtype: str = "bf16",
         implementation: str = "native", prompt_tokens: int | None = None, routing: str | None = None,
         rank: str = "measured") -> PlanResult:
    """The largest batch per GPU and execution that meets the latency targets and fits, as `dsocr-trace plan`;
    rank 'measured' puts executions measured on a GPU before modelled ones, 'throughput' ranks by pages alone,
    'cost' puts measured executions first, then the lowest USD per page."""
    from dsocr_trace.costs.routing import parse_routing
    from dsocr_trace.planner import Targets, candidates, check_rank, plan_search
    from dsocr_trace.workload import DEFAULT_PROMPT_TOKENS

    if isinstance(devices, str) or not devices:
        raise UserError(f"devices must be a non-empty list (got {devices!r})")
    for name, v in (("ttft_ms", ttft_ms), ("tpot_ms", tpot_ms)):
        if v is not None and not v > 0:
            raise UserError(f"{name} must be a positive number of milliseconds (got {v!r})")
    targets = Targets(None if ttft_ms is None else ttft_ms / 1e3, None if tpot_ms is None else tpot_ms / 1e3)
    rows = plan_search(model, mode, output_tokens, targets, candidates(",".join(devices), []), list(executions),
                       max_batch, weight_dtype, implementation=implementation, routing=parse_routing(routing),
                       prompt_tokens=DEFAULT_PROMPT_TOKENS if prompt_tokens is None else prompt_tokens,
                       rank=check_rank(rank))
    return PlanResult(rows, targets.describe())


@frozen
class DeviceInfo:
    key: str
    name: str
    tc_flops: float
    mem_bw: float
    mem_bytes: float
    profile: str  # calibrated | transferred | datasheet: how its predictions are priced


def devices() -> list[DeviceInfo]:
    """The catalog, with how each GPU's predictions are priced."""
    from dsocr_trace.hardware.profile import packaged_profile, profile_kind
    from dsocr_trace.hardware.spec import catalog

    return [DeviceInfo(s.key, s.name, s.tc_flops, s.mem_bw, s.mem_bytes, profile_kind(packaged_profile(s).source))
            for s in catalog()]


def compare(report: str | Path, measured: str | Path, phase: str | None = None,
            any_execution: bool = False) -> dict[str, Any]:
    """Predicted vs measured per run, stage and module, as `dsocr-trace compare`: a report.json with predictions
    and a measured.json or torch.profiler Chrome trace. Warnings are in the result's `notes`."""
    from dsocr_trace.commands.compare import compare_result

    return compare_result(Path(report), Path(measured), phase, any_execution)


def prediction_from_report(report: Mapping[str, Any], target: Target) -> Prediction:
    """The typed Prediction of a report's `predictions` section."""
    sec = report.get("predictions")
    if not sec:
        raise UserError("the report has no predictions: analyze it with a device")
    return prediction_of(target, dict(sec))
