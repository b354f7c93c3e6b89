"""The training-step calibration sweep: optimizer ladders, per-launch memory curves, replayable specs."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from dsocr_trace.costs import cost_of
from dsocr_trace.hardware.profile import packaged_profile
from dsocr_trace.hardware.spec import load_device
from dsocr_trace.kernels.base import Hw, Point
from dsocr_trace.kernels.memory import MemoryFamily, launches_of
from dsocr_trace.kernels.query import node_of_spec, query_of
from dsocr_trace.validate import calsweep
from dsocr_trace.validate.opbench import _prepare


def _adamw_template(count: int = 4, numel: int = 1000) -> dict[str, Any]:
    """A fused AdamW spec shaped like the traced ones: params, grads, exp_avg, exp_avg_sq, state steps."""
    inputs: list[dict[str, Any]] = []

    def ref(shape: list[int], dtype: str) -> dict[str, int]:
        inputs.append({"shape": shape, "strides": [1] * len(shape), "dtype": dtype, "offset": 0, "param": False})
        return {"t": len(inputs) - 1}
    lists = [[ref([numel], "bfloat16") for _ in range(count)] for _ in range(4)]
    steps = [ref([], "float32") for _ in range(count)]
    return {"op": "aten._fused_adamw_.default", "inputs": inputs, "attrs": {},
            "call": {"args": [*lists, [], steps], "kwargs": {"amsgrad": False, "beta1": 0.9, "beta2": 0.999,
                                                          "eps": 1e-8, "lr": 1e-5, "maximize": False,
                                                          "weight_decay": 0.0}}}


def test_optimizer_ladder_resizes_every_list_and_keeps_step_scalars() -> None:
    ladder = calsweep.optimizer_ladder([_adamw_template()])
    assert ladder, "no ladder specs"
    sizes = set()
    for spec in ladder:
        lists = [a for a in spec["call"]["args"] if isinstance(a, list) and a]
        counts = {len(a) for a in lists}
        assert len(counts) == 1, "all tensor lists of one optimizer call have the same length"
        count = counts.pop()
        vec = [r for r in spec["inputs"] if r["shape"]]
        scal = [r for r in spec["inputs"] if not r["shape"]]
        assert len(vec) == 4 * count and len(scal) == count
        numel = vec[0]["shape"][0]
        assert all(r["shape"] == [numel] for r in vec)
        assert count * numel <= calsweep.OPT_MAX_ELEMENTS
        sizes.add((count, numel))
        assert spec["sources"] == ["sweep:optimizer"]
    assert len(sizes) == len(ladder)


def test_ladder_launch_counts_follow_the_multi_tensor_rule() -> None:
    # 300 tensors of 700k elements: 11 chunks each, 3300 chunks -> 11 launches of <= 320 chunks (measured: 11)
    spec = next(s for s in calsweep.optimizer_ladder([_adamw_template()])
                if len(s["call"]["args"][0]) == 300 and s["inputs"][0]["shape"] == [700_000])
    node = node_of_spec(spec)
    cost = cost_of(node)
    assert cost is not None
    assert launches_of(query_of(node, cost)) == 11


def _memory_point(count: int, numel: int, seconds: float) -> Point:
    spec = calsweep._resized_lists(_adamw_template(), count, numel)
    node = node_of_spec(spec)
    cost = cost_of(node)
    assert cost is not None
    return Point(query_of(node, cost), seconds, (), ("sweep:optimizer",))


def test_multi_tensor_curves_are_per_launch() -> None:
    hw = Hw(tc_flops=900e12, mem_bw=4e12, sm_count=132, floor_s=2e-6)
    fam = MemoryFamily([_memory_point(3, 6_000_000, 150e-6), _memory_point(3, 60_000, 14e-6)], hw)
    # the same bytes as 300 small tensors (LoRA-like, several launches) and as 3 large ones (one launch):
    # measured 125 vs ~60 us on the H200 sweep; a bytes-only curve would price both the same
    many, few = _memory_point(300, 12_000, 1.0).q, _memory_point(3, 1_200_000, 1.0).q
    assert many.x[0] == pytest.approx(few.x[0], rel=0.01)
    assert launches_of(many) > 3 * launches_of(few) and launches_of(few) == 1
    est_many, est_few = fam.predict(many), fam.predict(few)
    assert est_many is not None and est_few is not None
    assert est_many.seconds > 2 * est_few.seconds


def test_prepare_makes_backward_specs_replayable() -> None:
    gen = torch.Generator()
    gen.manual_seed(0)
    cpu = torch.device("cpu")

    def ref(shape: list[int], strides: list[int], dtype: str = "bfloat16") -> dict[str, Any]:
        return {"shape": shape, "strides": strides, "dtype": dtype, "offset": 0, "param": False}
    # weight gradient of a grouped GEMM: groups cut the shared K dim (744 routed rows), not A's 1280 rows
    wgrad = {"op": "aten._grouped_mm.default", "attrs": {},
             "inputs": [ref([1280, 744], [1, 1280]), ref([744, 896], [896, 1]), ref([64], [1], "int32")],
             "call": {"args": [{"t": 0}, {"t": 1}, {"t": 2}], "kwargs": {}}}
    offs = _prepare(wgrad, cpu, gen)[2]
    assert int(offs[-1]) == 744 and bool((offs[1:] >= offs[:-1]).all())
    # a 196-wide bias row (392 B) is padded to a 16-byte row stride as CUDA's SDPA does
    shapes = [[2, 4, 196, 64]] * 4
    eff = {"op": "aten._scaled_dot_product_efficient_attention_backward.default", "attrs": {},
           "inputs": [ref(s, [50176, 12544, 64, 1]) for s in shapes] + [ref([2, 4, 196, 196], [153664, 38416, 196, 1])],
           "call": {"args": [{"t": i} for i in range(5)], "kwargs": {}}}
    bias = _prepare(eff, cpu, gen)[4]
    assert bias.shape == (2, 4, 196, 196) and (bias.stride(-2) * bias.element_size()) % 16 == 0
    # masked_scatter's backward gathers into the source's sizes: that many mask positions are set
    msb = {"op": "aten.masked_scatter_backward.default", "attrs": {},
           "inputs": [ref([1, 124, 1280], [158720, 1280, 1]), ref([1, 124, 1], [124, 1, 1], "bool")],
           "call": {"args": [{"t": 0}, {"t": 1}, [111, 1280]], "kwargs": {}}}
    mask = _prepare(msb, cpu, gen)[1]
    assert int(mask.sum()) == 111


def test_packaged_h200_profile_holds_the_training_sweep() -> None:
    prof = packaged_profile(load_device("h200"))
    doc = prof.document["sweep"]
    train = [w for w in doc["workloads"] if w.startswith("train:")]
    assert train == [calsweep.train_label(*t) for t in calsweep.CALIBRATION_TRAIN]
    ops = {p["op"] for p in prof.sweep.values()}
    assert "aten._fused_adamw_.default" in ops
    assert any(o.endswith("_backward.default") for o in ops)
    assert all(p["seconds"] > 0 and math.isfinite(p["seconds"]) for p in prof.sweep.values())


def test_prepare_gives_adamw_the_states_a_training_step_has() -> None:
    """Second moments >= 0 and step counts >= 1: random normals put sqrt(v) into NaN, which runs fused AdamW
    1.5x slower on an H200 (benchmarks/validation/fused_adamw_diagnostics.py states)."""
    spec = _adamw_template(count=3, numel=5000)
    ts = _prepare(spec, torch.device("cpu"), torch.Generator().manual_seed(0))
    args = spec["call"]["args"]
    v = [ts[r["t"]] for r in args[3]]
    steps = [ts[r["t"]] for r in args[5]]
    assert all(bool((t >= 0).all()) for t in v) and all(float(s) == 1.0 for s in steps)
    m = [ts[r["t"]] for r in args[2]]
    assert any(bool((t < 0).any()) for t in m)  # first moments keep their signs
    p = [ts[r["t"]] for r in args[0]]
    assert not any(bool(torch.isnan(t.float()).any()) for t in p + v)
