"""GEMM / GEMV and convolution (implicit GEMM): time = ideal / efficiency.

Ideal: max(compute, memory), with compute wave-quantized: tiles = batch * ceil(M / tm) * ceil(N / tn) of
the kernel the library picks (its name tells tm x tn: nvjet_sm90_tst_<a>x<b>_..._TN<x>, where TNT kernels
tile (N, M) = (a, b) and TNN kernels (M, N) = (a, b) unless a < 64), waves = ceil(tiles / SMs), each wave one
tile per SM: compute = waves * 2 * tm * tn * K / (peak / SMs). Memory = bytes / bandwidth (a GEMV streams the weight).

Efficiency per class (op, N, K, batch, weight, dtype) is measured on the calibration sweep's M ladder and
held at the ends; between two measured points the nearer point's kernel (its tile and efficiency, on its own
waves at this M), or for cuBLAS GEMMs the other point's where the nearer one's tiles cross a wave boundary and
the other's run faster (convolutions keep the nearer point's tile: cuDNN's choices follow other rules). Classes
measured without tile names interpolate the efficiency linearly in log M. A class never measured borrows the
curve of the nearest measured class (log distance in N, K) of the same op. Convolutions: class (C_out, C_in,
kernel, stride), M = batch x output pixels.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from dsocr_trace.kernels.base import Estimate, Hw, Point, roofline
from dsocr_trace.kernels.interp import LogCurve
from dsocr_trace.kernels.query import Query

_NVJET = re.compile(r"nvjet_[a-z0-9]+_[a-z]+_(\d+)x(\d+)_.*_(T[NT][NT])$")
# (M, N) tiles of the other libraries' names, in the order tried:
_TILE_NAMES = (
    # cuBLAS xmma kernels (sm80 ... sm120): sm80_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x32_stage4_...
    re.compile(r"xmma_gemm\w*?_tilesize(\d+)x(\d+)x\d+"),
    # CUTLASS 2.x instances: cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_128x256_32x3_nn_align8 (M x N, K x stages)
    re.compile(r"cutlass_\d+_\w*?gemm\w*?_(\d+)x(\d+)_\d+x\d+_"),
    # cuBLAS heuristics' named kernels: ampere_bf16_s16816gemm_bf16_128x64_ldg8_f2f_stages_64x3_tn, sm90_..., ada_...
    re.compile(r"(?:ampere|turing|volta|ada|hopper|sm\d+)_\w*?gemm\w*?_(\d+)x(\d+)_"),
)
# GEMV kernels (decode's skinny products): no output tiles, one block per few rows
_GEMV = re.compile(r"gemv|gemvx|gemmSN|splitKreduce_kernel.*gemv", re.IGNORECASE)


def tile_of(kernels: Sequence[str]) -> tuple[int, int] | None:
    """(tm, tn) of the GEMM kernel among an op's kernels, when its name says (nvjet, cuBLAS xmma, CUTLASS 2.x,
    cuBLAS's named heuristics kernels); None for a GEMV or an unknown name."""
    for name in kernels:
        m = _NVJET.search(name)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            # TNT names tile (N, M); TNN names (M, N), except a first side under 64: a Hopper warpgroup MMA
            # spans at least 64 rows, so that side is N (decode's 8x64 / 16x64 TNN kernels run N / 8 or N / 16
            # CTAs: measured 4.8x slower on 16 of 132 SMs at M 5, N 768)
            return (b, a) if m.group(3).endswith("T") or a < 64 <= b else (a, b)
        if _GEMV.search(name):
            continue
        for pat in _TILE_NAMES:
            m = pat.search(name)
            if m:
                return int(m.group(1)), int(m.group(2))
    return None


def is_gemv(kernels: Sequence[str]) -> bool:
    """Whether the op ran as a cuBLAS GEMV (gemvx, gemv2T/gemv2N): a streaming kernel, no tiles."""
    return any(_GEMV.search(n) for n in kernels) and tile_of(kernels) is None


def waves_at(q: Query, m: float, tile: tuple[int, int], hw: Hw) -> int:
    """Waves of `tile` for q's product at M = m: ceil(batch * ceil(m / tm) * ceil(N / tn) / SMs)."""
    _, n, _, batch = q.detail
    return math.ceil(batch * math.ceil(m / tile[0]) * math.ceil(n / tile[1]) / hw.sm_count)


