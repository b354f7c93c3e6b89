"""The front door of the prediction wing: one typed Target in, one typed Prediction out.

    target = Target.resolve(device="h100", execution="eager")
    p = predict(analysis, target)
    p.stages["vision.sam"].device_s, p.request.ttft_s, p.memory.fits

`Target` is everything a prediction depends on besides the traced workload (GPU figures, the profile that prices
kernels, execution, weight dtype); `predict` runs the one request integration (request.predict_request: kernel
plan per phase, two-lane replay, the decode step's fit over KV length, memory) and `Prediction` types its result,
each stage's bound computed once (plan.bound_of). analyze, sweep, plan, the Python API and the service all price
through here or through the same request functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from attrs import field, frozen

from dsocr_trace.analyze import Analysis
from dsocr_trace.errors import UserError
from dsocr_trace.hardware.profile import Profile
from dsocr_trace.hardware.spec import DeviceSpec
from dsocr_trace.plan import EXECUTIONS

WEIGHT_DTYPES = ("bf16", "fp16", "fp8")


@frozen
class Target:
    """What a prediction is for: a GPU (spec), the profile that prices its kernels, how the model is run."""

    spec: DeviceSpec
    profile: Profile
    execution: str = "eager"
    weight_dtype: str = "bf16"
    notes: tuple[str, ...] = ()  # decisions made while resolving (a catalog twin's profile, a foreign profile)

    def __attrs_post_init__(self) -> None:
        if self.execution not in EXECUTIONS:
            raise UserError(f"unknown execution {self.execution!r}: use {', '.join(EXECUTIONS)}")
        if self.weight_dtype not in WEIGHT_DTYPES:
            raise UserError(f"unknown weight dtype {self.weight_dtype!r}: use {', '.join(WEIGHT_DTYPES)}")

    @property
    def trust(self) -> str:
        """calibrated (this GPU's own profile), transferred (another GPU's, carried) or datasheet."""
        from dsocr_trace.hardware.profile import profile_kind

        return profile_kind(self.profile.source)

    @classmethod
    def resolve(cls, device: str | None = None, device_file: Path | None = None, profile: Path | None = None,
                execution: str = "eager", weight_dtype: str = "bf16") -> Target:
        """The target of a catalog key, a device file and/or a profile file (see `resolve_hardware`)."""
        notes: list[str] = []
        hw = resolve_hardware(device, device_file, profile, notes)
        if hw is None:
            raise UserError("a prediction needs a GPU: give a catalog key (see `dsocr-trace devices`) or a device file")
        return cls(hw[0], hw[1], execution, weight_dtype, tuple(notes))


def resolve_hardware(device: str | None, device_file: Path | None, profile: Path | None,
                     notes: list[str] | None = None) -> tuple[DeviceSpec, Profile] | None:
    """(spec, profile) for a device key / device file / profile file, or None without a device.

    An unchanged copy of a catalog file (the same figures) predicts with that entry's packaged profile, as the
    key would: a copy must not silently lose a calibration. What was decided goes into `notes`."""
    from dsocr_trace.hardware.profile import load_profile, packaged_profile
    from dsocr_trace.hardware.provenance import profile_provenance
    from dsocr_trace.hardware.spec import catalog, load_device, load_device_file, same_hardware

    notes = notes if notes is not None else []
    if device is None and device_file is None:
        if profile is not None:
            raise UserError("--profile needs the GPU it was measured on: add --device NAME or --device-file")
        return None
    if device is not None and device_file is not None:
        raise UserError("give either --device or --device-file, not both")
    spec = load_device_file(device_file) if device_file is not None else load_device(str(device))
    if profile is not None:
        prof = load_profile(profile, spec)
        if prof.device and prof.device != spec.key and not any(
                c.key == prof.device and same_hardware(c, spec) for c in catalog()):
            notes.append(f"profile {profile} was made for {prof.device}, predictions are for {spec.name}: "
                         "its measured times apply only as far as the two GPUs are alike")
        return spec, prof
    twin = None if spec.origin.startswith("catalog") else next(
        (c for c in catalog() if same_hardware(c, spec)), None)
    prof = packaged_profile(twin if twin is not None else spec)
    if twin is not None and prof.calibrated:
        notes.append(f"device file {device_file} has the figures of catalog device {twin.key} ({twin.name}): "
                     f"using its packaged profile, {profile_provenance(prof)['text']}; change a figure or pass "
                     "--profile to predict with another")
    return spec, prof


@frozen
class StageTime:
    """One stage of the request as predicted: summed kernel time, host issue time, its share of the phase wall,
    kernels launched and what limits it."""

    name: str
    device_s: float
    host_s: float
    wall_s: float
    kernels: int
    bound: str
    confidence: str = "?"  # validated, modelled, extrapolated, transferred or datasheet (hardware.validated)
    confidence_note: str = ""


@frozen
class RequestTime:
    """The whole request: first token, decode steps, end to end, throughput and (with a price) cost."""

    batch: int
    output_tokens: int
    ttft_s: float
    tpot_mean_s: float
    e2e_s: float
    tokens_per_s: float
    pages_per_s: float
    usd_per_million_pages: float | None
    wall_band_e2e_s: tuple[float, float]  # the same request behind a faster and a slower host CPU
    confidence: str = "?"  # the weaker of its prefill's and decode's
    confidence_note: str = ""


@frozen
class MemoryFit:
    total_bytes: int
    capacity_bytes: int
    fits: bool


@frozen
class Prediction:
    """A typed view of one request's prediction; `sections` is the `predictions` section of report.json."""

    target: Target
    stages: dict[str, StageTime]
    request: RequestTime
    memory: MemoryFit
    sections: dict[str, Any] = field(repr=False)


def predict(analysis: Analysis, target: Target) -> Prediction:
    """Price a traced workload on a target: the one entry every caller goes through for a request."""
    from dsocr_trace.request import predict_request

    sec = predict_request(analysis, target.spec, target.profile, target.execution, target.weight_dtype)
    return prediction_of(target, sec)


def prediction_of(target: Target, sec: dict[str, Any]) -> Prediction:
    """The typed Prediction of a `predictions` section (as predict_request returns it)."""
    stages = {name: StageTime(name, float(s["device_s"]), float(s["host_s"]), float(s["wall_s"]),
                              int(s["kernels"]), str(s["bound"]), str(s.get("confidence", "?")),
                              str(s.get("confidence_note", "")))
              for name, s in sorted(sec["stages"].items())}
    r = sec["request"]
    band = r["wall_band"]["e2e_s"]
    request = RequestTime(int(r["batch"]), int(r["output_tokens"]), float(r["ttft_s"]), float(r["tpot_mean_s"]),
                          float(r["e2e_s"]), float(r["tokens_per_s"]), float(r["pages_per_s"]),
                          None if r.get("usd_per_million_pages") is None else float(r["usd_per_million_pages"]),
                          (float(band[0]), float(band[-1])), str(r.get("confidence", "?")),
                          str(r.get("confidence_note", "")))
    m = sec["memory"]
    memory = MemoryFit(int(m["total_bytes"]), int(m.get("capacity_bytes", target.spec.capacity_bytes)),
                       bool(m["fits"]))
    return Prediction(target, stages, request, memory, sec)
