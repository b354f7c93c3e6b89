"""Kernel families fitted on synthetic sweep points: the GEMM family's kernel choice between two measured sizes
and the log-space bracket it reads."""

from __future__ import annotations

import pytest

from dsocr_trace.kernels.base import Hw, Point
from dsocr_trace.kernels.gemm import GemmFamily, waves_at
from dsocr_trace.kernels.interp import LogCurve
from dsocr_trace.kernels.query import Query

HW = Hw(786e12, 4155e9, 132)
N, K = 129280, 1280  # lm_head


def lm_head(m: int) -> Query:
    return Query("gemm", ("mm", N, K, 1, True, "bf16"), (float(m),), 2.0 * m * N * K, 0.0,
                 2.0 * (m * K + N * K + m * N), 1, (m, N, K, 1))


def nvjet(tm: int, tn: int) -> str:
    # TNN names tile (M, N) = (a, b)
    return f"nvjet_sm90_tst_{tm}x{tn}_64x4_1x2_h_bz_coopA_TNN"


def test_bracket_matches_the_interpolation() -> None:
    c = LogCurve([(100.0, 1.0), (1000.0, 2.0)])
    assert c.bracket(50.0) == (0, 0, 0.0) and c.bracket(5000.0) == (1, 1, 0.0)
    i0, i1, f = c.bracket(316.2278)
    assert (i0, i1) == (0, 1) and f == pytest.approx(0.5, abs=1e-4)
    assert c.at(316.2278) == pytest.approx(1.5, abs=1e-4)


def test_a_kernel_whose_tiles_cross_a_wave_boundary_gives_way_to_the_neighbours() -> None:
    """Measured on an H200: lm_head at M 513 ran a 176-row tile, at M 640 a 128-row one (281.8 and 308.8 us).
    At M 572 the 176-row tile needs a fourth row of tiles (16 -> 21 waves): the 128-row kernel, whose waves do
    not change, is the one to price, never more than the larger M took."""
    fam = GemmFamily("gemm", [Point(lm_head(513), 281.8e-6, (nvjet(176, 192),)),
                              Point(lm_head(640), 308.8e-6, (nvjet(128, 320),))], HW)
    assert waves_at(lm_head(572), 572, (176, 192), HW) > waves_at(lm_head(572), 513, (176, 192), HW)
    e = fam.predict(lm_head(572))
    assert e is not None and e.tile == (128, 320) and e.seconds <= 308.8e-6 * 1.001
    # next to a measured size with the same waves, that size's kernel stays
    near = fam.predict(lm_head(520))
    assert near is not None and near.tile == (176, 192) and near.seconds == pytest.approx(281.8e-6, rel=0.05)


def test_nvjet_tile_orientation() -> None:
    """TNT names list (N, M); TNN names (M, N), except a first side under 64, which is N: a Hopper warpgroup
    MMA spans at least 64 rows (decode's 8x64 TNN kernels run N / 8 CTAs: 4.8x slower on 16 of 132 SMs)."""
    from dsocr_trace.kernels.gemm import tile_of

    assert tile_of(["nvjet_sm90_tst_512x24_64x3_2x1_v_bz_TNT"]) == (24, 512)
    assert tile_of(["nvjet_sm90_tst_256x128_64x4_2x1_v_bz_coopA_TNN"]) == (256, 128)
    assert tile_of(["nvjet_sm90_tst_8x64_64x16_2x1_v_bz_bias_TNN"]) == (64, 8)
    assert tile_of(["Memset (Device)", "nvjet_sm90_tst_16x64_64x16_2x1_v_bz_TNN"]) == (64, 16)