def quantized_compute(q: Query, hw: Hw, tile: tuple[int, int] | None) -> float:
    if tile is None or not q.detail:
        return q.tc_flops / hw.tc_flops
    m, _, k, _ = q.detail
    tm, tn = tile
    return waves_at(q, m, tile, hw) * 2.0 * tm * tn * k / (hw.tc_flops / hw.sm_count)


def ideal(q: Query, hw: Hw, tile: tuple[int, int] | None) -> tuple[float, float]:
    _, mem = roofline(q, hw)
    return quantized_compute(q, hw, tile), mem


class _Class:
    def __init__(self, pts: list[Point], hw: Hw, use_tiles: bool) -> None:
        rows = []
        for p in pts:
            tile = tile_of(p.kernels) if use_tiles else None
            c, m = ideal(p.q, hw, tile)
            rows.append((p.q.x[0], max(c, m) / p.seconds, tile))
        rows.sort(key=lambda r: r[0])
        self.curve = LogCurve([(x, e) for x, e, _ in rows])
        by_x = {x: t for x, _, t in rows}
        self.tiles = [by_x[x] for x in self.curve.x]


class GemmFamily:
    """GEMMs (family "gemm") or convolutions (family "conv"): one efficiency curve over M per class."""

    def __init__(self, family: str, points: Sequence[Point], hw: Hw, use_tiles: bool = True) -> None:
        self.family = family
        self.hw = hw
        self.use_tiles = use_tiles
        groups: dict[tuple[object, ...], list[Point]] = {}
        for p in points:
            if p.q.family == family and p.seconds > 0:
                groups.setdefault(p.q.cls, []).append(p)
        self.classes = {c: _Class(ps, hw, use_tiles) for c, ps in groups.items()}

    def _nearest_class(self, cls: tuple[object, ...]) -> _Class | None:
        """The measured class closest to `cls` in log (N, K) (gemm) or log (C_out, C_in * taps) (conv), same
        op and weight kind."""
        def key(c: tuple[object, ...]) -> tuple[float, float]:
            if self.family == "gemm":
                return float(c[1]), float(c[2])  # type: ignore[arg-type]
            taps = c[2] if isinstance(c[2], tuple) else (1,)
            return float(c[0]), float(c[1]) * math.prod(int(t) for t in taps)  # type: ignore[arg-type]

        same = [c for c in self.classes if c[0] == cls[0] and (self.family != "gemm" or c[4] == cls[4])] \
            if self.family == "gemm" else list(self.classes)
        if not same:
            return None
        n0, k0 = key(cls)
        best = min(same, key=lambda c: (math.log(key(c)[0] / n0)) ** 2 + (math.log(key(c)[1] / k0)) ** 2)
        return self.classes[best]

    def predict(self, q: Query) -> Estimate | None:
        cl = self.classes.get(q.cls)
        how = "class"
        if cl is None:
            cl = self._nearest_class(q.cls)
            how = "nearest-class"
        if cl is None:
            return None
        x = q.x[0]
        i0, i1, _ = cl.curve.bracket(x)
        if not self.use_tiles or i0 == i1 or self.family != "gemm" or cl.tiles[i0] is None or cl.tiles[i1] is None:
            tile = cl.tiles[cl.curve.nearest(x)] if self.use_tiles else None
            c, m = ideal(q, self.hw, tile)
            eff = cl.curve.at(x)
            return Estimate(max(c, m) / max(eff, 1e-6), c, m, eff, how, tile)
        # the nearer point's kernel (the library's choice moves with M in steps), unless its tiles need more waves
        # here than where it was measured and the other point's kernel runs this M faster: the library changes
        # kernels where a tile boundary is crossed (lm_head at M 572, between 513 and 640: 513's tile needs a
        # fourth row of tiles, 640's kernel is 18% faster). Each kernel keeps its own efficiency: one point's tile
        # with the other's efficiency would price a kernel nobody runs.
        near = cl.curve.nearest(x)
        far = i1 if near == i0 else i0
        picks = []
        for i in (near, far):
            t = cl.tiles[i]
            c, m = ideal(q, self.hw, t)
            e = max(cl.curve.y[i], 1e-6)
            picks.append((max(c, m) / e, c, m, e, t))
        t_near = cl.tiles[near]
        assert t_near is not None  # both neighbours' tiles are known here: the branch above took the rest
        crossed = waves_at(q, x, t_near, self.hw) > waves_at(q, cl.curve.x[near], t_near, self.hw)
        sec, c, m, eff, tile = picks[1] if crossed and picks[1][0] < picks[0][0] else picks[0]
        return Estimate(sec, c, m, eff, how, tile)
