"""Carrying a kernel's time from the GPU it was calibrated on (source) to a GPU nobody calibrated (target).

The families are fitted on the source. A target is described by quantities that carry between GPUs
(`GpuFigures`: SMs, clock, datasheet and measured BF16 rate, copy bandwidth, kernel floor), measured where known
and assumed otherwise. One kernel's source time t_S is split in two:

* the fixed floor (launch, ramp, teardown), which is replaced by the target's: floor_T + (t_S - floor_S) * rho;
* the body, scaled by rho = (1 - s_m) * r_work + s_m * bw_S / bw_T, and never faster than the target's SMs can
  issue the kernel's bytes (sm_stream_s):
  - r_work, the work per SM: waves = ceil(units / SMs) on each GPU, units being output tiles for tiled
    tensor-core kernels (GEMM, convolution, grouped GEMM, prefill attention), (batch x heads) blocks for decode
    attention (x the split-KV factor where the library split the keys: it fills the SMs the device reports)
    and blocks of BLOCK_BYTES for memory-bound kernels. A persistent kernel (CUTLASS's grouped GEMM) launches
    min(tiles, reported SMs) CTAs that loop over the tiles: ceil(grid / SMs) rounds of ceil(tiles / grid)
    tiles. On a real GPU reported = available and both are the plain waves; a green-context partition reports
    the whole card (measured on 100 of 132 SMs: grouped GEMMs as slow as on 66, two rounds of 132 CTAs);
    times the ratio of per-SM
    rates: for the tensor-core math of tensor kernels (their compute ideal's share of the time) the datasheet
    per-SM rate for short kernels, moving (log of the source time, from RATE_SHORT_S to RATE_LONG_S) to the
    measured large-matmul rate per SM for long ones (a long kernel runs at the clock the card can hold under
    load, a short one at boost); for the rest of a tensor kernel and for memory kernels the clock ratio (a
    latency-bound GEMV on a GPU of slow tensor cores is not slowed by them);
  - s_m, the share of the body that streams device memory: 0 below BW_KNEE of the source's copy bandwidth
    (latency, issue or compute limits), rising linearly to 1 at BW_FULL (a weight-streaming GEMV);
  - the SM-side limit: SMs x clock x bytes per SM-cycle (a constant per kernel kind). Measured: memory kernels
    over 50 us are 8.0x slower on 16 of 132 SMs, the SM ratio, while the copy bandwidth drops only 3.5x: on the
    full H200 an element-wise kernel is as SM-limited as it is bandwidth-limited. The limit is taken relative to
    the source: min(body, its SM time on the source) x the ratio of SM times.

The constants were set on the H200's SM partitions (operator sweeps timed inside 16, 32, 66 and 100 SMs against
the full card: every 4th op of the fixed sweep and every decode-attention, grouped-GEMM and convolution op of it,
`python scripts/cross_gpu.py`): a grid search on three partitions' op errors, the fourth held out. Every fold
chose BLOCK_BYTES, COPY_BYTES_PER_SM_CYCLE and TENSOR_BYTES_PER_SM_CYCLE as below and three of four
GROUPED_FULL_ROWS; the folds split two and two on MEMORY_BYTES_PER_SM_CYCLE (20 / 28), RATE_LONG_S and
ROWWISE_SM_EXPONENT (near ties in op error); held out, the partitions' per-stage medians were 3.6/4.0/5.2/3.9%
(benchmarks/results/cross-gpu). MEMORY_BYTES_PER_SM_CYCLE is at least 13.4 physically:
the full H200 runs a large add at ~3.5 TB/s on 132 SMs at 1.98 GHz. COPY_BYTES_PER_SM_CYCLE sits at the grid's
top: a copy is held by the memory, not the SMs, down to 16 SMs.
"""

from __future__ import annotations

import math

from dsocr_trace.hardware.spec import DEFAULT_CLOCK_MHZ, GpuFigures
from dsocr_trace.kernels.base import Estimate
from dsocr_trace.kernels.query import Query

