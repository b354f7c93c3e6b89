"""MoE routing assumptions: how many rows each expert gets when T tokens each pick top-k of E experts.

A grouped GEMM's time depends on the rows per expert (tiles per expert, experts touched), which the trace
cannot know. Predictions state the routing they assume:
* `uniform`: every token picks k distinct experts uniformly at random (a well-balanced trained router);
* `skew:S`: picks in proportion to 1 / (rank + 1)^S over a fixed shuffle of the experts (S = 0 is uniform;
  S ~ 1.2 resembles a random-weight router);
* `histogram:FILE`: per-layer rows per expert measured on a real run (a measured.json from `validate`, or a
  JSON {layer: [rows per expert]}), rescaled to the request's token count.
Draws are seeded per layer, so the same request always gets the same rows.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import field, frozen

from dsocr_trace.errors import UserError


@frozen
class Routing:
    kind: str = "uniform"  # uniform | skew | histogram
    skew: float = 0.0
    # layer -> rows per expert as measured (histogram routing); tuple form keeps the object hashable
    histogram: tuple[tuple[int, tuple[int, ...]], ...] = field(default=())
    source: str = ""  # where a histogram came from

    @property
    def label(self) -> str:
        if self.kind == "skew":
            return f"skew:{self.skew:g}"
        if self.kind == "histogram":
            return f"histogram:{self.source}"
        return "uniform"

    def rows(self, layer: int, tokens: int, experts: int, top_k: int) -> tuple[int, ...]:
        """Rows per expert for `tokens` tokens at MoE layer `layer` (sums to tokens * top_k)."""
        if self.kind == "histogram":
            hist = dict(self.histogram)
            measured = hist.get(layer) or (next(iter(hist.values())) if hist else None)
            if measured is not None:
                if len(measured) != experts:
                    raise UserError(f"routing histogram {self.source} has {len(measured)} experts per layer, the "
                                    f"model has {experts}: pass a histogram measured on this model")
                return rescale(measured, tokens * top_k)
        skew = self.skew if self.kind == "skew" else 0.0
        return _drawn(layer, tokens, experts, top_k, round(skew, 6))


def rescale(counts: Sequence[int], total: int) -> tuple[int, ...]:
    """Counts scaled to sum to `total` (largest remainders get the leftover rows)."""
    s = sum(counts)
    if s == total:
        return tuple(int(c) for c in counts)
    if s <= 0:
        return tuple([total // len(counts)] * len(counts))
    exact = [c * total / s for c in counts]
    base = [math.floor(x) for x in exact]
    left = total - sum(base)
    order = sorted(range(len(counts)), key=lambda i: (-(exact[i] - base[i]), i))
    for i in order[:left]:
        base[i] += 1
    return tuple(base)


@functools.lru_cache(maxsize=4096)
def _drawn(layer: int, tokens: int, experts: int, top_k: int, skew: float) -> tuple[int, ...]:
    import numpy as np

    rng = np.random.default_rng(1000 + layer)
    k = min(top_k, experts)
    logw = -skew * np.log(np.arange(1, experts + 1, dtype=float))
    logw = logw[rng.permutation(experts)]  # which experts are popular is arbitrary
    counts = np.zeros(experts, dtype=np.int64)
    step = 8192
    for start in range(0, tokens, step):
        n = min(step, tokens - start)
        # Gumbel top-k: k distinct experts drawn without replacement in proportion to the weights
        keys = logw[None, :] + rng.gumbel(size=(n, experts))
        picks = np.argpartition(-keys, k - 1, axis=1)[:, :k]
        counts += np.bincount(picks.ravel(), minlength=experts)
    return tuple(int(c) for c in counts)


def parse_routing(text: str | None, skew: float = 0.0) -> Routing:
    """`uniform`, `skew:S` or `histogram:FILE`; with no text, `--moe-skew` decides (0 = uniform)."""
    if not text:
        return Routing("skew", skew) if skew > 0 else Routing()
    kind, _, arg = text.partition(":")
    if kind == "uniform" and not arg:
        return Routing()
    if kind == "skew":
        try:
            s = float(arg)
        except ValueError:
            raise UserError(f"--routing {text!r}: write skew:S with S a number >= 0, e.g. skew:1.2") from None
        if not 0.0 <= s <= 4.0 or not math.isfinite(s):
            raise UserError(f"--routing {text!r}: the skew must be in [0, 4]")
        return Routing("skew", s)
    if kind == "histogram" and arg:
        return load_histogram(Path(arg))
    raise UserError(f"--routing {text!r}: use uniform, skew:S or histogram:FILE")


def histogram_from_doc(doc: Mapping[str, Any]) -> dict[int, list[int]]:
    """{layer: rows per expert} from {layer: [...]} or a measured.json run's checks.expert_rows."""
    raw: Any = doc
    if "runs" in doc:
        runs = [r for r in doc["runs"] if (r.get("checks") or {}).get("expert_rows")]
        if not runs:
            raise UserError("the measured file holds no expert_rows: measure with a newer `dsocr-trace validate`")
        raw = runs[0]["checks"]["expert_rows"]
    elif "expert_rows" in doc:
        raw = doc["expert_rows"]
    if not isinstance(raw, dict) or not raw:
        raise UserError("the routing histogram is empty: give {layer: [rows per expert, ...]} for the MoE layers")
    out: dict[int, list[int]] = {}
    for k, v in raw.items():
        if not (isinstance(v, list) and v and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0
                                                  for c in v)):
            raise UserError(f"routing histogram layer {k!r}: give a list of whole numbers >= 0 (rows per expert)")
        if not sum(v):
            raise UserError(f"routing histogram layer {k!r} routes no rows (all zero): give measured rows per expert")
        try:
            out[int(k)] = v
        except ValueError:
            raise UserError(f"routing histogram key {k!r} is not a layer number") from None
    return out


def load_histogram(path: Path) -> Routing:
    import json

    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read routing histogram {str(path)!r} ({exc}): pass a JSON file") from None
    if not isinstance(doc, dict):
        raise UserError(f"routing histogram {str(path)!r} must hold a JSON object")
    hist = histogram_from_doc(doc)
    return Routing("histogram", histogram=tuple(sorted((k, tuple(v)) for k, v in hist.items())), source=path.name)


def histogram_routing(hist: Mapping[int, Sequence[int]], source: str) -> Routing:
    return Routing("histogram", histogram=tuple(sorted((int(k), tuple(int(c) for c in v)) for k, v in hist.items())),
                   source=source)
