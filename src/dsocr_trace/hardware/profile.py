"""Latency profiles: what a GPU does with each kernel family, and its host overheads.

Three sources, named in every prediction (`Profile.provenance`):
* calibrated: `dsocr-trace calibrate` measured this card (schema dsocr-trace/profile/2: the sweep's timed ops,
  the in-model correction factors, probes and host costs, with GPU, driver, torch and date). The kernel-family
  models (dsocr_trace.kernels) are fitted from the sweep when the profile is loaded.
* transferred: a profile calibrated on one GPU moved to another of the same architecture: the memory side of
  every kernel scales by the ratio of measured copy bandwidths, compute and launch terms stay (same SMs and
  clocks: H100 <-> H200).
* spec-default: the datasheet alone: a roofline over efficiency curves shifted to the device (below).

Datasheet efficiency curves are piecewise linear in log10(size) and clamped at both ends. Size is FLOPs for
the compute side and bytes for the memory side; efficiency is relative to the profile's peaks.
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
from dsocr_trace.hardware.spec import PERFORMANCE_FIELDS, DeviceSpec, GpuFigures

SCHEMA = "dsocr-trace/profile/2"
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
# `.item()`: the scalar's device-to-host copy on the copy engine, 1.40-1.53 us each (mean 1.44) on a lent H200
# (benchmarks/results/h200-compile-heldout: the "Memcpy DtoH" rows of the kernel tables, 15 tables of 10 prefill
# runs, two copies each); a PCIe round trip, not a property of the SMs, so other GPUs keep it
DEFAULT_SYNC_COPY_S = 1.45e-6
# torch.compile host costs, measured on a lent H200 (benchmarks/results/h200-compile): a reduce-overhead decode
# step at batch 1, KV 1000 took 2.43 ms of wall for 1.33 ms of kernels; less the 0.30 ms of in-graph gaps the
# replay adds between the plan's 362 kernels (graph_kernel_s each), 0.80 ms is the step's own host cost (two
# CUDA-graph launches, Dynamo's guards, the eager glue). The compiled base prefill took 30.6 ms of wall for
# 8.9 ms of kernels, host-bound: 31.6 us per kernel of the compiled plan (923 kernels; the run launched 938),
# guards and glue included.
DEFAULT_COMPILED_STEP_S = 0.80e-3
DEFAULT_COMPILED_LAUNCH_S = 31.6e-6
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
class Transfer:
    """A profile calibrated on one GPU (src) moved to another (dst) by the cross-GPU model (kernels.transfer)."""

    source_device: str  # catalog key of the GPU it was measured on
    src: GpuFigures
    dst: GpuFigures
    assumed: tuple[str, ...] = ()  # the target's figures nobody measured (datasheet x the calibrated cards' ratio)

    @property
    def bw_ratio(self) -> float:
        """Copy bandwidth of the target over that of the source."""
        return self.dst.mem_bw / self.src.mem_bw


@frozen
class Profile:
    source: str  # "calibrated", "transferred" or "spec-default"
    tc_flops: float  # tensor-core FLOP/s the ideals are relative to (measured GEMM peak when calibrated)
    cc_flops: float  # CUDA-core FLOP/s
    mem_bw: float  # B/s (measured copy bandwidth when calibrated)
    curves: dict[str, KindCurves]  # datasheet roofline curves: kinds no kernel family covers
    launch_s: float = DEFAULT_LAUNCH_S
    host_op_s: float = DEFAULT_HOST_OP_S
    host_module_s: float = DEFAULT_HOST_MODULE_S
    graph_kernel_s: float = DEFAULT_GRAPH_KERNEL_S
    graph_launch_s: float = DEFAULT_GRAPH_LAUNCH_S
    sync_copy_s: float = DEFAULT_SYNC_COPY_S  # device time of a host sync's scalar copy
    strided_penalty: float = DEFAULT_STRIDED_PENALTY
    # host time of an op that launches no kernel (view, allocation); None: the same as host_op_s
    host_view_s: float | None = None
    # host time to launch one kernel from a compiled engine (aten dispatch + launch, none of the model's
    # Python): the fused execution's prefill host cost per kernel
    launch_host_s: float = 6e-6
    # torch.compile as the compile harness runs it: host seconds per fused kernel of a compiled prefill (inductor's
    # Python wrapper launching Triton/cuBLAS kernels) and per decode step around its CUDA graphs
    compiled_launch_s: float = DEFAULT_COMPILED_LAUNCH_S
    compiled_step_s: float = DEFAULT_COMPILED_STEP_S
    device: str | None = None  # catalog key of the device it is for
    gpu: str | None = None  # what the calibration run saw: torch.cuda.get_device_name()
    driver: str | None = None
    torch: str | None = None
    cuda: str | None = None
    date: str | None = None
    sm_count: int = REF_SM_COUNT
    # the calibration's timed sweep (operator-benchmark specs with seconds and kernel names): the kernel
    # families are fitted from it; empty for a datasheet profile
    sweep: dict[str, Any] = field(factory=dict, eq=False, repr=False)
    factors: dict[str, float] = field(factory=dict)  # in-model correction (kernels.inmodel)
    transfer: Transfer | None = None
    document: dict[str, Any] = field(factory=dict, eq=False, repr=False)  # the file as read
    file: str | None = None
    cache: list[Any] = field(factory=list, eq=False, repr=False)  # [the fitted PerfModel], filled on first use

    @property
    def calibrated(self) -> bool:
        return self.source in ("calibrated", "transferred")

    def provenance(self) -> dict[str, Any]:
        """Where the numbers come from, for reports, CSV rows and console headers: kind (calibrated,
        transferred or datasheet), the card and date of the calibration, and one line for people."""
        kind = {"calibrated": "calibrated", "transferred": "transferred"}.get(self.source, "datasheet")
        out: dict[str, Any] = {"kind": kind, "source": self.source, "calibrated": kind != "datasheet",
                               "device": self.device, "gpu": self.gpu if kind != "datasheet" else None,
                               "date": self.date, "driver": self.driver, "torch": self.torch, "file": self.file,
                               "text": self.label}
        if self.transfer is not None:
            out["transferred_from"] = self.transfer.source_device
            out["bw_ratio"] = self.transfer.bw_ratio
            out["assumed_figures"] = list(self.transfer.assumed)
        return out

    @property
    def label(self) -> str:
        if self.source == "calibrated":
            return f"calibrated on {self.gpu or self.device} ({(self.date or '')[:10]})"
        if self.source == "transferred" and self.transfer is not None:
            t = self.transfer
            figs = "datasheet figures only" if set(PERFORMANCE_FIELDS) <= set(t.assumed) else (
                "measured figures" if not t.assumed else f"measured figures, {', '.join(t.assumed)} assumed")
            return (f"calibrated on {t.source_device} ({(self.date or '')[:10]}), transferred to {self.device} "
                    f"({figs}: {t.dst.tc_flops / 1e12:.0f} TFLOP/s, {t.dst.mem_bw / 1e9:.0f} GB/s, "
                    f"{t.dst.sm_count} SMs)")
        return f"datasheet only ({self.device})"


def _scaled(points: Sequence[tuple[float, float]], factor: float) -> Curve:
    return Curve(tuple((s * factor, e) for s, e in points))


def default_curves(spec: DeviceSpec) -> dict[str, KindCurves]:
    """The reference curves shifted along the size axis for this device (see REF_SM_COUNT, REF_MEM_BW)."""
    cf = spec.sm_count / REF_SM_COUNT
    mf = spec.mem_bw / REF_MEM_BW
    return {k: KindCurves(compute=_scaled(_COMPUTE[k], cf), memory=_scaled(_MEMORY[k], mf)) for k in TIMED_KINDS}


# How far the host that will drive the GPU may differ from the one a profile was calibrated with: the same H200
# and software cost 34 us per Python-level call (in-model, fitted on model runs) on one machine, 21 on another
# (benchmarks/results/h200, h200-cli) and 18.2-20.3 on a third (benchmarks/results/h200-host, alone and with a
# busy SMT sibling), the fastest to the slowest a factor of 1.87 either way. Eager walls are given as a band
# over it; a host loaded by co-runners (70 us per call with two, same folder) lies outside it.
HOST_US_PER_CALL_SEEN = (18.2, 34.0)
HOST_BAND = (HOST_US_PER_CALL_SEEN[0] / HOST_US_PER_CALL_SEEN[1], HOST_US_PER_CALL_SEEN[1] / HOST_US_PER_CALL_SEEN[0])


def profile_kind(source: str) -> str:
    """A profile's source in one word: calibrated (measured on this GPU), transferred, or datasheet."""
    if "transferred" in source:
        return "transferred"
    return "calibrated" if source.startswith("calibrated") else "datasheet"


