"""Calibration profiles: achieved peaks, per-kind efficiency curves and host overheads, stored as JSON.

A profile says how close real kernels come to a device's datasheet peaks. `default_profile` derives one from
the spec alone (source "spec-default"); a calibration run on the real GPU writes one with measured numbers
(source "calibrated:<file>"), optionally with measured GEMM times.

Efficiency curves are piecewise linear in log10(size) and clamped at both ends. Size is FLOPs for the
compute side and bytes for the memory side. Efficiency is relative to the profile's peaks (tc_flops,
cc_flops, mem_bw), which are the datasheet peaks in a spec-default profile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from attrs import evolve, field, frozen

from dsocr_trace.costs.base import KINDS
from dsocr_trace.errors import UserError
from dsocr_trace.hardware.spec import DeviceSpec, require_number

SCHEMA = "dsocr-trace/profile/1"
# kinds that take device time: view is free and sync only stalls the host
TIMED_KINDS = tuple(k for k in KINDS if k not in ("view", "sync"))
# kinds whose FLOPs run on tensor cores; their CUDA-core FLOPs (softmax exp, bias) follow the elementwise curve
TENSOR_CORE_KINDS = ("gemm", "grouped_gemm", "conv", "attention")

# -- defaults ------------------------------------------------------------------------------------------------
# Minimum device time of any kernel, start to end as a profiler shows it. Trivial kernels (a 4-byte fill,
# a 1-element add) last about 1.5-3 us on H100/Ada/Blackwell: block scheduling, one wave, teardown.
DEFAULT_LAUNCH_S = 2.0e-6
# Host time per eager aten op: the Python call, torch's dispatcher (inference mode, no autograd) and
# cudaLaunchKernel (~2-4 us alone). Microbenchmarks of a tiny eager op put the loop at ~8-20 us per op on a
# server CPU; 12 us is the middle of that range.
DEFAULT_HOST_OP_S = 12e-6
# nn.Module.__call__ on top of forward: _call_impl, the hook checks and the extra Python frame, ~3-5 us.
DEFAULT_HOST_MODULE_S = 4e-6
# CUDA-graph replay: the device walks the graph without the host, each kernel ~1 us after the previous one.
DEFAULT_GRAPH_KERNEL_S = 1.0e-6
# cudaGraphLaunch of a decoder-step graph: one host call, ~10 us.
DEFAULT_GRAPH_LAUNCH_S = 10e-6
# A strided or broadcast copy/elementwise kernel reads through a non-unit stride or re-reads one operand:
# uncoalesced sectors waste ~2/3 of each DRAM transaction, so it streams at ~1/3 of a contiguous one.
DEFAULT_STRIDED_PENALTY = 0.35

# The default curves are written for the reference device (H100 SXM5) and shifted along the size axis for
# another GPU:
# * compute sizes scale with SM count: a GEMM is efficient once its output tiles fill every SM for several
#   waves (wave quantization), and the number of tiles needed grows with the SMs;
# * memory sizes scale with bandwidth: by Little's law the bytes in flight needed to hide DRAM latency are
#   bandwidth x latency, so a faster memory needs a bigger kernel to reach the same fraction of it.
REF_SM_COUNT = 132
REF_MEM_BW = 3350e9

KB = 1024
MB = 1024 * 1024
# Compute side (FLOPs): cuBLAS BF16 GEMMs reach ~70-80% of dense peak on large square problems
# (4096^3 = 1.4e11 FLOPs); a 1e9-FLOP GEMM fills one wave of 128x128 tiles at best (~50%); below 1e8 the
# kernel is prologue/epilogue. CUDA-core kinds (sizes in CUDA-core FLOPs) top out lower: their math is
# interleaved with loads.
_COMPUTE: dict[str, list[tuple[float, float]]] = {
    "gemm": [(1e6, 0.10), (1e8, 0.30), (1e9, 0.50), (1e10, 0.65), (1e11, 0.75)],
    # MoE experts: many small per-expert tiles and a ragged last tile per expert
    "grouped_gemm": [(1e6, 0.05), (1e8, 0.20), (1e9, 0.35), (1e10, 0.50), (1e11, 0.60)],
    # implicit GEMM pays for the im2col addressing
    "conv": [(1e6, 0.08), (1e8, 0.25), (1e9, 0.45), (1e10, 0.60), (1e11, 0.70)],
    # SDPA's flash kernel (FA2 on Hopper/Ada) reaches ~35-45% of dense BF16 peak: softmax between the two
    # GEMMs and no warp-specialised pipelining
    "attention": [(1e6, 0.05), (1e8, 0.15), (1e9, 0.30), (1e10, 0.40), (1e11, 0.45)],
    "elementwise": [(1e5, 0.10), (1e7, 0.40), (1e9, 0.60)],
    "reduction": [(1e5, 0.08), (1e7, 0.30), (1e9, 0.50)],
    "copy": [(1e5, 0.10), (1e7, 0.40), (1e9, 0.60)],
    "gather": [(1e5, 0.05), (1e7, 0.20), (1e9, 0.40)],
    "sort": [(1e5, 0.02), (1e7, 0.10), (1e9, 0.20)],
    "alloc": [(1e5, 0.10), (1e7, 0.40), (1e9, 0.60)],
}
# Memory side (bytes moved): a contiguous copy streams at ~5% of peak at 4 KB (one wave of a few blocks),
# ~50% at 1 MB and ~85% from 64 MB (what device-to-device copies reach on HBM and GDDR).
_MEMORY: dict[str, list[tuple[float, float]]] = {
    "elementwise": [(4 * KB, 0.05), (1 * MB, 0.50), (64 * MB, 0.85)],
    "copy": [(4 * KB, 0.05), (1 * MB, 0.50), (64 * MB, 0.85)],
    "alloc": [(4 * KB, 0.05), (1 * MB, 0.50), (64 * MB, 0.85)],
    # a row reduction ends in a block-level tree and often a second pass
    "reduction": [(4 * KB, 0.04), (1 * MB, 0.40), (64 * MB, 0.80)],
    # weight streaming of skinny (decode) GEMMs: cuBLAS GEMV-like kernels reach ~80% of HBM bandwidth
    "gemm": [(4 * KB, 0.05), (1 * MB, 0.45), (64 * MB, 0.80)],
    "conv": [(4 * KB, 0.05), (1 * MB, 0.40), (64 * MB, 0.75)],
    "grouped_gemm": [(4 * KB, 0.03), (1 * MB, 0.30), (64 * MB, 0.70)],
    # decode attention reading the KV cache: per-head splits keep few bytes in flight per block
    "attention": [(4 * KB, 0.04), (1 * MB, 0.35), (64 * MB, 0.75)],
    # index-driven rows: partial sectors and poor coalescing
    "gather": [(4 * KB, 0.03), (1 * MB, 0.25), (64 * MB, 0.50)],
    # radix sort / cumsum make several passes over the data the Cost counts once
    "sort": [(4 * KB, 0.01), (1 * MB, 0.05), (64 * MB, 0.30)],
}
MAX_EFFICIENCY = 1.5  # calibrated points are relative to measured peaks; noise can put one slightly above 1


@frozen
class Curve:
    """Efficiency vs size, piecewise linear in log10(size): points sorted by size, sizes > 0, efficiency > 0."""

    points: tuple[tuple[float, float], ...]

    def to_list(self) -> list[list[float]]:
        return [[float(s), float(e)] for s, e in self.points]


@frozen
class KindCurves:
    compute: Curve  # size = FLOPs
    memory: Curve  # size = bytes


@frozen
class GemmEntry:
    """A measured GEMM: C[m, n] = A[m, k] @ B[k, n] took `seconds` of device time."""

    m: int
    n: int
    k: int
    seconds: float


@frozen
class Profile:
    source: str  # "spec-default" or "calibrated:<file>"
    tc_flops: float  # achieved tensor-core FLOP/s the curves are relative to
    cc_flops: float  # achieved CUDA-core FLOP/s
    mem_bw: float  # achieved B/s
    curves: dict[str, KindCurves]
    launch_s: float = DEFAULT_LAUNCH_S
    host_op_s: float = DEFAULT_HOST_OP_S
    host_module_s: float = DEFAULT_HOST_MODULE_S
    graph_kernel_s: float = DEFAULT_GRAPH_KERNEL_S
    graph_launch_s: float = DEFAULT_GRAPH_LAUNCH_S
    strided_penalty: float = DEFAULT_STRIDED_PENALTY
    gemm_table: tuple[GemmEntry, ...] = ()
    # measured seconds per traced op key (dsocr_trace.trace.opkey) from operator benchmarks on `device`
    op_table: dict[str, float] = field(factory=dict)
    # host time of an op that launches no kernel (view, allocation); None: the same as host_op_s
    host_view_s: float | None = None
    # a profile measured on another GPU and moved here: the factors its achieved peaks were scaled by
    # (tensor-core, CUDA-core, bandwidth); measured op times are rescaled by the modelled time ratio
    transfer_scale: tuple[float, float, float] | None = None
    # host time to launch one kernel from a compiled engine (aten dispatch + launch, none of the model's
    # Python): the fused execution's prefill host cost per kernel
    launch_host_s: float = 6e-6
    device: str | None = None  # catalog key of the device it was made for
    gpu: str | None = None  # what the calibration run saw: torch.cuda.get_device_name() etc.
    driver: str | None = None
    torch: str | None = None
    cuda: str | None = None
    date: str | None = None
    schema: str = field(default=SCHEMA)

    @property
    def calibrated(self) -> bool:
        return self.source.startswith("calibrated")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, every field present (None for unknown metadata) so files diff cleanly."""
        return {
            "schema": self.schema,
            "source": self.source,
            "device": self.device,
            "gpu": self.gpu,
            "driver": self.driver,
            "torch": self.torch,
            "cuda": self.cuda,
            "date": self.date,
            "tc_flops": self.tc_flops,
            "cc_flops": self.cc_flops,
            "mem_bw": self.mem_bw,
            "launch_s": self.launch_s,
            "host_op_s": self.host_op_s,
            "host_module_s": self.host_module_s,
            "graph_kernel_s": self.graph_kernel_s,
            "graph_launch_s": self.graph_launch_s,
            "strided_penalty": self.strided_penalty,
            "curves": {k: {"compute": c.compute.to_list(), "memory": c.memory.to_list()}
                       for k, c in sorted(self.curves.items())},
            "gemm_table": [{"m": g.m, "n": g.n, "k": g.k, "seconds": g.seconds} for g in self.gemm_table],
            "op_table": dict(sorted(self.op_table.items())),
            "host_view_s": self.host_view_s,
            "launch_host_s": self.launch_host_s,
            "transfer_scale": list(self.transfer_scale) if self.transfer_scale else None,
        }


