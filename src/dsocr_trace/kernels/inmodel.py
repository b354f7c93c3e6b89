"""In-model correction: a kernel inside the model does not always take what it takes standalone.

The sweep times each op alone (operator benchmark); inside the model the same kernel runs between other
kernels and host gaps: tiny kernels come out ~10% slower (cold caches, the clock settling after an idle gap),
small GEMMs and attention kernels slightly faster (the producer left their input in L2). One factor per
(family group, standalone-time bucket) scales the standalone estimate. The factors are fitted by least squares
on the calibration workloads run in the model (`dsocr-trace calibrate` measures them per module): every
module's measured exclusive kernel time against the sum of its ops' standalone estimates split by bucket,
residuals relative to the measured time, shrunk towards 1 (a bucket with little data keeps ~1).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

from dsocr_trace.kernels.base import Estimate
from dsocr_trace.kernels.query import Query

GROUPS = {"gemm": "gemm", "conv": "gemm", "grouped_gemm": "grouped_gemm", "attention": "attention",
          "memory": "memory"}
EDGES_S = (3e-6, 8e-6, 25e-6, 100e-6)  # standalone time buckets: <3 us, 3-8, 8-25, 25-100, >100 us
SHRINK = 0.05  # weight of the pull towards 1, relative to one module observation
FACTOR_RANGE = (0.5, 2.0)


BIG_WEIGHT_BYTES = 64 << 20  # a weight far larger than L2 (lm_head's 331 MB): streamed, never cache-resident


def bucket(family: str, seconds: float, memory_bound: bool = False, weight_bytes: float = 0.0) -> str:
    """(family group, standalone-time bucket); GEMMs also split by the side their ideal is bound by (a weight-
    streaming GEMV and a compute-bound GEMM of the same length differ in-model) and by a weight that cannot sit
    in L2 (its tiles stream from memory in the model and in the sweep alike, but contend differently)."""
    group = GROUPS.get(family, "memory")
    side = ""
    if group == "gemm":
        side = ("m" if memory_bound else "c") + ("L" if weight_bytes >= BIG_WEIGHT_BYTES else "")
    return f"{group}{side}:{bisect.bisect_right(EDGES_S, seconds)}"


def weight_bytes_of(q: Query) -> float:
    """Bytes of a weight GEMM's weight (0 for anything else)."""
    if q.family != "gemm" or len(q.cls) < 5 or not q.cls[4] or not q.detail:
        return 0.0
    _, n, k, _ = q.detail
    return 2.0 * n * k


def fit_factors(observations: Sequence[tuple[Mapping[str, float], float]]) -> dict[str, float]:
    """observations: (standalone seconds per bucket, measured seconds) per module. Returns bucket -> factor."""
    import numpy as np

    rows = [(p, m) for p, m in observations if m > 0 and sum(p.values()) > 0]
    names = sorted({b for p, _ in rows for b in p})
    if not names:
        return {}
    idx = {b: i for i, b in enumerate(names)}
    a = np.zeros((len(rows) + len(names), len(names)))
    y = np.zeros(len(rows) + len(names))
    for r, (p, m) in enumerate(rows):
        for b, s in p.items():
            a[r, idx[b]] = s / m
        y[r] = 1.0
    # ridge towards 1: SHRINK * (f_b - 1) = 0, scaled by how much of the data the bucket explains
    for i in range(len(names)):
        a[len(rows) + i, i] = SHRINK * max(1.0, np.sqrt(len(rows)) / 10)
        y[len(rows) + i] = a[len(rows) + i, i]
    f, *_ = np.linalg.lstsq(a, y, rcond=None)
    lo, hi = FACTOR_RANGE
    return {b: float(min(hi, max(lo, f[idx[b]]))) for b in names}


def bucket_of(q: Query, standalone: Estimate) -> str:
    """The bucket of an op from its query and standalone estimate (what fit and prediction both key on)."""
    return bucket(q.family, standalone.seconds, standalone.memory_s > standalone.compute_s, weight_bytes_of(q))
