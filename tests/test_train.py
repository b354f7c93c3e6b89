"""One training step traced on meta: FLOPs against FlopCounterMode and closed forms, trainable counts, optimizer
state and memory accounting, activation checkpointing, the CLI's train section.

Four tiny-mode, batch-1 steps are traced once per module (a few seconds each): full fine-tuning with AdamW
(bf16), the decoder alone with SGD with and without checkpointing, and LoRA (rank 8) with fp32 masters and
checkpointing. The first and the last run under FlopCounterMode, which sees every op the recorder passes on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch
from attrs import define
from torch.utils.flop_counter import FlopCounterMode

from dsocr_trace.analyze import load_model
from dsocr_trace.commands.analyze import analyze_command, train_config
from dsocr_trace.costs import NodeCosts, cost_trace
from dsocr_trace.costs.attention import attended_pairs, attention_backward_flops_full, attention_flops_full
from dsocr_trace.errors import UserError
from dsocr_trace.models.deepseek_ocr import build
from dsocr_trace.models.source import DEFAULT_MODEL
from dsocr_trace.models.training import TrainConfig
from dsocr_trace.trace.ir import ATTENTION, Trace
from dsocr_trace.trace.train import trace_train_step
from dsocr_trace.train.analysis import trace_train
from dsocr_trace.train.memory import is_inplace, train_memory
from dsocr_trace.workload import make_workload

ROOT = Path(__file__).resolve().parent.parent
WL = make_workload("tiny")
S = WL.prefill_tokens
HIDDEN, HEADS, HEAD_DIM, RANK = 1280, 10, 128, 8
CONFIGS = {
    "full": TrainConfig(),
    "decoder_sgd": TrainConfig(trainable="decoder", optimizer="sgd"),
    "decoder_sgd_ckpt": TrainConfig(trainable="decoder", optimizer="sgd", checkpointing=True),
    "lora_mixed_ckpt": TrainConfig(trainable="lora", lora_rank=RANK, precision="mixed", checkpointing=True),
}
ORACLE = ("full", "lora_mixed_ckpt")


@define
class Step:
    trace: Trace
    costs: NodeCosts
    oracle: dict[str, float] | None


def _grouped_mm_flops(a_shape: Any, b_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    # forward and input gradient: A rows x K times B experts x K x N; weight gradient: A K x rows times B rows x N
    return 2 * a_shape[0] * a_shape[-1] * b_shape[-1]


@pytest.fixture(scope="module")
def steps() -> dict[str, Step]:
    lm = load_model(DEFAULT_MODEL)
    out = {}
    for name, cfg in CONFIGS.items():
        def run(cfg: TrainConfig = cfg) -> Trace:
            return trace_train_step(build(lm.cfg), WL, cfg, lm.stage_fn, lm.image_token_id,
                                    int(lm.text_config.vocab_size))
        oracle = None
        if name in ORACLE:
            with FlopCounterMode(display=False, custom_mapping={torch.ops.aten._grouped_mm: _grouped_mm_flops}) as fc:
                tr = run()
            oracle = {str(k).split(".")[1]: float(v) for k, v in fc.get_flop_counts()["Global"].items()}
        else:
            tr = trace_train(DEFAULT_MODEL, WL, cfg)  # cached: the CLI test below reuses it
        out[name] = Step(tr, cost_trace(tr), oracle)
    return out


def _nodes(step: Step) -> list[tuple[Any, Any]]:
    return [(n, c) for n, c in zip(step.trace.nodes, step.costs.eager, strict=True) if not n.members]


# -- FLOPs ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ORACLE)
def test_step_flops_match_flopcounter(name: str, steps: dict[str, Step]) -> None:
    step = steps[name]
    assert step.oracle is not None
    ours: dict[str, float] = {}
    for n, c in _nodes(step):
        if c is None:
            continue
        if n.op == ATTENTION:
            key, flops = f"_scaled_dot_product_{n.attrs['kernel']}_attention", attention_flops_full(n)
        elif "_attention_backward" in n.op:
            key, flops = n.op.split(".")[1], attention_backward_flops_full(n)
        elif n.op.startswith("aten.") and c.tc_flops:
            key, flops = n.op.split(".")[1], c.tc_flops
        else:
            continue
        ours[key] = ours.get(key, 0.0) + flops
    expected = {"mm", "addmm", "bmm", "convolution", "_grouped_mm", "_scaled_dot_product_flash_attention",
                "_scaled_dot_product_flash_attention_backward", "_scaled_dot_product_efficient_attention"}
    assert expected <= set(step.oracle)
    if name == "full":  # SAM's bias needs a gradient, the patch conv a weight gradient
        assert {"convolution_backward", "_scaled_dot_product_efficient_attention_backward"} <= set(step.oracle)
    assert set(ours) == set(step.oracle)
    for fam, ref in step.oracle.items():
        assert ours[fam] == pytest.approx(ref, rel=1e-6), fam


def _ops_of(step: Step, fwd_path: str) -> tuple[list[Any], list[Any]]:
    """(forward mm nodes+costs of the module, backward nodes+costs attributed to it)."""
    fwd = [(n, c) for n, c in _nodes(step) if n.module_path == fwd_path and n.pass_kind == "forward"
           and c is not None and c.tc_flops]
    bwd = [(n, c) for n, c in _nodes(step) if n.module_path == fwd_path and n.pass_kind == "backward"
           and c is not None and c.tc_flops]
    return fwd, bwd


def test_linear_closed_forms(steps: dict[str, Step]) -> None:
    # a decoder projection with every input needing a gradient: forward 2MNK, backward 4MNK (dX and dW)
    fwd, bwd = _ops_of(steps["full"], "model.language_model.layers.3.self_attn.o_proj")
    mnk = S * HIDDEN * HIDDEN
    assert sum(c.tc_flops for _, c in fwd) == 2 * mnk
    assert sum(c.tc_flops for _, c in bwd) == 4 * mnk
    assert len(bwd) == 2 and {n.op for n, _ in bwd} == {"aten.mm.default"}
    # LoRA A of layer 0 reads the frozen embeddings (no gradient wanted): backward is dA alone, 2MNK;
    # LoRA B's input (A's output) needs a gradient: 4MNK
    lora = steps["lora_mixed_ckpt"]
    fwd, bwd = _ops_of(lora, "model.language_model.layers.0.self_attn.q_proj.lora_A")
    assert sum(c.tc_flops for _, c in fwd) == 2 * S * HIDDEN * RANK
    assert sum(c.tc_flops for _, c in bwd) == 2 * S * HIDDEN * RANK
    fwd, bwd = _ops_of(lora, "model.language_model.layers.0.self_attn.q_proj.lora_B")
    assert sum(c.tc_flops for _, c in bwd) == 4 * S * RANK * HIDDEN
    # the frozen base weight of a layer whose input needs a gradient: dX only
    fwd, bwd = _ops_of(lora, "model.language_model.layers.5.self_attn.o_proj.base_layer")
    assert sum(c.tc_flops for _, c in bwd) == 2 * S * HIDDEN * HIDDEN


def test_attention_block_closed_form(steps: dict[str, Step]) -> None:
    """A decoder attention block (q/k/v/o projections + causal attention), forward and backward."""
    path = "model.language_model.layers.4.self_attn"
    step = steps["full"]
    fwd = sum(c.tc_flops for n, c in _nodes(step) if c is not None and n.pass_kind == "forward"
              and n.module_path.startswith(path))
    bwd = sum(c.tc_flops for n, c in _nodes(step) if c is not None and n.pass_kind == "backward"
              and n.module_path.startswith(path))
    pairs = HEADS * S * (S + 1) // 2  # causal, diagonal included
    projections = 4 * 2 * S * HIDDEN * HIDDEN
    assert fwd == projections + 2 * pairs * (HEAD_DIM + HEAD_DIM)
    assert bwd == 2 * projections + 2 * pairs * (3 * HEAD_DIM + 2 * HEAD_DIM)
    assert attended_pairs(S, S, True) * HEADS == pairs
    kernels = {(n.pass_kind, n.op) for n, _ in _nodes(step) if n.module_path == path and "attention" in n.op}
    flash_backward = "aten._scaled_dot_product_flash_attention_backward.default"
    assert kernels == {("forward", ATTENTION), ("backward", flash_backward)}


def test_every_op_costed_and_attributed(steps: dict[str, Step]) -> None:
    for name, step in steps.items():
        assert step.costs.uncosted == {}, name
        tr = step.trace
        # modules that ran, and the owners of parameters (gradient accumulation into a weight read directly,
        # e.g. CLIP's position embedding table, belongs to the table's module)
        known = set(tr.module_types) | {""} | {g["param"].rsplit(".", 1)[0] for g in tr.meta["grads"]}
        passes = {n.pass_kind for n in tr.nodes}
        assert passes <= {"forward", "backward", "recompute", "optimizer"}
        for n in tr.nodes:
            if n.pass_kind in ("backward", "recompute"):
                assert n.module_path in known or any(k.startswith(n.module_path + ".") for k in known), (name, n)
        bwd = [n for n in tr.nodes if n.pass_kind == "backward"]
        attributed = sum(1 for n in bwd if n.module_path not in ("", "loss"))
        assert attributed / len(bwd) > 0.99, name
    # full fine-tuning: backward tensor-core work is 2x the forward's (2.5x for attention) in every stage
    step = steps["full"]
    for stage in ("vision.sam", "vision.clip", "decoder", "lm_head"):
        f = sum(c.tc_flops for n, c in _nodes(step) if c is not None and n.stage == stage and n.pass_kind == "forward")
        b = sum(c.tc_flops for n, c in _nodes(step) if c is not None and n.stage == stage
                and n.pass_kind == "backward")
        assert 1.9 * f < b < 2.5 * f, stage


# -- parameters, optimizer state, memory -------------------------------------------------------------------------

def _lora_params(rank: int) -> int:
    """LoRA on every decoder Linear: r*(in+out) per adapted layer, from the config's sizes."""
    lm = load_model(DEFAULT_MODEL)
    tc = lm.text_config
    h, dense, shared = tc.hidden_size, tc.intermediate_size, tc.moe_intermediate_size * tc.n_shared_experts
    attention = 4 * rank * (h + h)
    mlp = lambda inter: 3 * rank * (h + inter)  # noqa: E731  gate, up (h -> inter) and down (inter -> h)
    n_dense = 1  # first_k_dense_replace of the official config
    return tc.num_hidden_layers * attention + n_dense * mlp(dense) + (tc.num_hidden_layers - n_dense) * mlp(shared)


