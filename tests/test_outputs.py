"""Run-folder outputs beside report.json: Parquet tables (pandas-friendly names, round trip), GraphML with
labels and predicted times, the timeline's stage and module ranges (properly nested), sweep Parquet."""

from __future__ import annotations

import csv
import itertools
import json
import re
from pathlib import Path
from typing import Any

import networkx as nx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dsocr_trace.commands.analyze import analyze_command
from dsocr_trace.models.source import DEFAULT_MODEL
from dsocr_trace.report.tables import column_name, sweep_records, write_parquet
from dsocr_trace.report.timeline import MODULE_GPU_TID, MODULE_HOST_TID, STAGE_TID, nested_ranges

SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    d = tmp_path_factory.mktemp("outputs")
    report = analyze_command(model=DEFAULT_MODEL, mode="base", crops=None, image_size=None, prompt_tokens=12,
                             output_tokens=50, batch=1, kv_len=None, tracer="dispatch", out=d / "run",
                             graphml=d / "g.graphml", force=False, device="h100", timeline=d / "t.json")
    return d, report


# -- parquet ---------------------------------------------------------------------------------------------------


def test_column_names() -> None:
    assert column_name("device_time [ms]") == "device_time_ms"
    assert column_name("tc_flops [FLOP]") == "tc_flops"
    assert column_name("intensity [FLOP/B]") == "intensity_flop_per_byte"
    assert column_name("bytes [B]") == "bytes"
    assert column_name("phase") == "phase"


def test_nodes_parquet_round_trip(run: tuple[Path, dict[str, Any]]) -> None:
    d, _ = run
    table = pq.read_table(d / "run" / "nodes.parquet")
    assert all(SNAKE.match(c) for c in table.column_names), table.column_names
    for c in ("phase", "id", "op", "module_path", "tc_flops", "bytes", "intensity_flop_per_byte", "input_shapes",
              "output_shapes", "device_time_ms", "host_time_ms", "start_ms", "bound"):
        assert c in table.column_names
    shapes = table.schema.field("input_shapes").type
    assert pa.types.is_list(shapes) and pa.types.is_list(shapes.value_type)
    assert shapes.value_type.value_type == pa.int64()
    assert str(table.schema.field("device_time_ms").type) == "double"
    rows = table.to_pylist()
    with (d / "run" / "nodes.csv").open() as f:
        csv_rows = list(csv.DictReader(f))
    assert len(rows) == len(csv_rows) > 1000
    for r, c in zip(rows, csv_rows, strict=True):
        assert (r["phase"], str(r["id"]), r["op"]) == (c["phase"], c["id"], c["op"])
        assert r["device_time_ms"] == pytest.approx(float(c["device_time [ms]"]))
        assert r["tc_flops"] == pytest.approx(float(c["tc_flops [FLOP]"]))
    # shapes as lists: the CSV's "1x10x286x128; 128" text is the same shapes
    shaped = next(r for r in rows if r["input_shapes"] and r["op"].startswith("aten.mm"))
    c = next(c for c in csv_rows if (c["phase"], c["id"]) == (shaped["phase"], str(shaped["id"])))
    assert "; ".join("x".join(map(str, s)) for s in shaped["input_shapes"]) == c["input_shapes"]


def test_modules_parquet_round_trip(run: tuple[Path, dict[str, Any]]) -> None:
    d, report = run
    table = pq.read_table(d / "run" / "modules.parquet")
    assert all(SNAKE.match(c) for c in table.column_names)
    rows = table.to_pylist()
    root = next(r for r in rows if r["phase"] == "prefill" and r["module_path"] == "")
    assert root["device_time_ms"] == pytest.approx(report["predictions"]["modules"]["prefill"][""]["device_s"] * 1e3)
    assert root["flops"] == pytest.approx(report["modules"]["prefill"][""]["flops"])


def test_sweep_parquet_round_trip(tmp_path: Path) -> None:
    rows = [{"mode": m, "device": "h100", "execution": "fused", "batch": b, "output_tokens": 100,
             "ttft_s": 0.01 * b, "tpot_mean_s": 0.002, "e2e_s": 0.2 + 0.01 * b, "pages_per_s": b / 0.2,
             "pages_per_gpu_day": b / 0.2 * 86400, "fits": b < 8, "profile": "spec-default", "routing": "uniform",
             "memory_total_bytes": 8 * 2**30 * b} for m in ("base", "gundam:2x3") for b in (1, 8)]
    path = tmp_path / "s.parquet"
    write_parquet(sweep_records(rows), path)
    back = pq.read_table(path).to_pylist()
    assert all(SNAKE.match(c) for c in back[0])
    assert [r["ttft_s"] for r in back] == pytest.approx([r["ttft_s"] for r in rows])
    assert [(r["mode"], r["crops_w"], r["crops_h"]) for r in back[::2]] == [
        ("base", None, None), ("gundam:2x3", 2, 3)]
    assert [r["fits"] for r in back] == [True, False, True, False]
    assert "pages_per_s" in back[0] and "ttft_ms" not in back[0]  # one unit per quantity in every format
    again = tmp_path / "again.parquet"
    write_parquet(sweep_records(rows), again)
    assert again.read_bytes() == path.read_bytes()
    # a sweep of non-Gundam modes only: the crop columns still have an integer type
    write_parquet(sweep_records(rows[:2]), again)
    assert str(pq.read_table(again).schema.field("crops_w").type) == "int64"


