"""report.json: one plain dict, keys sorted, floats as computed; no timestamps (byte-identical reruns)."""

from __future__ import annotations

from typing import Any

import orjson

from dsocr_trace import __version__
from dsocr_trace.analyze import Analysis
from dsocr_trace.report.aggregate import (
    coverage,
    decode_breakdown,
    module_totals,
    module_type_totals,
    stage_totals,
)

SCHEMA_VERSION = "1.0"
STAGE_PREDICTION_KEYS = ("device_s", "host_s", "wall_s", "bound", "confidence", "confidence_note")


def tool_info() -> dict[str, str]:
    import torch
    import transformers

    return {"name": "dsocr-trace", "version": __version__, "torch": torch.__version__.split("+")[0],
            "transformers": transformers.__version__}


def build_report(a: Analysis, predictions: dict[str, Any] | None = None) -> dict[str, Any]:
    wl = a.workload.to_dict()
    prefill, decode = a.traces["prefill"], a.traces["decode"]
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": tool_info(),
        "model": {"id": a.model_id, "config_source": a.config_source, "architecture": a.architecture,
                  "build_notes": a.build_notes},
        "workload": wl,
        "params": a.params,
        "traces": {
            phase: {"tracer": tr.tracer, "nodes": len(tr.nodes), "batch": tr.meta.get("batch"),
                    "tokens": tr.meta.get("tokens"), "kv_len": tr.meta.get("kv_len"),
                    "sync_points": sum(1 for n in tr.nodes if n.sync)}
            for phase, tr in a.traces.items()
        },
        "stages": stage_totals(a.traces, a.costs),
        "decode_breakdown": decode_breakdown(decode, a.costs["decode"]),
        "modules": {"prefill": module_totals(prefill, a.costs["prefill"]),
                    "decode": module_totals(decode, a.costs["decode"])},
        "module_types": {"prefill": module_type_totals(prefill, a.costs["prefill"]),
                         "decode": module_type_totals(decode, a.costs["decode"])},
        "coverage": coverage(a.traces, a.costs),
        "options": {"routing": a.options.routing.label, "implementation": a.implementation},
        "units": {"flops": "FLOP (2 per multiply-add)", "bytes": "byte", "time": "second (keys ending _s)",
                  "memory": "byte"},
    }
    from dsocr_trace.request import memory_needs_of

    # weights (bf16), KV cache and activations do not depend on the GPU: known without a device
    report["memory"] = memory_needs_of(a)
    if predictions is not None:
        report["predictions"] = predictions
        # each stage entry holds its counts and its predicted times together (predictions.stages keeps them too,
        # beside the phase and request figures)
        for name, st in report["stages"].items():
            p = (predictions.get("stages") or {}).get(name) or {}
            st.update({k: p[k] for k in STAGE_PREDICTION_KEYS if k in p})
    return report


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
