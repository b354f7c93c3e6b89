"""Pure helpers of the GPU validation harness (no model, no device)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from dsocr_trace.validate.harness import SCHEMA, parse_modes, validate_result
from dsocr_trace.validate.profiling import (
    aggregate_stages,
    exclusive_from_inclusive,
    median_spread,
    parent_path,
    summarise_profile,
    walk_step,
)


def test_parent_path_skips_unrecorded_levels() -> None:
    known = {"", "model", "model.language_model", "model.language_model.layers.0"}
    assert parent_path("model.language_model.layers.0", known) == "model.language_model"  # "layers" never ran
    assert parent_path("model", known) == ""
    assert parent_path("", known) is None
    assert parent_path("lm_head", {"lm_head"}) is None


def test_exclusive_by_path_and_by_dynamic_parent() -> None:
    incl = {"": 10.0, "model": 8.0, "model.a": 3.0, "model.a.x": 1.0, "model.b": 2.0, "lm_head": 1.5}
    excl = exclusive_from_inclusive(incl)
    assert excl == pytest.approx({"": 0.5, "model": 3.0, "model.a": 2.0, "model.a.x": 1.0, "model.b": 2.0,
                                  "lm_head": 1.5})
    assert sum(excl.values()) == pytest.approx(incl[""])
    # model.b ran inside model.a (dynamic caller), not directly inside model
    parents = {"": None, "model": "", "model.a": "model", "model.a.x": "model.a", "model.b": "model.a",
               "lm_head": ""}
    incl2 = {**incl, "model.a": 5.0}
    excl2 = exclusive_from_inclusive(incl2, parents)
    assert excl2["model"] == pytest.approx(3.0)
    assert excl2["model.a"] == pytest.approx(2.0)
    assert sum(excl2.values()) == pytest.approx(incl2[""])


def test_aggregate_stages_uses_stage_of() -> None:
    mods = {
        "": {"device_s": 0.1, "kernels": 1},
        "lm_head": {"device_s": 0.2, "kernels": 1},
        "model": {"device_s": 0.05, "kernels": 3},
        "model.vision_tower.sam_encoder.layers.0": {"device_s": 1.0, "kernels": 10},
        "model.vision_tower.vision_encoder": {"device_s": 0.5, "kernels": 5},
        "model.language_model.layers.3.mlp.experts": {"device_s": 0.7, "kernels": 20},
    }
    st = aggregate_stages(mods, "prefill")
    assert st["lm_head"] == pytest.approx({"device_s": 0.3, "kernels": 2})
    assert st["projector"] == pytest.approx({"device_s": 0.05, "kernels": 3})
    assert st["vision.sam"]["kernels"] == 10
    assert st["vision.clip"]["device_s"] == pytest.approx(0.5)
    assert st["decoder"]["kernels"] == 20
    assert aggregate_stages(mods, "decode")["decoder"]["kernels"] == 23  # top-level glue is decoder at decode


def test_median_spread() -> None:
    assert median_spread([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert median_spread([]) == (0.0, 0.0)
    assert median_spread([0.0, 0.0]) == (0.0, 0.0)


def test_parse_modes() -> None:
    assert parse_modes("tiny, gundam:2x3,base@8,") == [("tiny", None, 1), ("gundam", "2x3", 1), ("base", None, 8)]


def _ev(name: str, kernels: list[float] = (), children: list[Any] = (), cpu_us: float = 0.0) -> SimpleNamespace:
    return SimpleNamespace(name=name, kernels=[SimpleNamespace(name="k", duration=d) for d in kernels],
                           cpu_children=list(children), cpu_time_total=cpu_us)


def _fake_step() -> SimpleNamespace:
    # step > mod:"" > mod:model > (aten::add [launch k=2], mod:model.x > aten::mm [k=5]) ; mod:lm_head > aten::mm [k=3]
    mm = _ev("aten::mm", children=[_ev("cudaLaunchKernel", kernels=[5.0])])
    x = _ev("mod:model.x", children=[mm])
    add = _ev("aten::add", kernels=[2.0], children=[_ev("aten::empty")])
    model = _ev("mod:model", children=[add, x])
    lm = _ev("mod:lm_head", children=[_ev("aten::linear", children=[_ev("aten::mm", kernels=[3.0])])])
    annot = SimpleNamespace(name="mod:", duration=99.0)  # GPU-side user annotation: must be ignored
    root = _ev("mod:", children=[model, lm, _ev("aten::to", kernels=[1.0])])
    root.kernels = [annot]
    return _ev("dsocr:step", children=[root])


def test_walk_step_and_summary() -> None:
    w = walk_step(_fake_step())
    assert w["incl_us"] == {"": 11.0, "model": 7.0, "model.x": 5.0, "lm_head": 3.0}
    assert w["parents"] == {"": None, "model": "", "model.x": "model", "lm_head": ""}
    assert w["total_us"] == 11.0 and w["total_n"] == 4
    assert w["host_ops"] == 4  # add, mm, linear, to (nested aten::empty and aten::mm under linear not counted)
    assert w["host_ops_launching"] == 4
    assert w["launches"] == 1
    summ = summarise_profile([w, w], {"": 1, "model": 1, "model.x": 1, "lm_head": 1}, "prefill")
    assert summ["modules"]["model"] == {"device_s": pytest.approx(2e-6), "device_incl_s": pytest.approx(7e-6),
                                        "kernels": 1, "calls": 1}
    assert summ["stages"]["lm_head"]["device_s"] == pytest.approx(4e-6)  # root's cast + lm_head
    assert summ["stages"]["projector"]["device_s"] == pytest.approx(2e-6)
    assert summ["stages"]["decoder"]["device_s"] == pytest.approx(5e-6)
    assert summ["total"]["device_s"] == pytest.approx(11e-6)
    assert summ["total"]["device_outside_modules_s"] == pytest.approx(0.0)
    assert summ["spread"]["total"] == 0.0
    doc = {"schema": SCHEMA, "device": {}, "runs": [{
        "workload": {"mode": "base", "label": "base", "crops": None, "batch": 1, "prompt_tokens": 12,
                     "vision_tokens": 273, "prefill_tokens": 286, "phase": "prefill", "kv_len": None},
        "execution": "eager", **summ,
    }]}
    doc["runs"][0]["total"].update(wall_s=1.0, wall_min_s=1.0, wall_max_s=1.0)
    assert validate_result(doc) == []
    doc["runs"][0]["execution"] = "lazy"
    assert validate_result(doc)