BW_KNEE, BW_FULL = 0.5, 0.95
BLOCK_BYTES = 4096  # bytes one block of an element-wise or copy kernel moves (256 threads x 16 B)
RATE_SHORT_S, RATE_LONG_S = 3e-6, 100e-6
DEFAULT_TILE = (128, 128)
GROUPED_TILE = (128, 256)
ATTN_Q_TILE = 128  # query rows per flash-attention block, when the kernel names do not say
# bytes an SM moves per cycle at most, element-wise / copy kernels (LSU issue) and tensor-core kernels (TMA,
# cp.async); a kernel cannot stream faster than SMs x clock x this, however fast the memory
MEMORY_BYTES_PER_SM_CYCLE = 28.0
# copies (cat, clone, casts) issue no math between their vector loads and stores: measured on 16 of 132 SMs, a
# 164 MB KV-cache cat runs at the partition's copy bandwidth (1.2 TB/s, ~38 B per SM-cycle), an add at a third
COPY_BYTES_PER_SM_CYCLE = 64.0
TENSOR_BYTES_PER_SM_CYCLE = 48.0
# how far a memory-bound kernel's waves follow the SMs, by kind: element-wise and copies fully (1); row-wise
# reductions (norms, softmax, sums) and index gathers less (a block per row, rows bounded by latency chains, not
# by the SMs: on 16 of 132 SMs a large layer norm is 6.0x slower where an add is 8.0x); sorts and histograms
# not at all (single-block or multi-pass kernels whose passes are latency-bound)
ROWWISE_SM_EXPONENT = 0.5
SORT_SM_EXPONENT = 0.0
# families whose kernels are persistent: a grid of min(tiles, reported SMs) CTAs loops over the tiles
PERSISTENT_FAMILIES = ("grouped_gemm",)
GROUPED_FULL_ROWS = 8.0  # rows per active expert from which a persistent grouped GEMM pays its whole rounds
SPLIT_CTAS_PER_SM = 4  # split-KV decode attention CTAs (4 warps, small tiles) resident on one SM at a time


def bandwidth_share(e: Estimate) -> float:
    """Share of a kernel's source time that streams device memory (0..1)."""
    if e.seconds <= 0:
        return 0.0
    reached = e.memory_s / e.seconds
    return min(1.0, max(0.0, (reached - BW_KNEE) / (BW_FULL - BW_KNEE)))


def tiled_units(q: Query, tile: tuple[int, int] | None) -> float | None:
    """Output tiles of a tensor-core kernel (None: not a tiled kernel)."""
    if q.family in ("gemm", "conv") and q.detail:
        m, n, _k, batch = q.detail
        tm, tn = tile or DEFAULT_TILE
        return float(batch * math.ceil(m / tm) * math.ceil(n / tn))
    if q.family == "grouped_gemm" and q.detail:
        rows, n, _k = q.detail
        tm, tn = tile or GROUPED_TILE
        return float(sum(math.ceil(r / tm) for r in rows if r > 0) * math.ceil(n / tn))
    if q.family == "attention" and q.detail:
        b, h, tq, _tk, _d = q.detail
        if tq <= 1:
            return None
        return float(b * h * math.ceil(tq / (tile[0] if tile else ATTN_Q_TILE)))
    return None


def persistence(q: Query) -> float:
    """How far a grouped GEMM pays its persistent grid's extra rounds (0..1): in proportion to the rows per
    active expert up to GROUPED_FULL_ROWS. Decode's one or two rows per expert are weight-slice loads that a
    persistent CTA overlaps with its next tile (measured on 16-100 SMs: about the plain waves); from ~4 rows on,
    the tiles' MMA work runs in the rounds (100 SMs as slow as 66)."""
    if q.family not in PERSISTENT_FAMILIES or not q.detail:
        return 0.0
    rows = [r for r in q.detail[0] if r > 0]
    return min(1.0, sum(rows) / len(rows) / GROUPED_FULL_ROWS) if rows else 0.0


def _waves(units: float, sms: int) -> float:
    return float(math.ceil(units / max(sms, 1))) if units > 0 else 1.0


def rounds(units: float, g: GpuFigures, persistent: bool = False) -> float:
    """Tile rounds of a kernel of `units` tiles (or blocks) on g: plain waves, or for a persistent kernel the
    rounds of its grid (sized to the SMs g reports) times the tiles each CTA loops over."""
    if not persistent or units <= 0:
        return _waves(units, g.sm_count)
    grid = min(units, float(g.grid_sms))
    return _waves(grid, g.sm_count) * math.ceil(units / grid)


