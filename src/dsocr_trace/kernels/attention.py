"""Scaled-dot-product attention as dispatched (cuDNN, flash or memory-efficient: whatever the calibration
run's PyTorch picked for these arguments): time = ideal / efficiency.

Ideal: max(tensor-core FLOPs / peak, bytes / bandwidth), with the causal discount in the FLOPs (the cost
rule's attended pairs) and the float bias in the bytes. Efficiency per class (heads, head dim, causal, mask,
decode) over (batch x heads, query length, key length): interpolated along the one feature that varies in the
class, else inverse-distance weighted in log space (kernels.interp.Scatter). A class never measured borrows the
nearest measured class with the same decode flag.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from dsocr_trace.kernels.base import Estimate, Hw, Point, roofline
from dsocr_trace.kernels.interp import Scatter
from dsocr_trace.kernels.query import Query

# query rows per block, by library: flash (FA2 traits <head dim, block M, block N, warps>), cuDNN's generated
# SDPA kernels (..._<M>x<N>x<D>_<cluster>_kernel), the memory-efficient CUTLASS kernels (fmha_cutlassF_*_<M>x<N>_)
_Q_ROWS = (re.compile(r"Flash_fwd_kernel_traits<\s*\d+,\s*(\d+),"),
           re.compile(r"sdpa\w*?_(\d+)x\d+x\d+_\d+x\d+x\d+_kernel"),
           re.compile(r"fmha_cutlass[FB]_\w+?_(\d+)x\d+_"))


# a second pass that merges partial results over key blocks: cuDNN's lean attention, flash's split-KV combine
_SPLIT_KV = re.compile(r"lean_reduction|splitkv|combine", re.IGNORECASE)


def is_split_kv(kernels: Sequence[str]) -> bool:
    """Whether the keys were split over CTAs (a reduction kernel merges the partial softmaxes)."""
    return any(_SPLIT_KV.search(n) for n in kernels)


def q_rows_of(kernels: Sequence[str]) -> int | None:
    """Query rows one block of the attention kernel handles, when its name says."""
    for name in kernels:
        for pat in _Q_ROWS:
            m = pat.search(name)
            if m:
                return int(m.group(1))
    return None


class AttentionFamily:
    def __init__(self, points: Sequence[Point], hw: Hw) -> None:
        self.hw = hw
        groups: dict[tuple[object, ...], list[tuple[tuple[float, ...], float]]] = {}
        rows: dict[tuple[object, ...], Counter[int]] = {}
        # decode classes: (log features, split-KV?) of each timed point, the library's choice where it was seen
        self.splits: dict[tuple[object, ...], list[tuple[tuple[float, ...], bool]]] = {}
        for p in points:
            if p.q.family == "attention" and p.seconds > 0:
                c, m = roofline(p.q, hw)
                groups.setdefault(p.q.cls, []).append((p.q.x, max(c, m) / p.seconds))
                if p.q.cls[4] and p.kernels:
                    self.splits.setdefault(p.q.cls, []).append((tuple(math.log(v) for v in p.q.x),
                                                                is_split_kv(p.kernels)))
                r = q_rows_of(p.kernels)
                if r:
                    rows.setdefault(p.q.cls, Counter())[r] += 1
        self.classes = {c: Scatter(v) for c, v in groups.items()}
        # the block's query rows the class's kernels use (tiles for the cross-GPU model's waves)
        self.q_rows = {c: n.most_common(1)[0][0] for c, n in rows.items()}

    def predict(self, q: Query) -> Estimate | None:
        sc = self.classes.get(q.cls)
        how = "class"
        if sc is None:
            same = [c for c in self.classes if c[4] == q.cls[4]]
            if not same:
                return None
            # nearest by heads x head dim, then the causal and mask flags
            best = min(same, key=lambda c: (abs(c[0] * c[1] - q.cls[0] * q.cls[1]), c[2] != q.cls[2],  # type: ignore[operator]
                                            c[3] != q.cls[3]))
            sc, how = self.classes[best], "nearest-class"
            cls = best
        else:
            cls = q.cls
        eff = sc.at(q.x)
        c, m = roofline(q, self.hw)
        r = self.q_rows.get(cls)
        return Estimate(max(c, m) / max(eff, 1e-6), c, m, eff, how, (r, 0) if r else None,
                        self.split_kv(cls, q.x))

    def split_kv(self, cls: tuple[object, ...], x: tuple[float, ...]) -> bool:
        """Whether the library splits the keys at these features: as at the nearest timed point (log space)."""
        seen = self.splits.get(cls)
        if not seen:
            return False
        lx = tuple(math.log(v) for v in x)
        return min(seen, key=lambda s: sum((a - b) ** 2 for a, b in zip(s[0], lx, strict=False)))[1]