def _scaled(points: Sequence[tuple[float, float]], factor: float) -> Curve:
    return Curve(tuple((s * factor, e) for s, e in points))


def default_curves(spec: DeviceSpec) -> dict[str, KindCurves]:
    """The reference curves shifted along the size axis for this device (see REF_SM_COUNT, REF_MEM_BW)."""
    cf = spec.sm_count / REF_SM_COUNT
    mf = spec.mem_bw / REF_MEM_BW
    return {k: KindCurves(compute=_scaled(_COMPUTE[k], cf), memory=_scaled(_MEMORY[k], mf)) for k in TIMED_KINDS}


def default_profile(spec: DeviceSpec) -> Profile:
    """A profile from the datasheet alone: peaks = spec peaks, reference curves, default host costs."""
    return Profile(
        source="spec-default",
        device=spec.key,
        gpu=spec.name,
        tc_flops=spec.tc_flops,
        cc_flops=spec.cc_flops,
        mem_bw=spec.mem_bw,
        curves=default_curves(spec),
    )


# -- load / save -------------------------------------------------------------------------------------------
_NUMBERS: dict[str, str] = {
    "tc_flops": "give the achieved tensor-core FLOP/s (e.g. 7.4e14)",
    "cc_flops": "give the achieved CUDA-core FLOP/s (e.g. 5.0e13)",
    "mem_bw": "give the achieved memory bandwidth in B/s (e.g. 2.9e12)",
    "launch_s": "give the minimum kernel device time in seconds (e.g. 2e-06)",
    "host_op_s": "give the host time per eager aten op in seconds (e.g. 1.2e-05)",
    "host_module_s": "give the host time per nn.Module call in seconds (e.g. 4e-06)",
    "graph_kernel_s": "give the per-kernel gap in a CUDA-graph replay in seconds (e.g. 1e-06)",
    "graph_launch_s": "give the host time of one CUDA-graph launch in seconds (e.g. 1e-05)",
    "strided_penalty": "give the bandwidth factor for strided/broadcast kernels, in (0, 1] (e.g. 0.35)",
}
_ZERO_OK = ("launch_s", "host_op_s", "host_module_s", "graph_kernel_s", "graph_launch_s")
_META = ("device", "gpu", "driver", "torch", "cuda", "date")


