"""Parquet beside CSV: the run folder's node and module tables and sweep/plan rows, with pandas-friendly columns.

Column names are snake_case with the unit in the name where there is one (`ttft_s`, `device_time_ms`,
`intensity_flop_per_byte`; FLOP and byte counts are `*_flops` and `bytes*`); tensor shapes are lists of
lists of ints; a missing value is null, never an empty string. `pandas.read_parquet(path)` gives typed
columns directly. Files are written with fixed options (no timestamps), so the same rows give the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dsocr_trace.report.node_rows import NODE_COLUMNS, NODE_PRED_COLUMNS, merged_nodes, prediction_nodes
from dsocr_trace.report.writers import module_rows

# CSV header "name [unit]" -> parquet column suffix
_UNIT_SUFFIX = {"FLOP": "", "B": "", "FLOP/B": "_flop_per_byte", "ms": "_ms", "s": "_s"}
_HEADER = re.compile(r"^(?P<name>[a-z0-9_]+) \[(?P<unit>[^\]]+)\]$")


def column_name(header: str) -> str:
    """'device_time [ms]' -> 'device_time_ms', 'tc_flops [FLOP]' -> 'tc_flops', 'start [ms]' -> 'start_ms'."""
    m = _HEADER.match(header)
    if m is None:
        return header
    return m["name"] + _UNIT_SUFFIX.get(m["unit"], "_" + re.sub(r"[^a-z0-9]+", "_", m["unit"].lower()).strip("_"))


# text columns, where "" is a value (the root module's path) rather than a missing number
_TEXT = frozenset({"phase", "op", "module_path", "module_type", "stage", "kind", "bound", "source"})


def _blank_to_none(v: Any, name: str) -> Any:
    return None if v == "" and name not in _TEXT else v


def _shapes(v: Any) -> list[list[int]] | None:
    if v is None or isinstance(v, str):
        return None
    return [[int(d) for d in s] if isinstance(s, list | tuple) else [int(s)] for s in v]


def node_records(report: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """nodes.csv's rows with parquet names; input/output shapes as lists (null where only a fused plan item
    exists and no traced node matches it)."""
    columns = NODE_COLUMNS + (NODE_PRED_COLUMNS if prediction_nodes(report) else [])
    out = []
    for n in merged_nodes(report, nodes):
        rec: dict[str, Any] = {}
        for header, _, fn in columns:
            name = column_name(header)
            if name in ("input_shapes", "output_shapes"):
                rec[name] = _shapes(n.get(name))
            else:
                rec[name] = _blank_to_none(fn(n), name)
        out.append(rec)
    return out


def module_records(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{column_name(k): _blank_to_none(v, column_name(k)) for k, v in r.items()} for r in module_rows(report)]


def sweep_records(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Sweep or plan rows as every format writes them (CSV, JSON and Parquet share these columns,
    specs/sweep-schema.json): the rows' own snake_case names with their unit suffix (`ttft_s`, `pages_per_s`,
    `usd_per_page`), plus the Gundam grid of the mode label as `crops_w`, `crops_h` (null outside Gundam)."""
    out = []
    for r in rows:
        rec: dict[str, Any] = {}
        for k, v in r.items():
            rec[k] = v
            if k == "mode":
                _, _, crops = str(v).partition(":")
                w, _, h = crops.partition("x")
                rec["crops_w"] = int(w) if w else None
                rec["crops_h"] = int(h) if h else None
        out.append(rec)
    return out


def _types() -> dict[str, Any]:
    """Column types that inference cannot see when every value is null (a sweep without Gundam points, nodes
    without shapes)."""
    import pyarrow as pa

    shapes = pa.list_(pa.list_(pa.int64()))
    return {"crops_w": pa.int64(), "crops_h": pa.int64(), "input_shapes": shapes, "output_shapes": shapes,
            "calls": pa.int64(), "ops": pa.int64(), "kernels": pa.int64(), "predicted_kernels": pa.int64(),
            "device_time_ms": pa.float64(), "host_time_ms": pa.float64(), "start_ms": pa.float64(),
            "end_ms": pa.float64(), "efficiency": pa.float64()}


def write_parquet(records: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """Records (dicts with the same keys) as one Parquet table; column order as first seen."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names: list[str] = []
    for r in records:
        for k in r:
            if k not in names:
                names.append(k)
    types = _types()
    table = pa.table({k: pa.array([r.get(k) for r in records], type=types.get(k)) for k in names})
    pq.write_table(table, str(path), compression="zstd", write_statistics=False, store_schema=False)


def write_run_tables(report: Mapping[str, Any], folder: str | Path,
                     nodes: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Path]:
    """nodes.parquet and modules.parquet beside nodes.csv and modules.csv."""
    root = Path(folder)
    out = {"nodes.parquet": root / "nodes.parquet", "modules.parquet": root / "modules.parquet"}
    write_parquet(node_records(report, nodes), out["nodes.parquet"])
    write_parquet(module_records(report), out["modules.parquet"])
    return out
