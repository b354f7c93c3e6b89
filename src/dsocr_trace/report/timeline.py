"""Predicted kernel timeline as a Chrome trace (open in Perfetto or chrome://tracing).

One process per phase, phases back to back. Tracks (threads) of each:
* `GPU stream`: one slice per kernel (plan item with device time);
* `host`: one slice per Python-level call's host time;
* `stages (GPU)`: the span of each run of consecutive kernels of one report stage;
* `modules (GPU)` and `modules (host)`: nested slices, one per run of consecutive work inside a module, its
  parents around it (a module's span runs from its first kernel's start to its last kernel's end).

Range slices are built with a stack over the issue order, so they nest by construction; their times are whole
nanoseconds (ts and dur in microseconds with three decimals), so a child never pokes out of its parent by a
rounding error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from dsocr_trace.trace.ir import self_and_ancestors

GPU_TID, HOST_TID, STAGE_TID, MODULE_GPU_TID, MODULE_HOST_TID = 0, 1, 2, 3, 4
TRACKS = {GPU_TID: "GPU stream", HOST_TID: "host", STAGE_TID: "stages (GPU)", MODULE_GPU_TID: "modules (GPU)",
          MODULE_HOST_TID: "modules (host)"}


def _chain(module_path: str) -> list[str]:
    """Ancestors from the outermost module down to the path itself (the root "" left out: it is the phase)."""
    return [p for p in self_and_ancestors(module_path) if p][::-1]


def nested_ranges(spans: Sequence[tuple[int, int, Sequence[str]]]) -> list[tuple[int, int, int, str]]:
    """(begin_ns, end_ns, chain) per unit of work, in issue order -> (begin_ns, end_ns, depth, key) ranges.

    A stack holds the open chain; a unit whose chain shares a prefix with it keeps that prefix open, closes the
    rest and opens its own remainder. Each open range ends at the latest end of the work inside it."""
    out: list[tuple[int, int, int, str]] = []
    stack: list[list[Any]] = []  # [key, begin, end]

    def close(keep: int) -> None:
        while len(stack) > keep:
            key, b, e = stack.pop()
            out.append((b, e, len(stack), key))

    for begin, end, chain in spans:
        common = 0
        while common < min(len(stack), len(chain)) and stack[common][0] == chain[common]:
            common += 1
        close(common)
        for key in chain[common:]:
            stack.append([key, begin, end])
        for s in stack:
            s[2] = max(s[2], end)
    close(0)
    return sorted(out, key=lambda r: (r[0], r[2]))


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


def _range_events(pid: int, tid: int, ranges: Sequence[tuple[int, int, int, str]], cat: str,
                  name: Callable[[str], str], args: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"ph": "X", "pid": pid, "tid": tid, "name": name(key), "cat": cat, "ts": b / 1e3, "dur": (e - b) / 1e3,
             "args": args(key) | {"depth": depth}} for b, e, depth, key in ranges]


def _short(path: str) -> str:
    """The module's own name; a numbered layer keeps its list name ('layers.3')."""
    parts = path.split(".")
    return ".".join(parts[-2:]) if len(parts) > 1 and parts[-1].isdigit() else parts[-1]


def timeline_events(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Kernels, host calls, stage ranges and nested module ranges per phase, in microseconds."""
    pred = report["predictions"]
    events: list[dict[str, Any]] = []
    offset = 0.0
    for pid, phase in enumerate(("prefill", "decode")):
        rows = pred["nodes"].get(phase, [])
        types = {p: m.get("module_type", "") for p, m in ((report.get("modules") or {}).get(phase) or {}).items()}
        events.append({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": f"{phase} (predicted)"}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": pid, "args": {"sort_index": pid}})
        for tid, track in TRACKS.items():
            events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": track}})
            events.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid, "args": {"sort_index": tid}})
        end = 0.0
        gpu_spans: list[tuple[int, int, Sequence[str]]] = []
        stage_spans: list[tuple[int, int, Sequence[str]]] = []
        host_spans: list[tuple[int, int, Sequence[str]]] = []
        for r in rows:
            if r["device_s"] > 0:
                events.append({"ph": "X", "pid": pid, "tid": GPU_TID, "name": r["op"], "cat": r["kind"],
                               "ts": (offset + r["start_s"]) * 1e6, "dur": r["device_s"] * 1e6,
                               "args": {"module": r["module_path"], "stage": r["stage"], "bound": r["bound"],
                                        "efficiency": r["efficiency"], "flops": r["tc_flops"] + r["cc_flops"],
                                        "bytes": r["bytes"]}})
                b, e = _ns(offset + r["start_s"]), _ns(offset + r["end_s"])
                gpu_spans.append((b, e, _chain(r["module_path"])))
                stage_spans.append((b, e, [r["stage"]]))
            if r["host_s"] > 0:
                events.append({"ph": "X", "pid": pid, "tid": HOST_TID, "name": r["op"], "cat": "host",
                               "ts": (offset + r["issue_s"] - r["host_s"]) * 1e6, "dur": r["host_s"] * 1e6,
                               "args": {"module": r["module_path"]}})
                host_spans.append((_ns(offset + r["issue_s"] - r["host_s"]), _ns(offset + r["issue_s"]),
                                   _chain(r["module_path"])))
            end = max(end, r["end_s"], r["issue_s"])

        def margs(path: str, types: Mapping[str, str] = types) -> dict[str, Any]:
            return {"module": path, "type": types.get(path, "")}

        events += _range_events(pid, STAGE_TID, nested_ranges(stage_spans), "stage", lambda k: k,
                                lambda k: {"stage": k})
        events += _range_events(pid, MODULE_GPU_TID, nested_ranges(gpu_spans), "module", _short, margs)
        events += _range_events(pid, MODULE_HOST_TID, nested_ranges(host_spans), "module", _short, margs)
        offset += end
    return events


def write_timeline(report: Mapping[str, Any], path: Path) -> None:
    path.write_bytes(orjson.dumps({"traceEvents": timeline_events(report), "displayTimeUnit": "ms"}))
