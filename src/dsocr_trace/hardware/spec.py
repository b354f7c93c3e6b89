"""The hardware catalog: datasheet figures of a GPU, read from small YAML files a user can copy and edit.

Files hold the numbers as vendors print them (TFLOP/s, GB/s, GB, MB, MHz); `DeviceSpec` holds them in SI
units (FLOP/s, B/s, bytes, Hz) so the predictor never converts. Every throughput is DENSE: vendors quote
2:4-sparse tensor-core figures at 2x, which no kernel in these models can use.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from contextvars import ContextVar
from decimal import Decimal
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from attrs import evolve, field, frozen
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dsocr_trace.errors import UserError, close_names, from_validation

# Memory and cache sizes are printed in binary units (an "80 GB" HBM3 part holds 80 GiB of DRAM cells).
GIB = 2**30
MIB = 2**20

# field -> what to write there; the hint ends every error message about that field.
REQUIRED_NUMBERS: dict[str, str] = {
    "sm_count": "give the number of streaming multiprocessors (an integer, e.g. 132)",
    "boost_clock_mhz": "give the boost clock in MHz",
    "memory_gb": "give the device memory in GB",
    "mem_bw_gbs": "give the memory bandwidth in GB/s (1 GB/s = 1e9 B/s)",
    "l2_mb": "give the L2 cache size in MB",
    "tc_bf16_dense_tflops": "give the dense BF16 tensor-core TFLOP/s with FP32 accumulate (sparse figures halved)",
    "tc_fp16_fp16acc_dense_tflops": "give the dense FP16 tensor-core TFLOP/s with FP16 accumulate",
    "tf32_dense_tflops": "give the dense TF32 tensor-core TFLOP/s",
    "fp32_cuda_core_tflops": "give the FP32 CUDA-core (non-tensor) TFLOP/s",
}
# may be null: the GPU has no such unit
OPTIONAL_NUMBERS: dict[str, str] = {
    "tc_fp8_dense_tflops": "give the dense FP8 tensor-core TFLOP/s, or null where the GPU has no FP8",
    "tensor_clock_mhz": "give the clock the tensor-core figures assume in MHz, or leave the field out",
    # measured figures (public benchmarks or `dsocr-trace calibrate --quick`): what a GPU reaches, beside what
    # its datasheet promises; each one known replaces an assumption of the cross-GPU model
    "measured_matmul_tflops": "give a measured dense BF16 matmul rate in TFLOP/s (a large square product, "
                              "e.g. 8192^3), or leave the field out",
    "measured_copy_gbs": "give a measured device-to-device copy bandwidth in GB/s (bytes read + written), "
                         "or leave the field out",
    "kernel_floor_us": "give the measured time of a tiny kernel back to back in microseconds, or leave the "
                       "field out",
    "price_per_hour_usd": "give the rental price of one GPU per hour in US dollars, or leave the field out",
    "usable_memory_gib": "give the memory a program can allocate in GiB (torch.cuda.get_device_properties(0)"
                         ".total_memory / 2**30), or leave the field out",
}
# Assumptions for a figure nobody measured, from the cards measured here (H100 SXM5, H200 SXM): the large BF16
# matmul reaches 0.81 / 0.78 of the dense datasheet peak, a large copy 0.90 / 0.89 of the datasheet bandwidth,
# and a program can allocate 0.990 / 0.991 of the memory the datasheet quotes (the rest is reserved).
ASSUMED_MATMUL_FRACTION = 0.80
ASSUMED_COPY_FRACTION = 0.895
ASSUMED_USABLE_FRACTION = 0.99
DEFAULT_KERNEL_FLOOR_S = 1.9e-6  # measured 1.84 (H200) and 1.94 us (H100)
DEFAULT_CLOCK_MHZ = 1800.0  # a GPU whose clock nobody read
# the figures measured on a card (not on its datasheet); the performance ones are what the cross-GPU model reads
PERFORMANCE_FIELDS = ("measured_matmul_tflops", "measured_copy_gbs", "kernel_floor_us")
MEASURED_FIELDS = (*PERFORMANCE_FIELDS, "usable_memory_gib")
DEVICE_SUFFIXES = (".yaml", ".yml", ".json")
# The share of a GPU's allocatable memory a run may plan for (vLLM's gpu_memory_utilization): set once per run
# (CLI --gpu-memory-utilization, a service request) and read by DeviceSpec.capacity_bytes, the one fit check.
MEMORY_UTILIZATION: ContextVar[float] = ContextVar("memory_utilization", default=1.0)
# Prices a run was given (--price-per-hour): device key -> US dollars per GPU-hour; "*" applies to every device.
# Read by DeviceSpec.price_per_hour, which falls back to the device file's `price_per_hour_usd`.
PRICES: ContextVar[Mapping[str, float]] = ContextVar("prices", default=MappingProxyType({}))


@frozen
class GpuFigures:
    """A GPU in the quantities that carry kernel times between GPUs."""

    tc_flops: float  # dense BF16 FLOP/s a large matmul reaches (measured or assumed)
    mem_bw: float  # B/s a large copy reaches (read + written)
    sm_count: int
    clock_hz: float  # SM boost clock
    floor_s: float  # a tiny kernel back to back
    peak_tc_flops: float  # the datasheet's dense BF16 rate (what short kernels run at per SM)
    # SMs the device reports to the libraries that size grids to it (persistent GEMMs, split-KV attention);
    # 0: sm_count. A green-context partition reports the whole card's SMs while it runs on fewer.
    reported_sms: int = 0

    @property
    def grid_sms(self) -> int:
        return self.reported_sms or self.sm_count


@frozen
class DeviceSpec:
    """One GPU's datasheet peaks, in SI units."""

    key: str  # catalog key ("h100") or the user file's stem
    name: str
    tc_flops: float  # dense BF16 tensor-core FLOP/s with FP32 accumulate: what torch GEMMs run at
    cc_flops: float  # FP32 CUDA-core FLOP/s
    mem_bw: float  # B/s
    mem_bytes: float
    l2_bytes: float
    sm_count: int
    # FLOP/s by the dtype a GEMM computes in: bf16, fp16 (FP32 accumulate, torch's default), fp16_fp16acc,
    # tf32, fp32 (CUDA cores; torch's default for float32 matmul), fp8 (absent where the GPU has none)
    peaks_by_dtype: dict[str, float] = field(factory=dict)
    sources: dict[str, str] = field(factory=dict)  # file field -> where the figure comes from
    aliases: tuple[str, ...] = ()
    vendor_model: str = ""
    boost_clock_hz: float = 0.0
    accumulate_note: str = ""
    origin: str = ""  # "catalog:<file>" or the user file path
    # the file's numeric fields as written (vendor units): the round trip to a file is exact
    figures: dict[str, float | None] = field(factory=dict)
    reported_sms: int = 0  # a partition: the card's SMs, which the libraries size their grids to (GpuFigures)

    def measured(self, name: str) -> float | None:
        """A measured figure of the file (vendor units), None when it gives none."""
        return self.figures.get(name)

    @property
    def achievable_tc_flops(self) -> float:
        """Dense BF16 FLOP/s a large matmul reaches: measured, else the datasheet peak x the fraction measured
        on the calibrated cards."""
        x = self.measured("measured_matmul_tflops")
        return si(x, 12) if x else self.tc_flops * ASSUMED_MATMUL_FRACTION

    @property
    def achievable_mem_bw(self) -> float:
        """Copy bandwidth (B/s, read + written) a large copy reaches: measured, else datasheet x fraction."""
        x = self.measured("measured_copy_gbs")
        return si(x, 9) if x else self.mem_bw * ASSUMED_COPY_FRACTION

    @property
    def kernel_floor_s(self) -> float:
        x = self.measured("kernel_floor_us")
        return si(x, -6) if x else DEFAULT_KERNEL_FLOOR_S

    @property
    def usable_bytes(self) -> float:
        """Memory a program can allocate: measured, else the datasheet size x the fraction measured."""
        x = self.measured("usable_memory_gib")
        return x * GIB if x else self.mem_bytes * ASSUMED_USABLE_FRACTION

    @property
    def capacity_bytes(self) -> float:
        """What a point may use: the allocatable memory x the run's memory utilization (MEMORY_UTILIZATION)."""
        return self.usable_bytes * MEMORY_UTILIZATION.get()

    @property
    def price_per_hour(self) -> tuple[float, str] | None:
        """(US dollars per GPU-hour, where the figure comes from), or None where nobody gave one."""
        given = PRICES.get()
        for k in (self.key, "*"):
            if k in given:
                return given[k], "--price-per-hour"
        x = self.measured("price_per_hour_usd")
        return (x, self.sources.get("price_per_hour_usd", "device file")) if x else None

    @property
    def gpu_figures(self) -> GpuFigures:
        """This GPU in the cross-GPU model's quantities: measured where the file has them, assumed otherwise."""
        return GpuFigures(self.achievable_tc_flops, self.achievable_mem_bw, self.sm_count, self.boost_clock_hz,
                          self.kernel_floor_s, self.tc_flops, self.reported_sms)

    def assumed_figures(self) -> list[str]:
        """The figures the cross-GPU model assumes because nobody measured them for this GPU."""
        return [n for n in MEASURED_FIELDS if not self.measured(n)]