def _fail(where: str, name: str, problem: str, hint: str) -> UserError:
    return UserError(f"{where}: field '{name}' {problem}: {hint}")


def _curve(raw: Any, where: str, name: str) -> Curve:
    hint = "give a list of [size, efficiency] pairs, sizes > 0 and increasing, efficiencies in (0, 1.5]"
    if not isinstance(raw, list) or not raw:
        raise _fail(where, name, "must be a non-empty list", hint)
    pts: list[tuple[float, float]] = []
    for i, p in enumerate(raw):
        if not isinstance(p, list) or len(p) != 2:
            raise _fail(where, f"{name}[{i}]", "must be a [size, efficiency] pair", hint)
        s = require_number({f"{name}[{i}][0]": p[0]}, f"{name}[{i}][0]", where, hint)
        e = require_number({f"{name}[{i}][1]": p[1]}, f"{name}[{i}][1]", where, hint)
        assert s is not None and e is not None
        if e > MAX_EFFICIENCY:
            raise _fail(where, f"{name}[{i}]", f"has efficiency {e} > {MAX_EFFICIENCY}", hint)
        if pts and s <= pts[-1][0]:
            raise _fail(where, f"{name}[{i}]", "sizes must increase", hint)
        pts.append((s, e))
    return Curve(tuple(pts))