def decode_waves(q: Query, split_kv: bool, g: GpuFigures) -> float:
    """Waves of a decode-attention kernel on g: one CTA per (batch, head), one per SM at a time; where the
    library split the keys, a grid filling the SMs g reports, SPLIT_CTAS_PER_SM of them co-resident per SM
    (measured: the split kernel of batch 1 is no slower on 100 of 132 SMs, 2-3x slower on 16)."""
    b, h = q.detail[0], q.detail[1]
    bh = float(b * h)
    if split_kv:
        units = bh * max(1, g.grid_sms // max(int(bh), 1))
        return _waves(units, g.sm_count * SPLIT_CTAS_PER_SM)
    return _waves(bh, g.sm_count)


def _short_ratio(src: GpuFigures, dst: GpuFigures) -> float:
    return (src.peak_tc_flops / src.sm_count) / (dst.peak_tc_flops / dst.sm_count)


def rate_ratio(seconds: float, src: GpuFigures, dst: GpuFigures) -> float:
    """Per-SM tensor time on the target over the source, for a kernel of `seconds` on the source."""
    short = _short_ratio(src, dst)
    long = (src.tc_flops / src.sm_count) / (dst.tc_flops / dst.sm_count)
    s = min(1.0, max(0.0, math.log(max(seconds, 1e-12) / RATE_SHORT_S) / math.log(RATE_LONG_S / RATE_SHORT_S)))
    return short ** (1.0 - s) * long ** s


def work_ratio(q: Query, seconds: float, src: GpuFigures, dst: GpuFigures,
               tile: tuple[int, int] | None = None, compute_share: float = 1.0, split_kv: bool = False) -> float:
    """How the non-streaming part of a kernel's time scales from src to dst. `compute_share`: the part of a
    tensor kernel's source time its tensor-core math takes (its compute ideal over its time): that part follows
    the per-SM tensor rate, the rest (prologue, pipeline fill, epilogue, a GEMV's latency) the clock."""
    clock = src.clock_hz / dst.clock_hz if src.clock_hz > 0 and dst.clock_hz > 0 else 1.0
    units = tiled_units(q, tile)
    if units is not None:
        c = min(1.0, max(0.0, compute_share))
        rate = rate_ratio(seconds, src, dst)
        # the clock a long kernel holds under load moves its non-math part as much as its math
        per_sm = c * rate + (1.0 - c) * clock * rate / _short_ratio(src, dst)
        ratio = rounds(units, dst) / rounds(units, src)
        f = persistence(q)
        if f > 0:
            ratio = ratio ** (1.0 - f) * (rounds(units, dst, True) / rounds(units, src, True)) ** f
        return ratio * per_sm
    if q.family == "attention" and q.detail:
        return decode_waves(q, split_kv, dst) / decode_waves(q, split_kv, src) * clock
    if q.family == "attention":
        return clock
    blocks = max(1.0, q.bytes / BLOCK_BYTES)
    waves = _waves(blocks, dst.sm_count) / _waves(blocks, src.sm_count)
    kind = q.cls[1] if len(q.cls) > 1 else ""
    return waves ** (SORT_SM_EXPONENT if kind == "sort" else ROWWISE_SM_EXPONENT if kind in ("reduction", "gather")
                     else 1.0) * clock


def sm_stream_s(q: Query, g: GpuFigures) -> float:
    """The time the GPU's SMs need to issue a kernel's loads and stores, whatever the memory could deliver:
    bytes / (SMs x clock x bytes per SM-cycle of the kernel's kind)."""
    if tiled_units(q, None) is not None or q.family == "attention":
        per_cycle = TENSOR_BYTES_PER_SM_CYCLE
    else:
        per_cycle = COPY_BYTES_PER_SM_CYCLE if len(q.cls) > 1 and q.cls[1] == "copy" else MEMORY_BYTES_PER_SM_CYCLE
    return q.bytes / (max(g.sm_count, 1) * (g.clock_hz or DEFAULT_CLOCK_MHZ * 1e6) * per_cycle)


def carry(e: Estimate, q: Query, src: GpuFigures, dst: GpuFigures, tile: tuple[int, int] | None = None) -> Estimate:
    """The source estimate moved to the target GPU (see the module docstring)."""
    body = e.seconds - src.floor_s
    if body <= 0:  # a kernel at or under the source's floor is all floor: it takes the target's
        sec = e.seconds * dst.floor_s / src.floor_s
    else:
        s_m = bandwidth_share(e)
        r_work = work_ratio(q, e.seconds, src, dst, tile, e.compute_s / e.seconds, e.split_kv)
        moved = body * ((1.0 - s_m) * r_work + s_m * src.mem_bw / dst.mem_bw)
        # the SM-side limit, as far as the source's own time says it can bind
        issue_src = sm_stream_s(q, src)
        sec = dst.floor_s + max(moved, min(body, issue_src) * sm_stream_s(q, dst) / issue_src if issue_src > 0
                                else 0.0)
    comp = e.compute_s * src.tc_flops / dst.tc_flops
    mem = e.memory_s * src.mem_bw / dst.mem_bw
    return Estimate(sec, comp, mem, max(comp, mem) / sec if sec > 0 else 0.0, e.how, e.tile, e.split_kv)
