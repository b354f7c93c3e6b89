"""Whether a sweep or plan point fits in GPU memory: `memory.memory_plan` for its (mode, batch, output tokens,
device, weight dtype), the same arithmetic as a report's `predictions.memory` section.

The activation peak comes from the prefill trace of the point's (mode, batch), which the sweep has traced
already (traces are cached per process), so checking every point costs a liveness pass per shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dsocr_trace.analyze import load_model, run_analysis
from dsocr_trace.errors import UserError
from dsocr_trace.hardware.spec import DeviceSpec
from dsocr_trace.memory import kv_per_token_of, logits_bytes_of, memory_plan
from dsocr_trace.workload import make_workload

_TRACES: dict[tuple[Any, ...], tuple[Any, int]] = {}  # (model, mode, crops, batch) -> (prefill trace, logits B)
_PLANS: dict[tuple[Any, ...], dict[str, Any]] = {}  # + (context tokens, dtype, device bytes) -> memory_plan


def split_label(label: str) -> tuple[str, str | None]:
    """'gundam:2x3' -> ('gundam', '2x3'); 'base' -> ('base', None)."""
    mode, _, crops = label.partition(":")
    return mode.strip(), (crops.strip() or None)


def point_memory(model: str, label: str, batch: int, prefill_tokens: int, output_tokens: int, spec: DeviceSpec,
                 dtype: str = "bf16") -> dict[str, Any]:
    """memory_plan of one point: weights + KV cache for prefill + output tokens + activation peak + reserve."""
    mode, crops = split_label(label)
    key = (model, mode, crops, batch)
    full = (*key, prefill_tokens + output_tokens, dtype, spec.capacity_bytes)
    done = _PLANS.get(full)
    if done is not None:
        return done
    hit = _TRACES.get(key)
    if hit is None:
        a = run_analysis(model, make_workload(mode, crops=crops, batch=batch, output_tokens=1))
        if a.workload.prefill_tokens != prefill_tokens:
            raise UserError(f"{label} B{batch}: the memory check traced {a.workload.prefill_tokens} prefill tokens, "
                            f"the priced point {prefill_tokens}: report this as a bug")
        trace = a.traces["prefill"]
        hit = (trace, logits_bytes_of(trace))
        _TRACES[key] = hit
    trace, logits = hit
    lm = load_model(model)
    done = memory_plan(trace, lm.params, batch, prefill_tokens + output_tokens, dtype,
                       kv_per_token_of(lm.text_config), spec.capacity_bytes, logits)
    _PLANS[full] = done
    return done


def annotate(rows: Sequence[Mapping[str, Any]], model: str, specs: Mapping[str, DeviceSpec],
             dtype: str = "bf16") -> list[dict[str, Any]]:
    """Each row with `weight_dtype`, `memory_total_bytes`, `device_memory_bytes` and `fits` added; `specs` maps
    a row's `device` to the spec it was priced on."""
    out = []
    for r in rows:
        spec = specs[r["device"]]
        mem = point_memory(model, r["mode"], int(r["batch"]), int(r["prefill_tokens"]), int(r["output_tokens"]),
                           spec, dtype)
        out.append(dict(r) | {"weight_dtype": dtype, "memory_total_bytes": int(mem["total_bytes"]),
                              "device_memory_bytes": int(spec.capacity_bytes), "fits": bool(mem["fits"])})
    return out