def host_scaled(profile: Profile, factor: float) -> Profile:
    """The profile with every host cost (per op, module, view, launch, compiled step, graph launch) x factor:
    the same GPU driven by a faster or slower host."""
    view = profile.host_view_s * factor if profile.host_view_s is not None else None
    return evolve(profile, host_op_s=profile.host_op_s * factor, host_module_s=profile.host_module_s * factor,
                  host_view_s=view, launch_host_s=profile.launch_host_s * factor,
                  compiled_launch_s=profile.compiled_launch_s * factor,
                  compiled_step_s=profile.compiled_step_s * factor, graph_launch_s=profile.graph_launch_s * factor,
                  cache=profile.cache)


def default_profile(spec: DeviceSpec) -> Profile:
    """A profile from the datasheet alone: peaks = spec peaks, reference curves, default host costs."""
    return Profile(source="spec-default", device=spec.key, gpu=spec.name, tc_flops=spec.tc_flops,
                   cc_flops=spec.cc_flops, mem_bw=spec.mem_bw, curves=default_curves(spec),
                   sm_count=spec.sm_count)


# -- the profile file ------------------------------------------------------------------------------------
def _fail(where: str, name: str, problem: str, hint: str) -> UserError:
    return UserError(f"{where}: field '{name}' {problem}: {hint}")