def test_trainable_parameter_counts(steps: dict[str, Step]) -> None:
    comps = load_model(DEFAULT_MODEL).params["components_built"]
    built = sum(comps.values())
    assert steps["full"].trace.meta["params"]["trainable"] == built
    assert steps["decoder_sgd"].trace.meta["params"]["trainable"] == (comps["embedding"] + comps["decoder"]
                                                                      + comps["lm_head"])
    lora = steps["lora_mixed_ckpt"].trace.meta["params"]
    assert lora["trainable"] == _lora_params(RANK) == 1_989_120
    assert lora["total"] == built + _lora_params(RANK)
    # every trainable tensor got a gradient (the unused CLIP patch conv is not built)
    for step in steps.values():
        grads = step.trace.meta["grads"]
        assert sum(g["bytes"] for g in grads) == step.trace.meta["params"]["trainable_bytes"]


def test_optimizer_state_bytes(steps: dict[str, Step]) -> None:
    # bf16 AdamW (HF's default run): two moments in the parameter dtype, one fp32 step counter per tensor
    meta = steps["full"].trace.meta
    n, tensors = meta["params"]["trainable"], len(meta["grads"])
    assert meta["optimizer_state_bytes"] == {"exp_avg": 2 * n, "exp_avg_sq": 2 * n, "step": 4 * tensors}
    # mixed precision: fp32 masters and fp32 moments, 12 B per trainable parameter
    meta = steps["lora_mixed_ckpt"].trace.meta
    n, tensors = meta["params"]["trainable"], len(meta["grads"])
    assert meta["optimizer_state_bytes"] == {"exp_avg": 4 * n, "exp_avg_sq": 4 * n, "master": 4 * n,
                                             "step": 4 * tensors}
    assert steps["decoder_sgd"].trace.meta["optimizer_state_bytes"] == {}  # HF's sgd: no momentum, no state


