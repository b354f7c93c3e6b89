"""Run-folder writers: report.yaml, nodes.csv, modules.csv, summary.md, docs/*.md; report.json against its schema."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml

from dsocr_trace.analyze import Analysis
from dsocr_trace.report.build import build_report, dumps
from dsocr_trace.report.layer_docs import family_totals
from dsocr_trace.report.node_rows import NODE_COLUMNS, NODE_PRED_COLUMNS, trace_nodes
from dsocr_trace.report.writers import MODULE_COLUMNS, MODULE_PRED_COLUMNS, write_all, yaml_view

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "specs" / "report-schema.json"
PACKAGE_SCHEMA = ROOT / "src" / "dsocr_trace" / "schemas" / "report-schema.json"


def _fake_predictions(report: dict[str, Any], nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """A predictions block of the planned shape, with made-up times (1 PFLOP/s, 3 TB/s, 2 us launch)."""

    def t(flops: float, nbytes: float) -> float:
        return max(flops / 1e15, nbytes / 3e12, 2e-6)

    pnodes: dict[str, list[dict[str, Any]]] = {"prefill": [], "decode": []}
    clock = {"prefill": 0.0, "decode": 0.0}
    for n in nodes:
        if n["kind"] in ("view", "group"):
            continue
        fl, nb = n["tc_flops"] + n["cc_flops"], n["bytes_read"] + n["bytes_written"]
        d = t(fl, nb)
        start = clock[n["phase"]]
        clock[n["phase"]] += d
        pnodes[n["phase"]].append({"id": n["id"], "op": n["op"], "module_path": n["module_path"],
                                   "module_type": n["module_type"], "stage": n["stage"], "kind": n["kind"],
                                   "tc_flops": n["tc_flops"], "cc_flops": n["cc_flops"], "bytes": nb, "device_s": d,
                                   "host_s": 1.2e-5, "start_s": start, "end_s": start + d,
                                   "bound": "compute" if fl / 1e15 >= nb / 3e12 else "memory", "efficiency": 0.5,
                                   "source": "test"})
    stages = {s: {"device_s": v["flops"] / 1e15 + v["bytes"] / 3e12, "host_s": 1e-3, "wall_s": 2e-3,
                  "kernels": v["kernels"], "bound": "memory",
                  "bound_s": {"compute": v["flops"] / 1e15, "memory": v["bytes"] / 3e12, "launch": 0.0}}
              for s, v in report["stages"].items()}
    mods = {ph: {p: {"device_s": m["bytes"] / 3e12, "host_s": m["ops"] * 1.2e-5, "kernels": m["kernels"]}
                 for p, m in report["modules"][ph].items()} for ph in ("prefill", "decode")}
    return {
        "device": {"key": "h100", "name": "Test GPU", "tc_flops": 1e15, "cc_flops": 6e13, "mem_bw": 3e12,
                   "mem_bytes": 8e10},
        "profile": {"source": "spec-default"}, "execution": "eager", "weight_dtype": "bf16", "stages": stages,
        "module_types": {ph: {c: {"device_s": 1e-4, "host_s": 1e-4, "kernels": 1,
                                  "bound_s": {"compute": 0.0, "memory": 1e-4, "launch": 0.0}}
                              for c in report["module_types"][ph]} for ph in ("prefill", "decode")},
        "modules": mods, "nodes": pnodes,
        "memory": {"weights_bytes": 6.7e9, "weights_by_component": {"decoder": 5.2e9, "vision": 1.5e9},
                   "kv_cache_bytes": 4.8e7,
                   "kv_bytes_per_token": 61440, "activation_peak_bytes": 8.3e8, "logits_bytes": 1.5e8,
                   "activation_peak_op": "aten.mm.default", "activation_peak_module": "lm_head (Linear)",
                   "reserve_bytes": 1.07e9, "total_bytes": 8.648e9, "device_bytes": 8e10, "fits": True},
        "request": {"batch": 1, "output_tokens": 500, "ttft_s": 0.047, "tpot_mean_s": 0.0174, "tpot_last_s": 0.0174,
                    "e2e_s": 8.75, "tokens_per_s": 57.1, "pages_per_s": 0.114, "pages_per_gpu_day": 9875.0},
    }


@pytest.fixture(scope="module")
def built(base_analysis: Analysis) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    report = build_report(base_analysis)
    return orjson.loads(dumps(report)), trace_nodes(base_analysis)  # as a reader of report.json sees it


@pytest.fixture(scope="module")
def plain_run(built: tuple[dict[str, Any], list[dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    report, nodes = built
    folder = tmp_path_factory.mktemp("run_plain")
    write_all(report, folder, nodes=nodes)
    return folder


@pytest.fixture(scope="module")
def predicted(built: tuple[dict[str, Any], list[dict[str, Any]]]) -> dict[str, Any]:
    report, nodes = built
    r = copy.deepcopy(report)
    r["predictions"] = _fake_predictions(report, nodes)
    return r


@pytest.fixture(scope="module")
def pred_run(predicted: dict[str, Any], built: tuple[dict[str, Any], list[dict[str, Any]]],
             tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run_pred")
    write_all(predicted, folder, nodes=built[1])
    return folder


def _csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        r = csv.DictReader(f)
        rows = list(r)
        return list(r.fieldnames or []), rows


def test_write_all_files(plain_run: Path) -> None:
    for name in ("report.yaml", "nodes.csv", "modules.csv", "summary.md", "docs/index.md"):
        assert (plain_run / name).is_file(), name
    assert not (plain_run / "report.json").exists()  # the caller writes report.json


def test_yaml_round_trip(built: tuple[dict[str, Any], list[dict[str, Any]]], plain_run: Path) -> None:
    report, _ = built
    back = yaml.safe_load((plain_run / "report.yaml").read_text(encoding="utf-8"))
    assert back == report  # no predictions: nothing omitted


def test_yaml_omits_prediction_nodes(predicted: dict[str, Any], pred_run: Path) -> None:
    back = yaml.safe_load((pred_run / "report.yaml").read_text(encoding="utf-8"))
    assert back == yaml_view(predicted)
    assert "nodes" not in back["predictions"]
    omitted = back["predictions"]["nodes_omitted"]
    assert omitted["rows"] == {ph: len(v) for ph, v in predicted["predictions"]["nodes"].items()}
    rest = {k: v for k, v in back.items() if k != "predictions"}
    assert rest == {k: v for k, v in predicted.items() if k != "predictions"}


def test_nodes_csv(built: tuple[dict[str, Any], list[dict[str, Any]]], plain_run: Path) -> None:
    report, nodes = built
    header, rows = _csv(plain_run / "nodes.csv")
    assert header == [h for h, _, _ in NODE_COLUMNS]
    assert "tc_flops [FLOP]" in header and "bytes_read [B]" in header
    assert len(rows) == len(nodes) == report["coverage"]["ops_total"]
    # plain numbers that add up to the report's totals
    tc = sum(float(r["tc_flops [FLOP]"]) for r in rows if r["phase"] == "prefill")
    stages = [s for s in report["stages"] if s != "decode.step"]
    assert tc == pytest.approx(sum(report["stages"][s]["tc_flops"] for s in stages), rel=1e-9)
    assert {r["phase"] for r in rows} == {"prefill", "decode"}
    assert all("[" not in r["input_shapes"] and "{" not in r["input_shapes"] for r in rows)


def test_nodes_csv_with_predictions(predicted: dict[str, Any], pred_run: Path) -> None:
    header, rows = _csv(pred_run / "nodes.csv")
    assert header == [h for h, _, _ in NODE_COLUMNS] + [h for h, _, _ in NODE_PRED_COLUMNS]
    pn = predicted["predictions"]["nodes"]
    assert len(rows) == len(pn["prefill"]) + len(pn["decode"])
    total_ms = sum(float(r["device_time [ms]"]) for r in rows if r["phase"] == "decode")
    assert total_ms == pytest.approx(sum(n["device_s"] for n in pn["decode"]) * 1e3, rel=1e-9)
    assert all(r["input_shapes"] for r in rows if r["op"] == "attention")  # enriched from the trace nodes


def test_modules_csv(built: tuple[dict[str, Any], list[dict[str, Any]]], plain_run: Path, pred_run: Path) -> None:
    report, _ = built
    n_modules = sum(len(v) for v in report["modules"].values())
    header, rows = _csv(plain_run / "modules.csv")
    assert header == MODULE_COLUMNS
    assert len(rows) == n_modules
    root = next(r for r in rows if r["phase"] == "prefill" and r["module_path"] == "")
    assert float(root["flops [FLOP]"]) == pytest.approx(report["modules"]["prefill"][""]["flops"])
    header, rows = _csv(pred_run / "modules.csv")
    assert header == MODULE_COLUMNS + MODULE_PRED_COLUMNS
    assert len(rows) == n_modules
    assert all(r["device_time [ms]"] != "" for r in rows)


def test_summary_mentions_workload(built: tuple[dict[str, Any], list[dict[str, Any]]], plain_run: Path,
                                   pred_run: Path) -> None:
    report, _ = built
    wl = report["workload"]
    text = (plain_run / "summary.md").read_text(encoding="utf-8")
    for s in (str(wl["vision_tokens"]), str(wl["prefill_tokens"]), "vision.sam", "decode.step", "## Coverage",
              "Uncosted ops: none"):
        assert s in text, s
    assert "device ms" not in text and "## Request" not in text
    assert "## Memory" in text and "**total**" in text  # the request's memory needs no device
    ptext = (pred_run / "summary.md").read_text(encoding="utf-8")
    for s in ("device ms", "## Bound breakdown", "## Request", "## Memory", "Test GPU", "device (usable)"):
        assert s in ptext, s
    # the memory rows add up to the total, in GiB, and the peak names its op and module
    table = ptext.split("## Memory", 1)[1].split("\n\n", 2)[1].splitlines()[2:]
    parts = [r.split("|") for r in table]
    summed = sum(int(p[3].strip().replace(",", "")) for p in parts if p[1].strip() not in ("**total**",
                                                                                          "device (usable)"))
    total = next(int(p[3].strip().replace(",", "")) for p in parts if p[1].strip() == "**total**")
    assert summed == total
    peak = next(p[4] for p in parts if p[1].strip() == "activation peak")
    assert "live tensors at aten." in peak and " in " in peak and "fp32 logits" in peak, peak
    assert " GB " not in ptext.split("## Memory", 1)[1].split("##", 1)[0]


def test_layer_docs(built: tuple[dict[str, Any], list[dict[str, Any]]], plain_run: Path, pred_run: Path) -> None:
    report, _ = built
    wl = report["workload"]
    docs = plain_run / "docs"
    pages = {p.name for p in docs.glob("*.md")}
    for name in ("index.md", "sam_attention.md", "sam_block.md", "sam_neck.md", "patch_embed.md", "clip_block.md",
                 "projector.md", "decoder_attention.md", "kv_cache.md", "rmsnorm.md", "moe.md", "dense_mlp.md",
                 "lm_head.md"):
        assert name in pages, name
    index = (docs / "index.md").read_text(encoding="utf-8")
    for p in pages - {"index.md"}:
        assert f"({p})" in index, p
        text = (docs / p).read_text(encoding="utf-8")
        assert str(wl["prefill_tokens"]) in text and "## Cost rule" in text and "## Top nodes" in text
    moe = (docs / "moe.md").read_text(encoding="utf-8")
    assert "## Applied here" in moe and "aten._grouped_mm" in moe
    assert "by predicted device time" in (pred_run / "docs" / "sam_attention.md").read_text(encoding="utf-8")


def test_families_partition_the_ops(built: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    report, nodes = built
    ft = family_totals(report, nodes)
    for phase, fams in ft.items():
        root = report["modules"][phase][""]
        assert sum(f["ops"] for f in fams.values()) == root["ops"]
        assert sum(f["tc_flops"] for f in fams.values()) == pytest.approx(root["tc_flops"], rel=1e-9)
        assert sum(f["bytes_read"] for f in fams.values()) == pytest.approx(root["bytes_read"], rel=1e-9)
        assert fams["kv_cache"]["ops"] == 2 * 12  # one K and one V cat per decoder layer


def test_report_matches_schema(built: tuple[dict[str, Any], list[dict[str, Any]]], predicted: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert json.loads(PACKAGE_SCHEMA.read_text(encoding="utf-8")) == schema  # package copy in sync
    jsonschema.validate(built[0], schema, cls=jsonschema.Draft202012Validator)
    jsonschema.validate(predicted, schema, cls=jsonschema.Draft202012Validator)
    broken = {k: v for k, v in built[0].items() if k != "stages"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)


def test_layer_docs_read_the_report_not_a_second_formula(tmp_path: Path) -> None:
    """Under skewed routing the MoE page's grouped-GEMM bytes are the report's own node bytes (it once printed a
    uniform-routing formula's 240 MB beside nodes that read 103 MB)."""
    from dsocr_trace.analyze import run_analysis
    from dsocr_trace.costs import CostOptions
    from dsocr_trace.costs.routing import parse_routing
    from dsocr_trace.models.source import DEFAULT_MODEL
    from dsocr_trace.report.layer_docs import nodes_by_family, write_layer_docs
    from dsocr_trace.report.units import si
    from dsocr_trace.workload import make_workload

    a = run_analysis(DEFAULT_MODEL, make_workload("tiny"), opts=CostOptions(routing=parse_routing("skew:2")))
    report, nodes = build_report(a), trace_nodes(a)
    write_layer_docs(report, tmp_path, nodes)
    moe = (tmp_path / "docs" / "moe.md").read_text(encoding="utf-8")
    grouped = [n for n in nodes_by_family(report, nodes)["moe"]
               if n["phase"] == "prefill" and n["op"] == "aten._grouped_mm.default"]
    assert grouped
    totals: dict[str, float] = {}
    for n in grouped:
        key = str(n["input_shapes"])
        totals[key] = totals.get(key, 0.0) + n["bytes_read"] + n["bytes_written"]
    assert len(totals) == 2  # gate/up and down projections, one row each over the 11 MoE layers
    for total in totals.values():
        assert f"| {si(total, 'B')} |" in moe
