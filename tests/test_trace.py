from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from dsocr_trace.analyze import Analysis, run_analysis
from dsocr_trace.graph import build_graph, merge_phases, write_graphml
from dsocr_trace.models.source import DEFAULT_MODEL
from dsocr_trace.report.build import build_report, dumps
from dsocr_trace.trace.ir import ATTENTION, MOE_EXPERTS, PATCH_EMBED, RMS_NORM
from dsocr_trace.workload import make_workload


def test_params_exact(base_analysis: Analysis) -> None:
    p = base_analysis.params
    assert p["checkpoint_total"] == 3_336_106_240
    assert p["built_total"] == 3_336_106_240 - 602_112
    assert p["omitted_from_build"]["vision_clip"]["params"] == 602_112
    c = p["components"]
    assert c["vision_sam"] == 95_569_152
    assert c["vision_clip"] == 303_177_728
    assert c["projector"] == 2_622_720
    assert c["embedding"] == 165_478_400
    assert c["lm_head"] == 165_478_400
    assert c["decoder"] == 2_603_777_280
    assert c["special_tokens"] == 2_560
    assert p["active_per_token"] == 574_127_360


def test_decode_step_has_no_vision_and_sees_kv(loaded: Any) -> None:
    wl = make_workload("base", kv_len=1000)
    a = run_analysis(DEFAULT_MODEL, wl)
    dec = a.traces["decode"]
    assert {n.stage for n in dec.nodes} <= {"decoder", "lm_head"}
    assert not any("vision_tower" in n.module_path or "projector" in n.module_path for n in dec.nodes)
    attn = [n for n in dec.nodes if n.op == ATTENTION]
    assert len(attn) == 12
    assert all(n.attrs["kv_len"] == 1001 and n.attrs["q_len"] == 1 for n in attn)
    # the DynamicCache grows by cat: each layer copies K and V of the whole cache
    cats = [n for n in dec.nodes if n.op.startswith("aten.cat") and n.outputs[0].shape[-2] == 1001]
    assert len(cats) == 24


def test_semantic_nodes_carry_rule_inputs(base_analysis: Analysis) -> None:
    nodes = base_analysis.traces["prefill"].nodes
    by_op: dict[str, list[Any]] = {}
    for n in nodes:
        by_op.setdefault(n.op, []).append(n)
    assert len(by_op[ATTENTION]) == 12 + 24 + 12  # SAM, CLIP, decoder
    sam = [n for n in by_op[ATTENTION] if n.stage == "vision.sam"]
    windowed = [n for n in sam if n.attrs["q_len"] == 196]
    assert len(windowed) == 8 and all(n.attrs["batch"] == 25 and n.attrs["mask"] == "float" for n in windowed)
    glob = [n for n in sam if n.attrs["q_len"] == 4096]
    assert len(glob) == 4
    moe = by_op[MOE_EXPERTS]
    assert len(moe) == 11 and all(n.attrs["top_k"] == 6 and n.attrs["n_experts"] == 64 for n in moe)
    assert all(n.members and all(nodes[m].group == n.id for m in n.members) for n in moe)
    assert len(by_op[RMS_NORM]) == 25 and all(n.attrs["dim"] == 1280 for n in by_op[RMS_NORM])
    assert len(by_op[PATCH_EMBED]) == 1
    # parameters resolved through views: the q projection of layer 0 names its weight
    q = [n for n in nodes if n.module_path == "model.language_model.layers.0.self_attn.q_proj"]
    assert any(t.param == "model.language_model.layers.0.self_attn.q_proj.weight" for n in q for t in n.inputs)


def test_graphml_round_trip(base_analysis: Analysis, tmp_path: Path) -> None:
    a = base_analysis
    graphs = {ph: build_graph(tr, a.costs[ph].eager, a.costs[ph].fused) for ph, tr in a.traces.items()}
    g = merge_phases(graphs)
    path = tmp_path / "g.graphml"
    write_graphml(g, path)
    # module aggregates in the graph are the report's (group nodes are not ops of their own)
    totals = build_report(a)["modules"]["prefill"]
    for path_ in ("", "model.vision_tower.sam_encoder", "model.language_model.layers.3.mlp"):
        node = graphs["prefill"].nodes[f"mod:{path_}"]
        assert node["ops"] == totals[path_]["ops"] and node["kernels"] == totals[path_]["kernels"]
        assert node["tc_flops"] == totals[path_]["tc_flops"]
    back = nx.read_graphml(str(path))
    assert back.number_of_nodes() == g.number_of_nodes()
    assert back.number_of_edges() == g.number_of_edges()
    for n in list(g.nodes)[:: max(1, g.number_of_nodes() // 200)]:
        assert set(back.nodes[n]) == set(g.nodes[n])
        for k, v in g.nodes[n].items():
            assert back.nodes[n][k] == v or (isinstance(v, float) and back.nodes[n][k] == pytest.approx(v))


def test_report_is_deterministic(base_analysis: Analysis) -> None:
    first = dumps(build_report(base_analysis))
    again = run_analysis(DEFAULT_MODEL, make_workload("base"))
    assert dumps(build_report(again)) == first


def test_stage_totals(base_analysis: Analysis) -> None:
    r = build_report(base_analysis)
    s = r["stages"]
    assert s["vision.sam"]["tc_flops"] == pytest.approx(976.9e9, rel=1e-3)
    assert s["vision.clip"]["tc_flops"] == pytest.approx(161.7e9, rel=1e-3)
    assert s["projector"]["tc_flops"] == 2 * 256 * 2048 * 1280
    assert r["coverage"]["uncosted"] == {}
    assert r["workload"]["prefill_tokens"] == 1 + 12 + 273


def test_report_with_predictions_is_deterministic() -> None:
    from dsocr_trace.hardware.profile import packaged_profile
    from dsocr_trace.hardware.spec import load_device
    from dsocr_trace.request import predict_request

    spec = load_device("h100")
    blobs = []
    for _ in range(2):
        a = run_analysis(DEFAULT_MODEL, make_workload("tiny", output_tokens=30))
        blobs.append(dumps(build_report(a, predict_request(a, spec, packaged_profile(spec), "fused"))))
    assert blobs[0] == blobs[1]