def test_sweep_formats_share_one_schema(tmp_path: Path) -> None:
    """CSV, JSON and Parquet of one sweep: the same columns in the same order, the same values."""
    import csv

    from dsocr_trace.sweep import write_sweep

    rows = [{"mode": m, "device": "h100", "execution": "eager", "batch": b, "output_tokens": 100, "ttft_s": 0.01 * b,
             "usd_per_page": 0.001 * b, "fits": b < 8} for m in ("base", "gundam:2x3") for b in (1, 8)]
    write_sweep(rows, tmp_path / "s.json", ".json")
    write_sweep(rows, tmp_path / "s.csv", ".csv")
    write_parquet(sweep_records(rows), tmp_path / "s.parquet")
    js = json.loads((tmp_path / "s.json").read_text())
    with (tmp_path / "s.csv").open() as f:
        header, *body = list(csv.reader(f))
    pa = pq.read_table(tmp_path / "s.parquet")
    assert header == pa.column_names
    assert sorted(header) == sorted(js[0])
    assert all(SNAKE.match(c) for c in header) and "ttft_s" in header and "crops_w" in header
    for got_csv, got_js, got_pa in zip(body, js, pa.to_pylist(), strict=True):
        assert float(got_csv[header.index("ttft_s")]) == got_js["ttft_s"] == got_pa["ttft_s"]
        assert got_csv[header.index("crops_w")] == ("" if got_js["crops_w"] is None else str(got_js["crops_w"]))


# -- GraphML -----------------------------------------------------------------------------------------------------


def test_graphml_labels_and_predicted_times(run: tuple[Path, dict[str, Any]]) -> None:
    d, report = run
    g = nx.read_graphml(d / "g.graphml")
    assert g.graph["device"] == "h100" and g.graph["execution"] == "eager"
    for n, a in g.nodes(data=True):
        assert isinstance(a.get("label"), str) and a["label"], n
    op = g.nodes["prefill/op:0"]
    assert " @ " in op["label"] and op["label"].split(" @ ")[0] in op["op"]
    mod = g.nodes["prefill/mod:model.vision_tower"]
    assert mod["label"].startswith("model.vision_tower (") and mod["label"].endswith(")")
    pred = report["predictions"]
    for phase in ("prefill", "decode"):
        ops = [a for n, a in g.nodes(data=True) if n.startswith(f"{phase}/op:")]
        want = sum(r["device_s"] for r in pred["nodes"][phase])
        assert sum(a["predicted_device_s"] for a in ops) == pytest.approx(want)
        assert sum(a["predicted_host_s"] for a in ops) == pytest.approx(sum(r["host_s"] for r in pred["nodes"][phase]))
        assert sum(1 for a in ops if a["plan_item"]) == len(pred["nodes"][phase])
        root = g.nodes[f"{phase}/mod:"]
        assert root["predicted_device_s"] == pytest.approx(pred["modules"][phase][""]["device_s"])
    mm = next(a for a in g.nodes.values() if a.get("op", "").startswith("aten.mm") and a["predicted_device_s"] > 0)
    assert mm["bound"] in ("compute", "memory", "launch")


def test_graphml_without_device_has_labels(tmp_path: Path, base_analysis: Any) -> None:
    from dsocr_trace.graph import build_graph

    tr = base_analysis.traces["decode"]
    g = build_graph(tr, base_analysis.costs["decode"].eager, base_analysis.costs["decode"].fused)
    assert all(a.get("label") for _, a in g.nodes(data=True))
    assert not any("predicted_device_s" in a for _, a in g.nodes(data=True))


# -- timeline ----------------------------------------------------------------------------------------------------