def _gemm_entry(raw: Any, where: str, i: int) -> GemmEntry:
    hint = "give {m, n, k, seconds}: positive integers and the measured device seconds"
    if not isinstance(raw, dict):
        raise _fail(where, f"gemm_table[{i}]", "must be a mapping", hint)
    vals = {}
    for f in ("m", "n", "k", "seconds"):
        key = f"gemm_table[{i}].{f}"  # name the entry, not just 'm', in the message
        vals[f] = require_number({key: raw[f]} if f in raw else {}, key, where, hint)
    m, n, k, sec = vals["m"], vals["n"], vals["k"], vals["seconds"]
    assert m is not None and n is not None and k is not None and sec is not None
    for f, x in (("m", m), ("n", n), ("k", k)):
        if x != int(x):
            raise _fail(where, f"gemm_table[{i}].{f}", "must be a whole number", hint)
    return GemmEntry(int(m), int(n), int(k), sec)


def profile_from_dict(data: Mapping[str, Any], where: str) -> Profile:
    """Validate a parsed profile; a one-line UserError naming the first bad field."""
    if data.get("schema") != SCHEMA:
        raise _fail(where, "schema", f"is {data.get('schema')!r}, not {SCHEMA!r}",
                    "write a profile with this version of dsocr-trace")
    source = data.get("source")
    if not isinstance(source, str) or not (source == "spec-default" or source.startswith("calibrated:")):
        raise _fail(where, "source", "must be 'spec-default' or 'calibrated:<file>'", "fix or regenerate the profile")
    nums: dict[str, float] = {}
    for f, hint in _NUMBERS.items():
        x = require_number(data, f, where, hint, allow_zero=f in _ZERO_OK)
        assert x is not None
        nums[f] = x
    if nums["strided_penalty"] > 1:
        raise _fail(where, "strided_penalty", f"is {nums['strided_penalty']} > 1", _NUMBERS["strided_penalty"])
    meta: dict[str, str | None] = {}
    for f in _META:
        x = data.get(f)
        if x is not None and not isinstance(x, str):
            raise _fail(where, f, "must be a string or null", "quote it or set it to null")
        meta[f] = x
    raw_curves = data.get("curves")
    if not isinstance(raw_curves, dict):
        raise _fail(where, "curves", "is missing or not a mapping", "give {kind: {compute: [...], memory: [...]}}")
    curves: dict[str, KindCurves] = {}
    for kind in TIMED_KINDS:
        c = raw_curves.get(kind)
        if not isinstance(c, dict):
            raise _fail(where, f"curves.{kind}", "is missing", "give {compute: [[flops, eff], ...], memory: [...]}")
        curves[kind] = KindCurves(compute=_curve(c.get("compute"), where, f"curves.{kind}.compute"),
                                  memory=_curve(c.get("memory"), where, f"curves.{kind}.memory"))
    unknown = sorted(set(raw_curves) - set(TIMED_KINDS))
    if unknown:
        raise _fail(where, f"curves.{unknown[0]}", "is not a kind", f"use one of {', '.join(TIMED_KINDS)}")
    table = data.get("gemm_table", [])
    if table is None:
        table = []
    if not isinstance(table, list):
        raise _fail(where, "gemm_table", "must be a list", "give a list of {m, n, k, seconds} or []")
    ops = data.get("op_table") or {}
    if not isinstance(ops, dict):
        raise _fail(where, "op_table", "must be a mapping", "give {op key: seconds} or {}")
    for k, v in ops.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v):
            raise _fail(where, f"op_table.{k}", f"is {v!r}", "give a positive number of seconds")
    return Profile(
        source=source,
        curves=curves,
        gemm_table=tuple(_gemm_entry(g, where, i) for i, g in enumerate(table)),
        op_table={str(k): float(v) for k, v in ops.items()},
        host_view_s=_optional_seconds(data, "host_view_s", where),
        transfer_scale=_transfer(data, where),
        launch_host_s=_optional_seconds(data, "launch_host_s", where) or 6e-6,
        tc_flops=nums["tc_flops"],
        cc_flops=nums["cc_flops"],
        mem_bw=nums["mem_bw"],
        launch_s=nums["launch_s"],
        host_op_s=nums["host_op_s"],
        host_module_s=nums["host_module_s"],
        graph_kernel_s=nums["graph_kernel_s"],
        graph_launch_s=nums["graph_launch_s"],
        strided_penalty=nums["strided_penalty"],
        device=meta["device"],
        gpu=meta["gpu"],
        driver=meta["driver"],
        torch=meta["torch"],
        cuda=meta["cuda"],
        date=meta["date"],
    )