@pytest.mark.parametrize("name", list(CONFIGS))
def test_memory_components_sum_to_total(name: str, steps: dict[str, Step]) -> None:
    tr = steps[name].trace
    mem = train_memory(tr, device_bytes=80e9)
    pk = mem["peak"]
    parts = ("weights_bytes", "optimizer_state_bytes", "saved_activations_bytes", "gradients_bytes", "transient_bytes")
    assert sum(pk[k] for k in parts) == pk["allocated_bytes"]
    assert pk["allocated_bytes"] + pk["reserve_bytes"] == pk["total_bytes"]
    assert mem["weights_bytes"] == tr.meta["params"]["bytes"] + tr.meta["params"]["buffers_bytes"]
    assert 0 <= pk["gradients_bytes"] <= mem["gradients_bytes"]
    assert 0 <= pk["saved_activations_bytes"] <= mem["saved_activations_bytes"]
    assert 0 < mem["live_at_forward_end"]["saved_activations"] <= mem["saved_activations_bytes"]
    assert mem["fits"] == (pk["total_bytes"] <= 80e9)
    assert mem["headroom_bytes"] == 80e9 - pk["total_bytes"]


def test_saved_activations_measured_per_storage(steps: dict[str, Step]) -> None:
    saved = steps["full"].trace.meta["saved"]
    # every decoder layer saves its attention output and log-sum-exp (flash), and the loss its fp32 log-probs
    lse = [s for s in saved if s["shape"] == [1, HEADS, S] and s["dtype"] == "float32"]
    assert len(lse) == 12
    vocab = load_model(DEFAULT_MODEL).text_config.vocab_size
    assert any(s["bytes"] == S * vocab * 4 for s in saved)
    # no parameter counted as an activation
    total = steps["full"].trace.meta["params"]["bytes"]
    assert sum(s["bytes"] for s in saved) < total / 5


