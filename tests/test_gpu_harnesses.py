"""The training-step and torch.compile GPU harnesses: their profiler walk on hand-made events, and a CPU smoke run
of each on a shrunk model (2 decoder layers, 2 SAM blocks, 1 CLIP block, narrow widths; started together)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dsocr_trace.trace.ir import stage_of
from dsocr_trace.validate.compile_harness import kernel_table, validate_compiled_result
from dsocr_trace.validate.profiling import walk_step
from dsocr_trace.validate.train_harness import summarise_train, validate_train_result, walk_train_step

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "src" / "dsocr_trace" / "data" / "deepseek-ocr-config.json"


def _ev(name: str, kernels: tuple[float, ...] = (), children: tuple[Any, ...] = (), seq: int = -1) -> Any:
    ev = SimpleNamespace(name=name, kernels=[SimpleNamespace(name="k", duration=d) for d in kernels],
                         cpu_children=list(children), cpu_parent=None, sequence_nr=seq, self_cpu_time_total=0.0)
    for ch in ev.cpu_children:
        ch.cpu_parent = ev
    return ev


def _flatten(ev: Any) -> list[Any]:
    return [ev] + [e for ch in ev.cpu_children for e in _flatten(ch)]


def test_walk_step_names_kernels_under_their_innermost_range() -> None:
    def op(name: str, kernels: tuple[tuple[str, float], ...]) -> Any:
        return SimpleNamespace(name=name, kernels=[SimpleNamespace(name=k, duration=d) for k, d in kernels],
                               cpu_children=[], cpu_parent=None)

    sam = SimpleNamespace(name="mod:model.sam_model", kernels=[], cpu_parent=None, cpu_children=[
        op("aten::mm", (("gemm_a", 5.0), ("gemm_a", 3.0))), op("aten::add", (("triton_poi_0", 1.0),))])
    step = SimpleNamespace(name="dsocr:step", kernels=[], cpu_parent=None,
                           cpu_children=[sam, op("aten::cat", (("cat_kernel", 2.0),))])
    names: dict[str, dict[str, list[float]]] = {}
    for _ in range(2):  # two profiled steps
        w = walk_step(step, names=names)
    assert w["incl_us"]["model.sam_model"] == 9.0 and w["total_us"] == 11.0
    assert names == {"model.sam_model": {"gemm_a": [4, 16.0], "triton_poi_0": [2, 2.0]}, "": {"cat_kernel": [2, 4.0]}}
    # per step, longest first
    assert kernel_table(names, 2) == {"": [["cat_kernel", 1.0, 2.0]],
                                      "model.sam_model": [["gemm_a", 2.0, 8.0], ["triton_poi_0", 1.0, 1.0]]}


def test_walk_attributes_backward_by_sequence_number() -> None:
    a = "model.language_model.layers.0.mlp"
    b = "model.language_model.layers.0.self_attn"
    fwd = _ev("dsocr:forward", children=(
        _ev("mod:" + a, children=(_ev("aten::linear", children=(_ev("aten::mm", (3.0,), seq=5),), seq=5),)),
        _ev("mod:" + b, children=(_ev("aten::add", (1.0,), seq=6),)),
    ))
    bwd = _ev("dsocr:backward", children=(_ev("aten::ones_like", (0.5,)),))
    # the engine's nodes (another thread on a GPU: no parent); node 6 recomputes a checkpointed child first
    node5 = _ev("autograd::engine::evaluate_function: MmBackward0", seq=5,
                children=(_ev("MmBackward0", children=(_ev("aten::mm", (6.0,)), _ev("aten::mm", (6.0,)))),))
    node6 = _ev("autograd::engine::evaluate_function: AddBackward0", seq=6,
                children=(_ev("mod:" + b, children=(_ev("aten::add", (1.0,), seq=9),)), _ev("aten::mul", (2.0,))))
    opt = _ev("dsocr:optimizer", children=(
        _ev("opt:clip", children=(_ev("aten::_foreach_norm", (2.0,)),)),
        _ev("opt:decoder", children=(_ev("aten::_fused_adamw_", (4.0,)),)),
    ))
    events = [e for root in (fwd, bwd, node5, node6, opt) for e in _flatten(root)]
    w = walk_train_step(events)
    assert w["modules"] == {f"forward|{a}": [3.0, 1], f"forward|{b}": [1.0, 1], "backward|loss": [0.5, 1],
                            f"backward|{a}": [12.0, 2], f"backward|{b}": [2.0, 1], f"recompute|{b}": [1.0, 1]}
    assert w["optimizer"] == {"clip": [2.0, 1], "decoder": [4.0, 1]}
    s = summarise_train([w, w], stage_of)
    dec = s["stages"]["decoder"]["passes"]
    assert dec["forward"]["device_s"] == pytest.approx(4e-6)
    assert dec["backward"]["device_s"] == pytest.approx(14e-6)
    assert dec["recompute"]["device_s"] == pytest.approx(1e-6)
    assert dec["optimizer"]["device_s"] == pytest.approx(4e-6)
    assert s["stages"]["lm_head"]["passes"]["backward"]["device_s"] == pytest.approx(0.5e-6)  # the loss
    assert s["stages"]["whole_model"]["passes"]["optimizer"]["kernels"] == 1
    assert s["total"]["device_s"] == pytest.approx(25.5e-6)
    assert s["total"]["kernels"] == 9
    assert s["spread"]["total"] == 0.0


def _small_config(path: Path) -> Path:
    cfg = json.loads(CONFIG.read_text())
    for d in (cfg, cfg["language_config"]):
        d.update(num_hidden_layers=2, n_routed_experts=8, num_experts_per_tok=2, hidden_size=256,
                 intermediate_size=512, moe_intermediate_size=128, num_attention_heads=2, num_key_value_heads=2)
    width = cfg["vision_config"]["width"]
    width["sam_vit_b"].update(layers=2, global_attn_indexes=[1], width=96, heads=2, downsample_channels=[64, 128])
    width["clip-l-14-224"].update(layers=1, width=128, heads=2)
    cfg["projector_config"]["input_dim"] = 256
    path.write_text(json.dumps(cfg))
    return path


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess[str], Any]]:
    d = tmp_path_factory.mktemp("harness")
    cfg = str(_small_config(d / "config.json"))
    common = ["--device", "cpu", "--config", cfg, "--quick"]
    runs = {
        "infer": ["dsocr_trace.validate.harness", "--out", str(d / "infer"), "--modes", "tiny", "--decode", "1:16",
                  "--trace", "none", *common],
        "train": ["dsocr_trace.validate.train_harness", "--out", str(d / "train"), "--modes", "tiny", "--batches",
                  "1", "--trainable", "lora", "--checkpointing", "on", *common],
        "compile": ["dsocr_trace.validate.compile_harness", "--out", str(d / "compile"), "--modes", "tiny",
                    "--decode-kv", "16", "--batches", "1", "--backend", "eager", *common],
    }
    procs = {name: subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True) for name, argv in runs.items()}
    out = {}
    for name, p in procs.items():
        log, _ = p.communicate(timeout=600)
        doc = json.loads((d / name / "measured.json").read_text()) if (d / name / "measured.json").exists() else None
        out[name] = (subprocess.CompletedProcess(p.args, p.returncode, log, ""), doc)
    return out


def test_inference_harness_smoke(smoke: dict[str, Any]) -> None:
    """The inference harness on CPU fills the one measured record: its own check and the schema compare reads."""
    from dsocr_trace.validate.harness import validate_result
    from dsocr_trace.validate.inputs import check_measured

    proc, doc = smoke["infer"]
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert doc is not None and validate_result(doc) == []
    runs = {(r["workload"]["phase"], r["execution"]) for r in doc["runs"]}
    assert runs == {("prefill", "eager"), ("decode", "eager")}  # no CUDA graph on the CPU
    pre = next(r for r in doc["runs"] if r["workload"]["phase"] == "prefill")
    assert pre["total"]["host_ops"] > 0 and set(pre["stages"]) >= {"vision.sam", "vision.clip", "decoder"}
    assert doc["config"]["quick"] is True and doc["config"]["repeats"] == 1
    check_measured(doc, "measured.json")  # the typed record (inputs.MeasuredFile) accepts it


def test_train_harness_smoke(smoke: dict[str, Any]) -> None:
    proc, doc = smoke["train"]
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert validate_train_result(doc) == []
    (run,) = doc["runs"]
    assert run["workload"]["phase"] == "train" and run["train"]["trainable"] == "lora"
    assert run["train"]["checkpointing"] is True
    st = run["stages"]
    for part in ("forward", "backward", "recompute", "optimizer"):  # LoRA lives in the decoder
        assert st["decoder"]["passes"][part]["kernels"] > 0, part
    assert st["vision.sam"]["passes"]["forward"]["kernels"] > 0
    assert st["vision.sam"]["passes"]["backward"]["kernels"] == 0  # frozen: no backward through SAM
    assert run["checks"]["loss_finite"]
    assert run["memory"]["optimizer_state_bytes"] > 0 and run["memory"]["max_allocated_bytes"] is None  # CPU


def test_compile_harness_smoke(smoke: dict[str, Any]) -> None:
    proc, doc = smoke["compile"]
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert validate_compiled_result(doc) == []
    runs = {(r["workload"]["phase"], r["execution"]): r for r in doc["runs"]}
    assert set(runs) == {("prefill", "eager"), ("prefill", "compiled"), ("decode", "eager"), ("decode", "compiled")}
    assert set(runs["prefill", "compiled"]["stages"]) == {"vision.sam", "vision.clip", "projector", "decoder",
                                                          "lm_head"}
    comp = runs["decode", "compiled"]["compile"]
    assert comp["cache"] == "StaticCache" and comp["graphs"] >= 1 and comp["compiled"] == ["model.language_model",
                                                                                            "lm_head"]
    assert runs["decode", "compiled"]["workload"]["kv_len"] == 16