def _optional_seconds(data: Mapping[str, Any], name: str, where: str) -> float | None:
    v = data.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or not math.isfinite(v):
        raise _fail(where, name, f"is {v!r}", "give seconds >= 0, or null")
    return float(v)


def _transfer(data: Mapping[str, Any], where: str) -> tuple[float, float, float] | None:
    v = data.get("transfer_scale")
    if v is None:
        return None
    if not isinstance(v, list) or len(v) != 3 or not all(isinstance(x, (int, float)) and x > 0 for x in v):
        raise _fail(where, "transfer_scale", f"is {v!r}", "give three positive factors [tc, cc, bw], or null")
    return (float(v[0]), float(v[1]), float(v[2]))


def transfer_profile(profile: Profile, source: DeviceSpec, target: DeviceSpec) -> Profile:
    """A profile calibrated on `source` moved to `target`: achieved peaks scale by the datasheet ratios;
    measured op times are rescaled per op by the modelled-time ratio (see predict.kernel_time)."""
    s = (target.tc_flops / source.tc_flops, target.cc_flops / source.cc_flops, target.mem_bw / source.mem_bw)
    return evolve(profile, device=target.key, tc_flops=profile.tc_flops * s[0], cc_flops=profile.cc_flops * s[1],
                  mem_bw=profile.mem_bw * s[2], transfer_scale=s,
                  source=f"{profile.source} (transferred from {source.key} to {target.key})")


def load_profile(path: str | Path) -> Profile:
    where = f"profile {path}"
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise UserError(f"{where}: cannot be read ({e.strerror or e}): check the path") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise UserError(f"{where}: not valid JSON ({' '.join(str(e).split())}): fix it or recalibrate") from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: must hold a JSON object: fix it or recalibrate")
    return profile_from_dict(data, where)


def profile_bytes(profile: Profile) -> bytes:
    """The file form: sorted keys, 2-space indent, trailing newline; the same profile always gives the same bytes."""
    return orjson.dumps(profile.to_dict(), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def save_profile(profile: Profile, path: str | Path) -> None:
    Path(path).write_bytes(profile_bytes(profile))


# GPUs whose measured profile ships with the package; others of the same family borrow it (transferred)
_PACKAGED = {"h100": "h100.json"}
_BORROW = {"h200": "h100"}


def packaged_profile(spec: DeviceSpec) -> Profile:
    """The best profile the package has for a GPU: measured on it, else measured on a same-architecture GPU
    and transferred, else the datasheet defaults."""
    from importlib import resources

    from dsocr_trace.hardware.spec import load_device

    key = spec.key if spec.key in _PACKAGED else _BORROW.get(spec.key)
    if key is None or not spec.origin.startswith("catalog"):
        return default_profile(spec)
    path = resources.files("dsocr_trace.hardware").joinpath("profiles", _PACKAGED[key])
    if not path.is_file():
        return default_profile(spec)
    prof = profile_from_dict(orjson.loads(path.read_bytes()), f"packaged profile {_PACKAGED[key]}")
    if key != spec.key:
        prof = transfer_profile(prof, load_device(key), spec)
    return prof
