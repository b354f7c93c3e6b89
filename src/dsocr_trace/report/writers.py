"""Run-folder writers beside report.json: report.yaml and modules.csv here, nodes.csv (`node_rows`), summary.md
(`summary`) and docs/*.md (`layer_docs`); `write_all` writes them all.

Everything reads the plain report dict (as `build_report` returns it, or as loaded back from report.json)
and, optionally, a list of per-node dicts from the trace (`node_rows.trace_nodes`). `report["predictions"]` is
optional: prediction columns and sections appear only when it is present, and every prediction field is read
with `.get` so a missing field leaves a blank cell rather than an error.

Conventions: CSV cells hold plain numbers (FLOPs, bytes, milliseconds) with the unit in the column header;
Markdown shows human-readable SI numbers and memory in GiB. report.yaml carries the whole report except the
per-node list of the predictions (`predictions.nodes`), which is replaced by `predictions.nodes_omitted` (row
counts, see nodes.csv): those lists run to thousands of rows and belong in a spreadsheet.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from dsocr_trace.report.layer_docs import write_layer_docs
from dsocr_trace.report.markdown import predictions_of
from dsocr_trace.report.node_rows import write_nodes_csv
from dsocr_trace.report.summary import write_summary_md
from dsocr_trace.report.units import intensity, ms_value, num
from dsocr_trace.trace.ir import PHASES

YAML_NODES_NOTE = "predictions.nodes is omitted from report.yaml: one row per node is in nodes.csv"


def _plain(obj: Any) -> Any:
    """JSON-like plain data: tuples -> lists, numpy scalars -> Python numbers, keys -> str."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, bool | int | float | str) or obj is None:
        return obj
    item = getattr(obj, "item", None)  # numpy / torch scalars
    if callable(item):
        return item()
    return str(obj)



# -- YAML ------------------------------------------------------------------------------------------------------


def yaml_view(report: Mapping[str, Any]) -> dict[str, Any]:
    """The structure report.yaml holds: the report as plain data, predictions.nodes replaced by a count."""
    data: dict[str, Any] = _plain(report)
    p = data.get("predictions")
    if isinstance(p, dict) and "nodes" in p:
        nodes = p.pop("nodes")
        counts = {ph: len(v) for ph, v in nodes.items()} if isinstance(nodes, dict) else {"all": len(nodes or [])}
        p["nodes_omitted"] = {"rows": counts, "see": "nodes.csv", "note": YAML_NODES_NOTE}
    return data


def write_yaml(report: Mapping[str, Any], path: str | Path) -> None:
    """The whole report as YAML (keys sorted, block style); predictions.nodes omitted (see yaml_view)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: ~10x faster
    text = yaml.dump(yaml_view(report), Dumper=dumper, sort_keys=True, default_flow_style=False, allow_unicode=True,
                     width=120)
    Path(path).write_text(text, encoding="utf-8")


# -- module rows -----------------------------------------------------------------------------------------------

MODULE_COLUMNS = ["phase", "module_path", "module_type", "depth", "calls", "ops", "kernels", "tc_flops [FLOP]",
                  "cc_flops [FLOP]", "flops [FLOP]", "bytes_read [B]", "bytes_written [B]", "bytes [B]",
                  "intensity [FLOP/B]"]
MODULE_PRED_COLUMNS = ["device_time [ms]", "host_time [ms]", "predicted_kernels"]


def module_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (phase, module path): report["modules"] (inclusive totals) joined with predictions.modules."""
    pm = predictions_of(report).get("modules") or {}
    has_pred = bool(pm)
    out: list[dict[str, Any]] = []
    mods = report.get("modules") or {}
    for phase in list(PHASES) + [k for k in mods if k not in PHASES]:
        analytic = mods.get(phase) or {}
        predicted = pm.get(phase) or {} if isinstance(pm, dict) else {}
        paths = list(analytic) + [p for p in predicted if p not in analytic]
        for path in paths:
            m = analytic.get(path) or {}
            flops = num(m.get("tc_flops")) + num(m.get("cc_flops"))
            nbytes = num(m.get("bytes_read")) + num(m.get("bytes_written"))
            row: dict[str, Any] = {
                "phase": phase, "module_path": path, "module_type": m.get("module_type", ""),
                "depth": 0 if path == "" else path.count(".") + 1, "calls": m.get("calls", ""),
                "ops": m.get("ops", ""), "kernels": m.get("kernels", ""),
                "tc_flops [FLOP]": num(m.get("tc_flops")), "cc_flops [FLOP]": num(m.get("cc_flops")),
                "flops [FLOP]": flops, "bytes_read [B]": num(m.get("bytes_read")),
                "bytes_written [B]": num(m.get("bytes_written")), "bytes [B]": nbytes,
                "intensity [FLOP/B]": intensity(flops, nbytes),
            }
            if has_pred:
                p = predicted.get(path) or {}
                row["device_time [ms]"] = ms_value(p.get("device_s"))
                row["host_time [ms]"] = ms_value(p.get("host_s"))
                row["predicted_kernels"] = p.get("kernels", "")
            out.append(row)
    return out


def write_modules_csv(report: Mapping[str, Any], path: str | Path) -> int:
    """One row per module and phase (inclusive totals; prediction columns when present); returns the row count."""
    rows = module_rows(report)
    cols = MODULE_COLUMNS + (MODULE_PRED_COLUMNS if predictions_of(report).get("modules") else [])
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return len(rows)


# -- everything ------------------------------------------------------------------------------------------------


def write_all(report: Mapping[str, Any], folder: str | Path,
              nodes: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Path]:
    """report.yaml, nodes.csv, modules.csv, summary.md and docs/*.md into `folder` (report.json is not written
    here). Returns {name: path}."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    out = {"report.yaml": root / "report.yaml", "nodes.csv": root / "nodes.csv", "modules.csv": root / "modules.csv",
           "summary.md": root / "summary.md"}
    write_yaml(report, out["report.yaml"])
    write_nodes_csv(report, out["nodes.csv"], nodes)
    write_modules_csv(report, out["modules.csv"])
    write_summary_md(report, out["summary.md"])
    for p in write_layer_docs(report, root, nodes):
        out[f"docs/{p.name}"] = p
    return out