def test_checkpointing_trades_saved_memory_for_recompute(steps: dict[str, Step]) -> None:
    plain, ckpt = steps["decoder_sgd"], steps["decoder_sgd_ckpt"]
    mem_plain, mem_ckpt = train_memory(plain.trace), train_memory(ckpt.trace)
    assert mem_ckpt["saved_activations_bytes"] < mem_plain["saved_activations_bytes"] / 2
    assert mem_ckpt["peak"]["allocated_bytes"] < mem_plain["peak"]["allocated_bytes"]

    def flops(step: Step, part: str) -> float:
        return sum(c.tc_flops for n, c in _nodes(step) if c is not None and n.pass_kind == part)

    assert flops(plain, "recompute") == 0
    decoder_forward = sum(c.tc_flops for n, c in _nodes(plain) if c is not None and n.pass_kind == "forward"
                          and n.stage == "decoder")
    assert 0.5 * decoder_forward < flops(ckpt, "recompute") <= decoder_forward
    assert flops(ckpt, "forward") == flops(plain, "forward")
    assert flops(ckpt, "backward") == flops(plain, "backward")
    assert len(ckpt.trace.meta["checkpointed"]) == 12  # the decoder layers; frozen SAM/CLIP blocks are not
    recomputed = {n.module_path.split(".")[3] for n in ckpt.trace.nodes if n.pass_kind == "recompute"}
    assert recomputed == {str(i) for i in range(12)}