def _positive(doc: Mapping[str, Any], path: str, where: str, hint: str, required: bool = True) -> float | None:
    cur: Any = doc
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, Mapping) else None
    if cur is None:
        if required:
            raise _fail(where, path, "is missing", hint)
        return None
    if isinstance(cur, bool) or not isinstance(cur, (int, float)) or not math.isfinite(cur) or cur <= 0:
        raise _fail(where, path, f"is {cur!r}", hint)
    return float(cur)


def _sweep_points(doc: Mapping[str, Any], where: str) -> dict[str, Any]:
    sweep = doc.get("sweep")
    if not isinstance(sweep, Mapping) or not isinstance(sweep.get("points"), Mapping):
        raise _fail(where, "sweep.points", "is missing", "recalibrate with `dsocr-trace calibrate`")
    pts = sweep["points"]
    for key, p in pts.items():
        if not isinstance(p, Mapping) or not isinstance(p.get("op"), str) or not isinstance(p.get("inputs"), list):
            raise _fail(where, f"sweep.points.{key}", "is not an op spec", "recalibrate")
        sec = p.get("seconds")
        if isinstance(sec, bool) or not isinstance(sec, (int, float)) or not math.isfinite(sec) or sec <= 0:
            raise _fail(where, f"sweep.points.{key}.seconds", f"is {sec!r}", "give a positive number of seconds")
    return dict(pts)


