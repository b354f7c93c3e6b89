"""How far to trust a priced point: inside what the committed GPU measurements cover, or beyond it.

The envelope (validated.json, built by scripts/build_envelope.py from benchmarks/results) holds, per calibrated
GPU and phase, the executions measured and the batch and KV ranges. A point is

* `validated`: calibrated GPU, measured execution, batch and KV inside the measured range;
* `modelled`: calibrated GPU, but an execution never measured there (fused: an ideal engine);
* `extrapolated`: calibrated GPU and measured execution, batch or KV outside the measured range, or a phase
  never measured there;
* `transferred` / `datasheet`: the GPU has no calibration of its own (the profile's kind).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

LEVELS = ("validated", "modelled", "extrapolated", "transferred", "datasheet")


@cache
def envelope() -> dict[str, Any]:
    return json.loads(resources.files("dsocr_trace.hardware").joinpath("validated.json").read_text())["gpus"]


@cache
def measured_executions() -> frozenset[str]:
    """Executions measured on some GPU in some phase (fused, an ideal engine, never is)."""
    return frozenset(e for phases in envelope().values() for ph in phases.values() for e in ph["executions"])


def phase_confidence(device: str, profile_kind: str, phase: str, execution: str, batch: int,
                     kv_len: int | None = None) -> tuple[str, str]:
    """(level, why) for one phase of a point on catalog GPU `device` priced by a profile of `profile_kind`."""
    if profile_kind != "calibrated":
        return profile_kind, f"{device} has no calibration of its own ({profile_kind} profile)"
    e = envelope().get(device, {}).get(phase)
    if e is None:
        return "extrapolated", f"no {phase} measured on {device}"
    if execution not in e["executions"]:
        return "modelled", f"{execution} {phase} never measured on {device} (measured: {', '.join(e['executions'])})"
    lo, hi = e["batch"]
    if not lo <= batch <= hi:
        return "extrapolated", f"{phase} batch {batch} outside the measured {lo}-{hi} on {device}"
    if kv_len is not None and e.get("kv_len") and not e["kv_len"][0] <= kv_len <= e["kv_len"][1]:
        return "extrapolated", f"KV length {kv_len} outside the measured {e['kv_len'][0]}-{e['kv_len'][1]} on {device}"
    return "validated", f"{phase} {execution} batch {batch} inside the measured range on {device}"


def point_confidence(device: str, profile_kind: str, execution: str, batch: int, prefill_tokens: int,
                     output_tokens: int) -> tuple[str, str]:
    """The weaker of a request's prefill and decode (KV up to prefill + output tokens): (level, why)."""
    parts = [phase_confidence(device, profile_kind, "prefill", execution, batch),
             phase_confidence(device, profile_kind, "decode", execution, batch, prefill_tokens + output_tokens)]
    worst = max(parts, key=lambda p: LEVELS.index(p[0]))
    return worst[0], "; ".join(dict.fromkeys(why for lvl, why in parts if lvl == worst[0]))