def test_nested_ranges_stack() -> None:
    spans = [(0, 10, ["a", "a.b"]), (10, 20, ["a", "a.b"]), (20, 30, ["a", "a.c"]), (30, 35, ["d"]),
             (35, 40, ["a", "a.b"])]
    assert nested_ranges(spans) == [(0, 30, 0, "a"), (0, 20, 1, "a.b"), (20, 30, 1, "a.c"), (30, 35, 0, "d"),
                                    (35, 40, 0, "a"), (35, 40, 1, "a.b")]


def _ns(e: dict[str, Any]) -> tuple[int, int]:
    b = round(e["ts"] * 1000)
    return b, b + round(e["dur"] * 1000)


def _check_nesting(slices: list[dict[str, Any]]) -> None:
    """Chrome nests slices on one track by time: each must lie inside the open one or after it."""
    stack: list[tuple[int, int, dict[str, Any]]] = []
    for e in sorted(slices, key=lambda e: (_ns(e)[0], -_ns(e)[1])):
        b, end = _ns(e)
        while stack and stack[-1][1] <= b:
            stack.pop()
        if stack:
            pb, pe, parent = stack[-1]
            assert pb <= b and end <= pe, f"{e['name']} [{b}, {end}] crosses {parent['name']} [{pb}, {pe}]"
            if "module" in e["args"] and e["cat"] == "module":
                assert e["args"]["module"].startswith(parent["args"]["module"] + ".")
        assert e["args"]["depth"] == len(stack)
        stack.append((b, end, e))


def test_timeline_module_and_stage_ranges(run: tuple[Path, dict[str, Any]]) -> None:
    d, _ = run
    ev = json.loads((d / "t.json").read_text())["traceEvents"]
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in ev if e.get("name") == "thread_name"}
    assert names[(0, STAGE_TID)] == "stages (GPU)" and names[(0, MODULE_GPU_TID)] == "modules (GPU)"
    for pid, tid in itertools.product((0, 1), (STAGE_TID, MODULE_GPU_TID, MODULE_HOST_TID)):
        slices = [e for e in ev if e.get("ph") == "X" and e["pid"] == pid and e["tid"] == tid]
        assert slices, (pid, tid)
        _check_nesting(slices)
    prefill_stages = {e["name"] for e in ev if e.get("ph") == "X" and e["pid"] == 0 and e["tid"] == STAGE_TID}
    assert {"vision.sam", "vision.clip", "projector", "decoder.prefill"} <= prefill_stages
    mods = [e for e in ev if e.get("ph") == "X" and e["pid"] == 0 and e["tid"] == MODULE_GPU_TID]
    sam = [e for e in mods if e["args"]["module"] == "model.vision_tower.sam_encoder"]
    assert sam and sam[0]["args"]["type"] and sam[0]["args"]["depth"] == 2
    # every kernel of the GPU track lies inside a range of its own stage
    stages = [(e["name"], *_ns(e)) for e in ev if e.get("ph") == "X" and e["pid"] == 0 and e["tid"] == STAGE_TID]
    for k in (e for e in ev if e.get("ph") == "X" and e["pid"] == 0 and e["tid"] == 0):
        b = round(k["ts"] * 1000)
        assert any(s == k["args"]["stage"] and sb - 1 <= b <= se for s, sb, se in stages), k
    # the outermost module ranges span the kernels inside modules (top-level ops belong to the phase itself)
    top = [e for e in mods if e["args"]["depth"] == 0]
    kernels = [e for e in ev if e.get("ph") == "X" and e["pid"] == 0 and e["tid"] == 0 and e["args"]["module"]]
    first = min(round(k["ts"] * 1000) for k in kernels)
    last = max(round((k["ts"] + k["dur"]) * 1000) for k in kernels)
    assert min(_ns(e)[0] for e in top) == pytest.approx(first, abs=2)
    assert max(_ns(e)[1] for e in top) == pytest.approx(last, abs=2)


def test_a_target_that_appears_during_the_run_is_never_replaced(tmp_path: Path) -> None:
    """Someone creates the folder or file between the up-front check and the commit: refused, theirs kept."""
    from dsocr_trace.errors import UserError
    from dsocr_trace.report.output import STAGING_PREFIX, Outputs

    for is_dir in (True, False):
        target = tmp_path / ("r" if is_dir else "r.json")
        outs = Outputs(force=False)
        (outs.folder if is_dir else outs.file)(target)
        with pytest.raises(UserError, match="appeared while this run was working"):
            with outs.transaction() as where:
                staged = where(target)
                (staged / "report.json").write_text("{}") if is_dir else staged.write_text("{}")
                if is_dir:
                    target.mkdir()
                    (target / "keep.txt").write_text("precious")
                else:
                    target.write_text("precious")
        kept = target / "keep.txt" if is_dir else target
        assert kept.read_text() == "precious"
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(STAGING_PREFIX)]
