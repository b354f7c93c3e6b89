"""The hardware catalog: datasheet figures of a GPU, read from small YAML files a user can copy and edit.

Files hold the numbers as vendors print them (TFLOP/s, GB/s, GB, MB, MHz); `DeviceSpec` holds them in SI
units (FLOP/s, B/s, bytes, Hz) so the predictor never converts. Every throughput is DENSE: vendors quote
2:4-sparse tensor-core figures at 2x, which no kernel in these models can use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from attrs import field, frozen

from dsocr_trace.errors import UserError

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
}
DEVICE_SUFFIXES = (".yaml", ".yml", ".json")


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


def si(value: float, exponent: int) -> float:
    """value x 10**exponent without binary noise: 66.9 * 1e12 is 66900000000000.01, parsing '66.9e12' is exact."""
    return float(f"{value!r}e{exponent}")


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


def parse_file_text(text: str, where: str, json_file: bool) -> dict[str, Any]:
    """Parse YAML (or JSON) text into a mapping; a one-line UserError on a syntax error or a non-mapping."""
    try:
        data = json.loads(text) if json_file else yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as e:
        raise UserError(f"{where}: not valid {'JSON' if json_file else 'YAML'} ({_one_line(str(e))[:200]}): "
                        "fix the syntax or start again from a catalog file") from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: the file must hold a mapping of field: value, not {type(data).__name__}: "
                        "start again from a catalog file")
    return data


def spec_from_dict(data: Mapping[str, Any], key: str, where: str) -> DeviceSpec:
    """Validate a device mapping (as read from a file) and convert it to SI units."""
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _fail(where, "name", "is missing or not a string", "give the GPU's name, e.g. 'NVIDIA H100 SXM5 80GB'")
    nums = {f: require_number(data, f, where, hint) for f, hint in REQUIRED_NUMBERS.items()}
    opt = {f: require_number(data, f, where, hint, nullable=True) for f, hint in OPTIONAL_NUMBERS.items()}
    sm = nums["sm_count"]
    if sm is None or sm != int(sm):
        raise _fail(where, "sm_count", "must be a whole number", REQUIRED_NUMBERS["sm_count"])

    aliases = data.get("aliases", [])
    # a bare 4090 in YAML is an int: accept numbers as names too
    if not isinstance(aliases, list) or not all(isinstance(a, str | int) and not isinstance(a, bool) for a in aliases):
        raise _fail(where, "aliases", "must be a list of names", "write e.g. aliases: [h100-sxm, h100-80gb]")
    sources = data.get("sources", {})
    if sources is None:
        sources = {}
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        raise _fail(where, "sources", "must map field names to source strings",
                    "write e.g. sources: {mem_bw_gbs: 'vendor datasheet'}")
    for text_field in ("vendor_model", "accumulate_note"):
        if not isinstance(data.get(text_field, ""), str):
            raise _fail(where, text_field, "must be a string", "quote the text or remove the field")

    def v(f: str) -> float:
        x = nums[f]
        assert x is not None  # required numbers are never None
        return x

    bf16 = si(v("tc_bf16_dense_tflops"), 12)
    peaks = {
        "bf16": bf16,
        # torch runs float16 GEMMs with FP32 accumulate: the same rate as BF16, not the FP16-accumulate one
        "fp16": bf16,
        "fp16_fp16acc": si(v("tc_fp16_fp16acc_dense_tflops"), 12),
        "tf32": si(v("tf32_dense_tflops"), 12),
        "fp32": si(v("fp32_cuda_core_tflops"), 12),
    }
    if opt["tc_fp8_dense_tflops"] is not None:
        peaks["fp8"] = si(opt["tc_fp8_dense_tflops"], 12)
    numeric = [*REQUIRED_NUMBERS, *OPTIONAL_NUMBERS]
    # a user file need not cite anything; say so rather than leave the provenance blank
    src = {f: str(sources.get(f, f"user file {where}")) for f in numeric if f in data}
    return DeviceSpec(
        key=key,
        name=name.strip(),
        tc_flops=bf16,
        cc_flops=si(v("fp32_cuda_core_tflops"), 12),
        mem_bw=si(v("mem_bw_gbs"), 9),
        mem_bytes=v("memory_gb") * GIB,
        l2_bytes=v("l2_mb") * MIB,
        sm_count=int(sm),
        peaks_by_dtype=peaks,
        sources=src,
        aliases=tuple(str(a).lower() for a in aliases),
        vendor_model=str(data.get("vendor_model", "")),
        boost_clock_hz=si(v("boost_clock_mhz"), 6),
        accumulate_note=_one_line(str(data.get("accumulate_note", ""))),
        origin=where,
    )


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
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"{where}: cannot be read ({_one_line(e.strerror or str(e))}): check the path") from None
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
