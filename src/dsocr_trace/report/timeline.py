"""Predicted kernel timeline as a Chrome trace (open in Perfetto or chrome://tracing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson


def timeline_events(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Two tracks per phase: the GPU stream (kernels) and the host (issue), microseconds, phases back to back."""
    pred = report["predictions"]
    events: list[dict[str, Any]] = []
    offset = 0.0
    for pid, phase in enumerate(("prefill", "decode")):
        rows = pred["nodes"].get(phase, [])
        events.append({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": f"{phase} (predicted)"}})
        events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": 0, "args": {"name": "GPU stream"}})
        events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": 1, "args": {"name": "host"}})
        end = 0.0
        for r in rows:
            if r["device_s"] > 0:
                events.append({"ph": "X", "pid": pid, "tid": 0, "name": r["op"], "cat": r["kind"],
                               "ts": (offset + r["start_s"]) * 1e6, "dur": r["device_s"] * 1e6,
                               "args": {"module": r["module_path"], "stage": r["stage"], "bound": r["bound"],
                                        "efficiency": r["efficiency"], "flops": r["tc_flops"] + r["cc_flops"],
                                        "bytes": r["bytes"]}})
            if r["host_s"] > 0:
                events.append({"ph": "X", "pid": pid, "tid": 1, "name": r["op"], "cat": "host",
                               "ts": (offset + r["issue_s"] - r["host_s"]) * 1e6, "dur": r["host_s"] * 1e6,
                               "args": {"module": r["module_path"]}})
            end = max(end, r["end_s"], r["issue_s"])
        offset += end
    return events


def write_timeline(report: dict[str, Any], path: Path) -> None:
    path.write_bytes(orjson.dumps({"traceEvents": timeline_events(report), "displayTimeUnit": "ms"}))
