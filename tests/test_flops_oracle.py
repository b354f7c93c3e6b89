"""FLOPs against torch.utils.flop_counter.FlopCounterMode run on the same meta forward.

FlopCounterMode counts mm, addmm, bmm, convolution and SDPA (which on meta runs as its math decomposition, i.e.
two bmm per attention). It has no formula for `_grouped_mm` (it would count the MoE experts as 0), so the test
registers the obvious one: 2 * rows * K * N. Our attention nodes are compared with FlopCounterMode's
full-square count; the causal discount our rule applies is checked on its own below.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dsocr_trace.analyze import Analysis
from dsocr_trace.costs.attention import attended_pairs, attention_flops_full
from dsocr_trace.trace.capture import filled_cache, prefill_inputs
from dsocr_trace.trace.ir import ATTENTION


def _grouped_mm_flops(a_shape: Any, b_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return 2 * a_shape[0] * a_shape[-1] * b_shape[-1]


def _oracle(model: Any, run: Any) -> dict[str, float]:
    mapping = {torch.ops.aten._grouped_mm: _grouped_mm_flops}
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as fc:
        run(model)
    return {str(k).split(".")[1]: float(v) for k, v in fc.get_flop_counts()["Global"].items()}


def _ours(a: Analysis, phase: str) -> dict[str, float]:
    fam: dict[str, float] = {}
    tr, costs = a.traces[phase], a.costs[phase]
    for n, c in zip(tr.nodes, costs.eager, strict=True):
        if c is None:
            continue
        if n.op == ATTENTION:
            key, flops = "bmm", attention_flops_full(n)  # on meta SDPA is two bmm, full square
        elif n.op.startswith("aten.") and c.tc_flops:
            key, flops = n.op.split(".")[1], c.tc_flops
        else:
            continue
        fam[key] = fam.get(key, 0.0) + flops
    return fam


def _compare(oracle: dict[str, float], ours: dict[str, float]) -> None:
    assert set(oracle) == set(ours), (oracle, ours)
    for fam, ref in oracle.items():
        assert ours[fam] == pytest.approx(ref, rel=1e-6), fam


@pytest.mark.parametrize("which", ["base_analysis", "gundam_analysis"])
def test_prefill_flops_match_flopcounter(which: str, request: pytest.FixtureRequest, loaded: Any,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    a: Analysis = request.getfixturevalue(which)
    monkeypatch.setenv("TRANSFORMERS_DISABLE_TORCH_CHECK", "1")  # FlopCounterMode cannot answer .item() on meta
    inputs = prefill_inputs(a.workload, loaded.image_token_id)
    oracle = _oracle(loaded.model, lambda m: m(**inputs, use_cache=True))
    assert {"mm", "addmm", "bmm", "convolution", "_grouped_mm"} <= set(oracle)
    _compare(oracle, _ours(a, "prefill"))


def test_decode_flops_match_flopcounter(base_analysis: Analysis, loaded: Any) -> None:
    kv = base_analysis.traces["decode"].meta["kv_len"] - 1
    cache = filled_cache(loaded.model, 1, kv)
    ids = torch.empty(1, 1, dtype=torch.long, device="meta")
    oracle = _oracle(loaded.model, lambda m: m(input_ids=ids, cache=cache, use_cache=True))
    _compare(oracle, _ours(base_analysis, "decode"))


def test_causal_attention_counts_lower_triangle(base_analysis: Analysis) -> None:
    s = base_analysis.workload.prefill_tokens
    nodes = [(n, c) for n, c in zip(base_analysis.traces["prefill"].nodes, base_analysis.costs["prefill"].eager,
                                    strict=True) if n.op == ATTENTION and n.attrs["causal"]]
    assert len(nodes) == 12  # one per decoder layer; SAM and CLIP attention is bidirectional
    for n, c in nodes:
        assert c is not None
        b, h, d = n.attrs["batch"], n.attrs["heads"], n.attrs["head_dim"]
        assert c.tc_flops == 2 * b * h * (s * (s + 1) // 2) * (d + d)  # diagonal included
        assert c.tc_flops < attention_flops_full(n) / 2 + 4 * b * h * s * d + 1
    assert attended_pairs(4, 4, True) == 10
    assert attended_pairs(1, 7, True) == 7  # a decode query sees the whole cache
    assert attended_pairs(2, 5, True) == 4 + 5  # a chunk of 2 after 3 cached keys: 4 + 5 pairs


def test_moe_counts_top_k_experts_only(base_analysis: Analysis) -> None:
    tr, costs = base_analysis.traces["prefill"], base_analysis.costs["prefill"]
    t = base_analysis.workload.prefill_tokens
    gmm = [c for n, c in zip(tr.nodes, costs.eager, strict=True) if n.op.startswith("aten._grouped_mm")]
    assert len(gmm) == 22  # gate_up and down in each of the 11 MoE layers
    per_layer = sum(c.tc_flops for c in gmm if c is not None) / 11
    assert per_layer == 2 * t * 6 * (1280 * 2 * 896 + 896 * 1280)