def si(value: float, exponent: int) -> float:
    """value x 10**exponent without binary noise: 66.9 * 1e12 is 66900000000000.01, scaling the decimal
    '66.9' is exact. Decimal, not string pasting: repr(1e300) is '1e+300', which takes no second exponent."""
    return float(Decimal(repr(float(value))).scaleb(exponent))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(where: str, fieldname: str, problem: str, hint: str) -> UserError:
    return UserError(f"{where}: field '{fieldname}' {problem}: {hint}")


def require_number(data: Mapping[str, Any], name: str, where: str, hint: str, *, allow_zero: bool = False,
                   nullable: bool = False) -> float | None:
    """A finite number > 0 (>= 0 with allow_zero), or None when nullable and null/absent; else a UserError."""
    if name not in data:
        if nullable:
            return None
        raise _fail(where, name, "is missing", hint)
    value = data[name]
    if value is None:
        if nullable:
            return None
        raise _fail(where, name, "is null", hint)
    # bool is an int subclass: `true` in a YAML file is a typo, not the number 1
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(where, name, f"is not a number ({_one_line(repr(value))[:40]})", hint)
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise _fail(where, name, "is not finite", hint)
    if number < 0 or (number == 0 and not allow_zero):
        raise _fail(where, name, f"must be {'>= 0' if allow_zero else '> 0'} (got {value})", hint)
    return number


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e300` and `3e3` (no dot) as strings; YAML 1.2 and every user read them as numbers.
    Aliases are refused: a device file needs none, and nested aliases expand exponentially (a 2 KB "billion
    laughs" file grows to gigabytes)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not allowed in a device file",
                                              self.peek_event().start_mark)
        return super().compose_node(parent, index)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def parse_file_text(text: str, where: str, json_file: bool) -> dict[str, Any]:
    """Parse YAML (or JSON) text into a mapping; a one-line UserError on a syntax error or a non-mapping."""
    try:
        data = json.loads(text) if json_file else yaml.load(text, Loader=_Loader)  # a SafeLoader
    except (yaml.YAMLError, ValueError, RecursionError) as e:
        raise UserError(f"{where}: not valid {'JSON' if json_file else 'YAML'} ({_one_line(str(e))[:200]}): "
                        "fix the syntax or start again from a catalog file") from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: the file must hold a mapping of field: value, not {type(data).__name__}: "
                        "start again from a catalog file")
    return data


# Upper bounds: an order of magnitude or more beyond any GPU built, so a unit slip (B/s for GB/s, FLOP/s for
# TFLOP/s) is caught instead of turned into nonsense (or an overflow to inf).
MAX_TFLOPS = 1e5
MAX_GBS = 1e6
MAX_GB = 1e5
MAX_MB = 1e5
MAX_MHZ = 1e5
MAX_SMS = 100_000
MAX_DEVICE_FILE_BYTES = 1 << 20



def _tflops() -> Any:
    return Field(gt=0, le=MAX_TFLOPS)


class DeviceFile(BaseModel):
    """The device file as written (vendor units); unknown keys are refused, so a typo cannot go unnoticed."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    name: str = Field(min_length=1)
    aliases: list[str | int] = Field(default_factory=list)
    vendor_model: str = ""
    sm_count: int = Field(gt=0, le=MAX_SMS)
    boost_clock_mhz: float = Field(gt=0, le=MAX_MHZ)
    tensor_clock_mhz: float | None = Field(default=None, gt=0, le=MAX_MHZ)
    memory_gb: float = Field(gt=0, le=MAX_GB)
    mem_bw_gbs: float = Field(gt=0, le=MAX_GBS)
    l2_mb: float = Field(gt=0, le=MAX_MB)
    tc_bf16_dense_tflops: float = _tflops()
    tc_fp16_fp16acc_dense_tflops: float = _tflops()
    tc_fp8_dense_tflops: float | None = Field(default=None, gt=0, le=MAX_TFLOPS)
    tf32_dense_tflops: float = _tflops()
    fp32_cuda_core_tflops: float = _tflops()
    measured_matmul_tflops: float | None = Field(default=None, gt=0, le=MAX_TFLOPS)
    measured_copy_gbs: float | None = Field(default=None, gt=0, le=MAX_GBS)
    kernel_floor_us: float | None = Field(default=None, gt=0, le=1000)
    usable_memory_gib: float | None = Field(default=None, gt=0, le=MAX_GB)
    price_per_hour_usd: float | None = Field(default=None, gt=0, le=1000)
    accumulate_note: str = ""
    sources: dict[str, str] | None = None


_FILE_HINTS = REQUIRED_NUMBERS | OPTIONAL_NUMBERS | {
    "name": "give the GPU's name, e.g. 'NVIDIA H100 SXM5 80GB'",
    "aliases": "write e.g. aliases: [h100-sxm, h100-80gb]",
    "sources": "write e.g. sources: {mem_bw_gbs: 'vendor datasheet'}",
    "vendor_model": "quote the text or remove the field",
    "accumulate_note": "quote the text or remove the field",
}
_FILE_HINT = "start again from a catalog file (`dsocr-trace devices --export h100`)"
_NUMERIC = (*REQUIRED_NUMBERS, *OPTIONAL_NUMBERS)


# Lower bounds no GPU that runs this model falls under: a figure below one is a unit slip (TB/s written where
# GB/s is asked, GHz for MHz), caught with the value it probably meant. (field, floor, unit, scale, written as)
_PLAUSIBLE_FLOORS: tuple[tuple[str, float, str, float, str], ...] = (
    ("mem_bw_gbs", 50.0, "GB/s", 1000.0, "TB/s"),
    ("measured_copy_gbs", 50.0, "GB/s", 1000.0, "TB/s"),
    ("boost_clock_mhz", 100.0, "MHz", 1000.0, "GHz"),
    ("tensor_clock_mhz", 100.0, "MHz", 1000.0, "GHz"),
    ("tc_bf16_dense_tflops", 1.0, "TFLOP/s", 1000.0, "PFLOP/s"),
    ("measured_matmul_tflops", 1.0, "TFLOP/s", 1000.0, "PFLOP/s"),
    ("memory_gb", 1.0, "GB", 1000.0, "TB"),
    ("l2_mb", 0.25, "MB", 1000.0, "GB"),
)


def check_plausible(f: DeviceFile, where: str) -> None:
    """Unit slips and measured figures that contradict the datasheet, as one-line errors with the fix."""
    for name, floor, unit, scale, other in _PLAUSIBLE_FLOORS:
        x = getattr(f, name)
        if x is not None and x < floor:
            raise _fail(where, name, f"is {x:g} {unit}, below any GPU this model runs on",
                        f"did you mean {x * scale:g} {unit} (the figure written in {other})?")
    if f.measured_copy_gbs is not None and f.measured_copy_gbs > 1.2 * f.mem_bw_gbs:
        raise _fail(where, "measured_copy_gbs", f"is {f.measured_copy_gbs:g} GB/s, above the datasheet's "
                    f"{f.mem_bw_gbs:g} GB/s", "a copy cannot outrun the memory: check both figures")
    if f.measured_matmul_tflops is not None and f.measured_matmul_tflops > 2 * f.tc_bf16_dense_tflops:
        raise _fail(where, "measured_matmul_tflops", f"is {f.measured_matmul_tflops:g} TFLOP/s, over twice the "
                    f"dense datasheet peak ({f.tc_bf16_dense_tflops:g})",
                    "give the dense BF16 rate with FP32 accumulate (not a sparse or FP8 figure)")
    if f.usable_memory_gib is not None and f.usable_memory_gib > f.memory_gb * 1.0001:
        raise _fail(where, "usable_memory_gib", f"is {f.usable_memory_gib:g} GiB, more than the card's "
                    f"{f.memory_gb:g} GB", "give total_memory / 2**30 as torch reports it")


def _strip_name(v: Any) -> Any:
    return v.strip() if isinstance(v, str) else v


def spec_from_dict(data: Mapping[str, Any], key: str, where: str) -> DeviceSpec:
    """Validate a device mapping (as read from a file) and convert it to SI units."""
    try:
        f = DeviceFile.model_validate({k: _strip_name(v) if k == "name" else v for k, v in data.items()})
    except ValidationError as exc:
        raise from_validation(exc, where, DeviceFile, _FILE_HINTS, _FILE_HINT) from None
    check_plausible(f, where)
    bad = sorted(set(f.sources or {}) - set(_NUMERIC))
    if bad:
        near = close_names(bad[0], _NUMERIC)
        raise _fail(where, f"sources.{bad[0]}", "names no figure of the file",
                    f"did you mean '{near[0]}'?" if near else f"use one of {', '.join(_NUMERIC)}")
    bf16 = si(f.tc_bf16_dense_tflops, 12)
    peaks = {
        "bf16": bf16,
        # torch runs float16 GEMMs with FP32 accumulate: the same rate as BF16, not the FP16-accumulate one
        "fp16": bf16,
        "fp16_fp16acc": si(f.tc_fp16_fp16acc_dense_tflops, 12),
        "tf32": si(f.tf32_dense_tflops, 12),
        "fp32": si(f.fp32_cuda_core_tflops, 12),
    }
    if f.tc_fp8_dense_tflops is not None:
        peaks["fp8"] = si(f.tc_fp8_dense_tflops, 12)
    sources = f.sources or {}
    # a user file need not cite anything; say so rather than leave the provenance blank
    src = {n: sources.get(n, f"user file {where}") for n in _NUMERIC if n in data}
    figures = {n: None if getattr(f, n) is None else float(getattr(f, n)) for n in _NUMERIC if n in data}
    return DeviceSpec(
        key=key,
        name=f.name,
        tc_flops=bf16,
        cc_flops=si(f.fp32_cuda_core_tflops, 12),
        mem_bw=si(f.mem_bw_gbs, 9),
        mem_bytes=f.memory_gb * GIB,
        l2_bytes=f.l2_mb * MIB,
        sm_count=f.sm_count,
        peaks_by_dtype=peaks,
        sources=src,
        aliases=tuple(str(a).lower() for a in f.aliases),
        vendor_model=f.vendor_model,
        boost_clock_hz=si(f.boost_clock_mhz, 6),
        accumulate_note=_one_line(f.accumulate_note),
        origin=where,
        figures=figures,
    )




def partition_of(spec: DeviceSpec, sms: int) -> DeviceSpec:
    """An SM partition of `spec` (a CUDA green context of `sms` SMs) as a GPU of its own: compute peaks scale
    with the SMs; memory, L2 and clock are the card's; the card's measured figures do not apply to it. The
    device still reports the card's SM count, so libraries that size grids to it keep the card's grid."""
    if not 0 < sms <= spec.sm_count:
        raise UserError(f"a partition of {spec.name} needs 1 to {spec.sm_count} SMs, not {sms}: give a count "
                        "in that range")
    f = sms / spec.sm_count
    figures = {k: v for k, v in spec.figures.items() if k not in MEASURED_FIELDS}
    return evolve(spec, key=f"{spec.key}-{sms}sm", name=f"{spec.name} ({sms} of {spec.sm_count} SMs)",
                  sm_count=sms, tc_flops=spec.tc_flops * f, cc_flops=spec.cc_flops * f,
                  peaks_by_dtype={k: v * f for k, v in spec.peaks_by_dtype.items()}, figures=figures, aliases=(),
                  origin=f"partition of {spec.origin}", reported_sms=spec.reported_sms or spec.sm_count)


def measured_spec(name: str, sm_count: int, memory_bytes: float, l2_bytes: float, clock_mhz: float | None,
                  matmul_flops: float, copy_bw: float, floor_s: float | None) -> DeviceSpec:
    """A GPU outside the catalog as `calibrate` saw it: what the device reports (name, SMs, memory, L2, clock) and
    what the calibration measured (large BF16 matmul, copy bandwidth, kernel floor). The datasheet figures no
    run can read (dense peaks per dtype) are assumed from the measured ones, and the sources say so: replace
    them with the vendor's figures in the written device file."""
    bf16 = matmul_flops / 1e12 / ASSUMED_MATMUL_FRACTION
    assumed = "assumed by dsocr-trace calibrate from the measured matmul rate: replace with the datasheet figure"
    doc: dict[str, Any] = {
        "name": name, "sm_count": int(sm_count), "boost_clock_mhz": float(clock_mhz or DEFAULT_CLOCK_MHZ),
        "memory_gb": round(memory_bytes / GIB, 2), "mem_bw_gbs": round(copy_bw / 1e9 / ASSUMED_COPY_FRACTION, 1),
        "l2_mb": round(max(l2_bytes, MIB) / MIB, 2), "tc_bf16_dense_tflops": round(bf16, 1),
        "tc_fp16_fp16acc_dense_tflops": round(bf16, 1), "tf32_dense_tflops": round(bf16 / 2, 1),
        "fp32_cuda_core_tflops": round(bf16 / 8, 1), "tc_fp8_dense_tflops": None,
        "measured_matmul_tflops": round(matmul_flops / 1e12, 1), "measured_copy_gbs": round(copy_bw / 1e9, 1),
        "usable_memory_gib": round(memory_bytes / GIB, 2),
        "sources": {"sm_count": "torch.cuda.get_device_properties", "memory_gb": "torch.cuda.get_device_properties",
                    "l2_mb": "torch.cuda.get_device_properties",
                    "boost_clock_mhz": "nvidia-smi clocks.max.sm" if clock_mhz
                    else f"assumed ({DEFAULT_CLOCK_MHZ} MHz)",
                    "mem_bw_gbs": "assumed from the measured copy bandwidth: replace with the datasheet figure",
                    "tc_bf16_dense_tflops": assumed, "tc_fp16_fp16acc_dense_tflops": assumed,
                    "tf32_dense_tflops": assumed, "fp32_cuda_core_tflops": assumed,
                    "measured_matmul_tflops": "dsocr-trace calibrate (largest GEMM of its microbenchmarks)",
                    "measured_copy_gbs": "dsocr-trace calibrate (device-to-device copy, read + written)",
                    "usable_memory_gib": "torch.cuda.get_device_properties(0).total_memory"},
    }
    if floor_s:
        doc["kernel_floor_us"] = round(floor_s * 1e6, 2)
        doc["sources"]["kernel_floor_us"] = "dsocr-trace calibrate (tiny kernels back to back)"
    key = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"
    return spec_from_dict(doc, key, f"the local GPU ({name})")


def spec_to_dict(spec: DeviceSpec) -> dict[str, Any]:
    """The device-file form of a spec (vendor units, as read): load(spec_to_dict(s)) gives s back."""
    out: dict[str, Any] = {"name": spec.name}
    if spec.aliases:
        out["aliases"] = list(spec.aliases)
    if spec.vendor_model:
        out["vendor_model"] = spec.vendor_model
    for n in _NUMERIC:
        if n in spec.figures:
            x = spec.figures[n]
            out[n] = int(x) if n == "sm_count" and x is not None else x
    if spec.accumulate_note:
        out["accumulate_note"] = spec.accumulate_note
    cited = {n: v for n, v in spec.sources.items() if not v.startswith("user file ")}
    if cited:
        out["sources"] = cited
    return out


def same_hardware(a: DeviceSpec, b: DeviceSpec) -> bool:
    """The same datasheet figures (names, aliases, sources and price aside): the same GPU as far as predictions
    go."""
    def hw(x: DeviceSpec) -> dict[str, float | None]:
        return {k: v for k, v in x.figures.items() if k != "price_per_hour_usd"}
    return hw(a) == hw(b)


def _catalog_dir() -> Any:
    return resources.files("dsocr_trace.hardware").joinpath("devices")


def _catalog_files() -> dict[str, Any]:
    """Catalog key (file stem) -> traversable, sorted by key."""
    out = {}
    for entry in _catalog_dir().iterdir():
        if entry.name.endswith(".yaml"):
            out[entry.name[: -len(".yaml")]] = entry
    return dict(sorted(out.items()))


def _load_catalog_entry(key: str, entry: Any) -> DeviceSpec:
    where = f"catalog device file devices/{entry.name}"
    return spec_from_dict(parse_file_text(entry.read_text(encoding="utf-8"), where, False), key, where)


def catalog_file_text(key: str) -> str:
    """The packaged YAML of a catalog device, comments included."""
    return str(_catalog_files()[key].read_text(encoding="utf-8"))


def catalog() -> list[DeviceSpec]:
    """Every device the package ships, sorted by key."""
    return [_load_catalog_entry(k, e) for k, e in _catalog_files().items()]


def _normalize(name: str) -> str:
    # "H100 SXM", "h100_sxm" and "h100-sxm" name the same part
    return "-".join(name.strip().lower().replace("_", " ").split())


def load_device_file(path: str | Path) -> DeviceSpec:
    """Read a user's device file (.yaml, .yml or .json)."""
    p = Path(path)
    where = f"device file {path}"
    try:
        if p.stat().st_size > MAX_DEVICE_FILE_BYTES:
            raise UserError(f"{where}: {p.stat().st_size:,} bytes is not a device file (they are ~2 KB): check "
                            "the path")
        text = p.read_bytes().decode("utf-8")
    except OSError as e:
        raise UserError(f"{where}: cannot be read ({_one_line(e.strerror or str(e))}): check the path") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{where}: not UTF-8 text (byte {e.start}): save it as UTF-8 or start again from "
                        "`dsocr-trace devices --export KEY`") from None
    return spec_from_dict(parse_file_text(text, where, p.suffix.lower() == ".json"), p.stem, where)


def load_device(name_or_path: str) -> DeviceSpec:
    """A catalog device by key or alias ('h100', 'H100-SXM', '4090'), or a path to a user device file."""
    if name_or_path.lower().endswith(DEVICE_SUFFIXES) or Path(name_or_path).is_file():
        return load_device_file(name_or_path)
    wanted = _normalize(name_or_path)
    files = _catalog_files()
    if wanted in files:
        return _load_catalog_entry(wanted, files[wanted])
    for spec in catalog():
        if wanted in spec.aliases or wanted == _normalize(spec.name):
            return spec
    raise UserError(f"unknown device '{name_or_path}': known devices are {', '.join(files)}; "
                    "for another GPU copy one of their YAML files, edit it and pass --device-file PATH.yaml")