def profile_from_document(doc: Mapping[str, Any], spec: DeviceSpec, where: str, file: str | None = None) -> Profile:
    """A calibrated profile (schema dsocr-trace/profile/2) for `spec`; one-line UserError for a bad field."""
    if doc.get("schema") != SCHEMA:
        raise _fail(where, "schema", f"is {doc.get('schema')!r}, not {SCHEMA!r}",
                    "recalibrate with this version: `dsocr-trace calibrate`")
    if doc.get("source") != "calibrated":
        raise _fail(where, "source", f"is {doc.get('source')!r}", "a profile file holds a calibration: recalibrate")
    meta: dict[str, str | None] = {}
    for f in ("device", "gpu", "driver", "torch", "cuda", "date"):
        x = doc.get(f)
        if x is not None and not isinstance(x, str):
            raise _fail(where, f, "must be a string or null", "quote it or set it to null")
        meta[f] = x
    tc = _positive(doc, "peaks.tc_flops", where, "the measured GEMM peak in FLOP/s (e.g. 8.2e14)")
    bw = _positive(doc, "peaks.mem_bw", where, "the measured copy bandwidth in B/s (e.g. 4.2e12)")
    host: Mapping[str, Any] = doc["host"] if isinstance(doc.get("host"), Mapping) else {}
    probes: Mapping[str, Any] = doc["probes"] if isinstance(doc.get("probes"), Mapping) else {}
    per_call = _positive(host, "per_call_s", where, "seconds per Python-level call", required=False) \
        or _positive(probes, "host_op_s", where, "seconds per op", required=False) or DEFAULT_HOST_OP_S
    gap = _positive(host, "graph_kernel_s", where, "seconds", required=False) \
        or _positive(probes, "graph_kernel_s", where, "seconds", required=False) or DEFAULT_GRAPH_KERNEL_S
    launch = _positive(probes, "launch_s", where, "seconds", required=False) or DEFAULT_LAUNCH_S
    raw_factors = doc.get("factors") or {}
    if not isinstance(raw_factors, Mapping):
        raise _fail(where, "factors", "must be a mapping", "give {bucket: factor} or {}")
    factors: dict[str, float] = {}
    for k, v in raw_factors.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.1 <= v <= 10:
            raise _fail(where, f"factors.{k}", f"is {v!r}", "give a factor between 0.1 and 10")
        factors[str(k)] = float(v)
    sm = doc.get("sm_count")
    base = default_profile(spec)
    return Profile(
        source="calibrated", tc_flops=tc or spec.tc_flops, cc_flops=spec.cc_flops, mem_bw=bw or spec.mem_bw,
        curves=base.curves, launch_s=launch, host_op_s=per_call, host_module_s=0.0, graph_kernel_s=gap,
        launch_host_s=_positive(probes, "host_op_s", where, "seconds", required=False) or base.launch_host_s,
        device=meta["device"] or spec.key, gpu=meta["gpu"], driver=meta["driver"], torch=meta["torch"],
        cuda=meta["cuda"], date=meta["date"], sm_count=int(sm) if isinstance(sm, int) and sm > 0 else spec.sm_count,
        sweep=_sweep_points(doc, where), factors=factors, document=dict(doc), file=file)


def read_document(path: str | Path) -> dict[str, Any]:
    """A profile file's JSON (plain or gzipped); one-line UserError when unreadable."""
    import gzip

    where = f"profile {path}"
    try:
        raw = Path(path).read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except OSError as e:
        raise UserError(f"{where}: cannot be read ({e.strerror or e}): check the path") from None
    except EOFError:
        raise UserError(f"{where}: the gzip data is truncated: copy the whole file again or recalibrate") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise UserError(f"{where}: not valid JSON ({' '.join(str(e).split())}): fix it or recalibrate") from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: must hold a JSON object: fix it or recalibrate")
    return data


def load_profile(path: str | Path, spec: DeviceSpec) -> Profile:
    return profile_from_document(read_document(path), spec, f"profile {path}", file=Path(path).name)