def test_optimizer_ops_attributed_to_stages(steps: dict[str, Step]) -> None:
    tr = steps["full"].trace
    fused = [n for n in tr.nodes if n.op.startswith("aten._fused_adamw_")]
    assert {n.stage for n in fused} == {"vision.sam", "vision.clip", "projector", "decoder", "lm_head"}
    assert all(n.pass_kind == "optimizer" for n in fused)
    clip = [n for n in tr.nodes if n.op.startswith("aten._foreach_norm")]
    assert len(clip) == 1 and clip[0].stage == "whole_model"
    assert is_inplace("aten._fused_adamw_.default") and is_inplace("aten.copy_.default")
    assert not is_inplace("aten.__and__.Tensor") and not is_inplace("aten.add.Tensor")


# -- CLI --------------------------------------------------------------------------------------------------------

def test_analyze_train_report(tmp_path: Path) -> None:
    kw: dict[str, Any] = dict(model=DEFAULT_MODEL, mode="tiny", crops=None, image_size=None, prompt_tokens=12,
                              output_tokens=20, batch=1, kv_len=None, tracer="dispatch", force=False, device="h200",
                              train=train_config("train", trainable="decoder", optimizer="sgd"))
    rep = analyze_command(**kw, out=tmp_path / "a", graphml=None, html=tmp_path / "step.html")
    analyze_command(**kw, out=tmp_path / "b", graphml=None)
    assert (tmp_path / "a" / "report.json").read_bytes() == (tmp_path / "b" / "report.json").read_bytes()
    schema = json.loads((ROOT / "specs" / "report-schema.json").read_text())
    jsonschema.validate(json.loads((tmp_path / "a" / "report.json").read_text()), schema,
                        cls=jsonschema.Draft202012Validator)
    t = rep["train"]
    assert "predictions" not in rep  # the inference phases are counted, not timed, with --phase train
    pr = t["predictions"]
    assert pr["step"]["device_s"] == pytest.approx(sum(p["device_s"] for p in pr["passes"].values()))
    assert pr["stages"]["decoder"]["passes"]["backward"]["device_s"] > pr["stages"]["decoder"]["passes"]["forward"][
        "device_s"] > 0
    assert pr["passes"]["optimizer"]["device_s"] > 0
    # batch 1 eager on the H200 lies inside the committed training measurements; the caveat is still a warning
    assert (pr["confidence"], pr["confidence_note"]) == ("validated",
                                                         "train eager batch 1 inside the measured range on h200")
    assert any(w.startswith("training step: validated") for w in rep["warnings"])
    page = (tmp_path / "step.html").read_text()
    assert "<h2>Training step</h2>" in page and 'id="train-passes"' in page and "optimizer states" in page
    assert 'id="train-chart"' in page and '"train-chart":' in page  # the per-pass chart and its figure
    assert f"{pr['passes']['backward']['device_s'] * 1e3:,.3f}" in page
    assert t["passes"]["total"]["flops"] == pytest.approx(sum(s["total"]["flops"] for s in t["stages"].values()))
    assert t["modules"][""]["total"]["flops"] == pytest.approx(t["passes"]["total"]["flops"])
    assert t["memory"]["fits"] is True
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert {"report.json", "train.md", "train_nodes.csv"} <= set(files)
    assert "| decoder | backward |" in (tmp_path / "a" / "train.md").read_text()


@pytest.mark.parametrize(("phase", "kw", "match"), [
    ("infer", {"trainable": "lora"}, "add --phase train"),
    ("eval", {}, "unknown --phase"),
    ("train", {"trainable": "all"}, "unknown --trainable"),
    ("train", {"optimizer": "adam"}, "unknown --optimizer"),
    ("train", {"lora_rank": 8}, "--trainable lora"),
    ("train", {"trainable": "lora", "lora_rank": 0}, "--lora-rank"),
    ("train", {"precision": "fp8"}, "unknown --precision"),
])
def test_train_option_rejections(phase: str, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(UserError, match=match):
        train_config(phase, **kw)