def document_bytes(doc: Mapping[str, Any]) -> bytes:
    """The file form: sorted keys, trailing newline; the same document always gives the same bytes."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) + b"\n"


def source_figures(profile: Profile, spec: DeviceSpec | None = None) -> GpuFigures:
    """A calibrated profile's own GPU in transfer quantities: its measured peaks, SMs and floor."""
    clock = spec.boost_clock_hz if spec is not None and spec.boost_clock_hz else 0.0
    peak = spec.tc_flops if spec is not None else profile.tc_flops
    return GpuFigures(profile.tc_flops, profile.mem_bw, profile.sm_count, clock, profile.launch_s, peak)


def transfer_profile(profile: Profile, target: DeviceSpec, figures: GpuFigures | None = None,
                     source: GpuFigures | None = None) -> Profile:
    """A calibrated profile moved to `target` by the cross-GPU model (kernels.transfer). The target's figures:
    `figures` (measured on it, e.g. by `calibrate --quick`), else what its spec gives (measured where the file
    has them, its datasheet x what the calibrated cards reach otherwise). `source`: the calibrated card's figures
    measured the same way as `figures` (a ratio of two figures taken by one method), else the profile's peaks.
    Host costs stay: they belong to the host, not the GPU (request.host band)."""
    if profile.transfer is not None:
        raise ValueError("transfer a calibrated profile, not a transferred one")
    src = profile.device or "?"
    src_fig = source or source_figures(profile, _catalog_spec(src))
    dst = figures or target.gpu_figures
    assumed = tuple(target.assumed_figures()) if figures is None else ()
    return evolve(profile, source="transferred", device=target.key, tc_flops=dst.tc_flops, mem_bw=dst.mem_bw,
                  sm_count=dst.sm_count, launch_s=dst.floor_s, transfer=Transfer(src, src_fig, dst, assumed),
                  cache=[])


def _catalog_spec(device: str) -> DeviceSpec | None:
    from dsocr_trace.hardware.spec import load_device

    try:
        return load_device(device)
    except UserError:
        return None


# GPUs whose measured profile ships with the package (gzipped profile/2 documents)
_PACKAGED = {"h100": "h100.json.gz", "h200": "h200.json.gz"}


def _packaged(key: str, spec: DeviceSpec) -> Profile | None:
    from importlib import resources

    name = _PACKAGED.get(key)
    if name is None:
        return None
    path = resources.files("dsocr_trace.hardware").joinpath("profiles", name)
    if not path.is_file():
        return None
    return profile_from_document(read_document(str(path)), spec, f"packaged profile {name}", file=name)


def balance(tc_flops: float, mem_bw: float) -> float:
    """FLOP per byte at which a kernel turns from bandwidth- to compute-bound."""
    return tc_flops / mem_bw


def packaged_profile(spec: DeviceSpec) -> Profile:
    """The best profile the package has for a GPU: measured on it (a catalog GPU with a packaged calibration),
    else the packaged calibration whose compute-to-bandwidth balance is nearest, carried to it by the cross-GPU
    model (its figures as the spec gives them: measured where known, assumed otherwise)."""
    from dsocr_trace.hardware.spec import load_device

    if spec.origin.startswith("catalog"):
        own = _packaged(spec.key, spec)
        if own is not None:
            return own
    # the calibrated cards' balances from their device files (the same measured figures their profiles hold):
    # only the nearest profile is read
    target = balance(spec.achievable_tc_flops, spec.achievable_mem_bw)
    near = sorted((abs(math.log(balance(s.achievable_tc_flops, s.achievable_mem_bw) / target)), key, s)
                  for key, s in ((k, load_device(k)) for k in sorted(_PACKAGED)))
    for _, key, src_spec in near:
        prof = _packaged(key, src_spec)
        if prof is not None:
            return transfer_profile(prof, spec)
    return default_profile(spec)
