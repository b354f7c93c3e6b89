"""torch.autocast as a trace pass, and the remote deepencoder's vision ops (trace.remote_vision)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from dsocr_trace.analyze import run_analysis
from dsocr_trace.costs.base import CostOptions
from dsocr_trace.costs.reduction import RADIX_SORT_LAUNCHES, SMALL_SORT_LAUNCHES, sort
from dsocr_trace.trace.autocast import autocast_nodes
from dsocr_trace.trace.ir import OpNode, TensorRef
from dsocr_trace.workload import make_workload

MODEL = "deepseek-ai/DeepSeek-OCR"
SAM = "model.vision_tower.sam_encoder"
CLIP = "model.vision_tower.vision_encoder"


def _t(shape: tuple[int, ...], dtype: str = "bfloat16", producer: tuple[int, int] | None = None,
       param: str | None = None) -> TensorRef:
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= s
    return TensorRef(shape=shape, dtype=dtype, strides=tuple(reversed(strides)), producer=producer, param=param)


def _node(i: int, op: str, ins: list[TensorRef], outs: list[TensorRef], on_cpu: bool = False) -> OpNode:
    return OpNode(id=i, op=op, module_path="m", module_type="M", stage="vision.sam", inputs=ins, outputs=outs,
                  attrs={"on_cpu": True} if on_cpu else {}, pycall=i)


def _chain() -> list[OpNode]:
    x = (4, 8)
    return [
        _node(0, "aten.native_layer_norm.default", [_t(x), _t((8,), param="w"), _t((8,), param="b")],
              [_t(x, producer=(0, 0)), _t((4, 1), "float32"), _t((4, 1), "float32")]),
        _node(1, "aten.constant_pad_nd.default", [_t(x, producer=(0, 0))], [_t((4, 10), producer=(1, 0))]),
        _node(2, "aten.addmm.default", [_t((6,), param="bias"), _t((4, 10), producer=(1, 0)),
                                        _t((10, 6), param="wt")], [_t((4, 6), producer=(2, 0))]),
        _node(3, "aten._to_copy.default", [_t((4, 6), producer=(2, 0))], [_t((4, 6), "float32", (3, 0))]),
        _node(4, "aten.add.Tensor", [_t((4, 6), producer=(2, 0)), _t((4, 6), producer=(2, 0))],
              [_t((4, 6), producer=(4, 0))]),
    ]


def test_autocast_casts_around_float32_ops() -> None:
    ids = itertools.count(100)
    out = autocast_nodes(_chain(), lambda n: True, lambda: next(ids))
    ops = [n.op for n in out]
    # layer_norm: input, weight and bias cast up by their own kernels, the norm in float32
    assert ops[:4] == ["aten._to_copy.default"] * 3 + ["aten.native_layer_norm.default"]
    ln = out[3]
    assert all(t.dtype == "float32" for t in ln.inputs) and ln.outputs[0].dtype == "float32"
    assert {n.pycall for n in out[:4]} == {0}  # casts share the op's Python-level call
    pad = out[4]
    assert pad.inputs[0].dtype == "float32" and pad.outputs[0].dtype == "float32"  # promotion carries it on
    # the GEMM casts its float32 activation down (weights already bf16: no cast)
    assert ops[5:7] == ["aten._to_copy.default", "aten.addmm.default"]
    gemm = out[6]
    assert [t.dtype for t in gemm.inputs] == ["bfloat16"] * 3 and gemm.outputs[0].dtype == "bfloat16"
    assert gemm.inputs[1].producer == (out[5].id, 0)
    assert out[7].outputs[0].dtype == "float32"  # an explicit cast keeps what the code asked for
    assert out[8].outputs[0].dtype == "bfloat16"  # bf16 + bf16 stays bf16


def test_autocast_leaves_out_of_scope_and_host_ops() -> None:
    nodes = _chain()
    same = autocast_nodes(nodes, lambda n: False, lambda: 0)
    assert same == nodes
    host = [_node(0, "aten.native_layer_norm.default", [_t((2, 2))], [_t((2, 2), producer=(0, 0))], on_cpu=True)]
    assert autocast_nodes(host, lambda n: True, lambda: 1) == host


@pytest.fixture(scope="module")
def base() -> tuple[Any, Any]:
    wl = make_workload("base")
    return run_analysis(MODEL, wl), run_analysis(MODEL, wl, implementation="remote")


def _ops(a: Any, prefix: str) -> list[OpNode]:
    return [n for n in a.traces["prefill"].nodes if n.module_path.startswith(prefix) and not n.is_view]


def test_remote_sam_as_the_remote_file_runs_it(base: tuple[Any, Any]) -> None:
    native, remote = base
    attn = _ops(remote, f"{SAM}.layers.2.attn")
    # the coordinate grid is built on the GPU; the rel-pos table (already 127 long) is not interpolated
    assert not any(n.attrs.get("on_cpu") for n in attn)
    assert not any("upsample" in n.op for n in attn)
    # (rel_h + rel_w).view(): no copy of the (heads x tokens x tokens) bias
    big = 12 * 4096 * 4096
    made = [n.op for n in attn if n.outputs and n.outputs[0].numel == big and remote.costs["prefill"].eager[n.id].bytes]
    assert made == ["aten.add.Tensor"]
    add = next(n for n in attn if n.op == "aten.add.Tensor" and n.outputs[0].numel == big)
    assert all(t.is_contiguous for t in add.inputs)  # rel_h, rel_w copied contiguous first
    assert [n.op for n in _ops(native, f"{SAM}.layers.2.attn") if n.outputs and n.outputs[0].numel == big
            and native.costs["prefill"].eager[n.id].bytes] == ["aten.add.Tensor", "aten.clone.default"]
    # autocast: each LayerNorm in float32 after three casts, the next GEMM casting back
    ln = _ops(remote, f"{SAM}.layers.2.layer_norm1")
    assert [n.op for n in ln] == ["aten._to_copy.default"] * 3 + ["aten.native_layer_norm.default"]
    assert ln[-1].outputs[0].dtype == "float32"
    assert [n.op for n in _ops(remote, f"{SAM}.layers.2.attn.qkv")] == ["aten._to_copy.default", "aten.addmm.default"]
    # windowed blocks pad and partition the float32 norm output
    assert {n.outputs[0].dtype for n in _ops(remote, f"{SAM}.layers.0") if n.op == "aten.constant_pad_nd.default"} \
        == {"float32"}
    # the neck's LayerNorm2d written out: ten ops, pow in float32 by autocast
    neck = _ops(remote, f"{SAM}.neck.layer_norm1")
    assert len(neck) == 11 and remote.traces["prefill"].module_types[f"{SAM}.neck.layer_norm1"] == "LayerNorm2d"
    assert [n.op for n in _ops(remote, SAM) if n.module_path == SAM] == ["aten.add.Tensor", "aten.clone.default"]


def test_remote_clip_as_the_remote_file_runs_it(base: tuple[Any, Any]) -> None:
    _, remote = base
    layer = f"{CLIP}.encoder.layers.3"
    gemms = [n for n in _ops(remote, layer) if n.op == "aten.addmm.default"]
    assert [n.module_path.rsplit(".", 1)[-1] for n in gemms] == ["qkv_proj", "out_proj", "fc1", "fc2"]
    assert gemms[0].outputs[0].shape == (257, 3072)
    act = _ops(remote, f"{layer}.mlp.activation_fn")
    assert len(act) == 1 and "quick_gelu" in str(act[0].attrs["fused"]) and act[0].outputs[0].dtype == "float32"
    assert [n.op for n in _ops(remote, f"{layer}.mlp.fc2")] == ["aten._to_copy.default", "aten.addmm.default"]
    # a plain pre_layrnorm under autocast: the residual stream stays float32, later norms cast weight and bias only
    pre = _ops(remote, f"{CLIP}.pre_layrnorm")
    assert [n.op for n in pre][-1] == "aten.native_layer_norm.default" and pre[-1].outputs[0].dtype == "float32"
    ln = _ops(remote, f"{layer}.layer_norm1")
    assert [n.op for n in ln] == ["aten._to_copy.default"] * 2 + ["aten.native_layer_norm.default"]
    adds = [n for n in _ops(remote, layer) if n.op == "aten.add.Tensor" and n.module_path == layer]
    assert len(adds) == 2 and all(n.outputs[0].dtype == "float32" for n in adds)


def test_remote_vision_is_whole(base: tuple[Any, Any]) -> None:
    """Every rewritten op is costed, ids run in order and every producer is an earlier op."""
    _, remote = base
    tr = remote.traces["prefill"]
    assert remote.costs["prefill"].uncosted == {}
    assert [n.id for n in tr.nodes] == list(range(len(tr.nodes)))
    for n in tr.nodes:
        for t in n.inputs:
            assert t.producer is None or t.producer[0] < n.id, n
    assert not any(p.endswith("self_attn.q_proj") for p in tr.module_calls if p.startswith(CLIP))


def test_sort_launches_follow_aten() -> None:
    def node(n: int) -> OpNode:
        return _node(0, "aten.sort.default", [_t((n,), "int64")], [_t((n,), "int64"), _t((n,), "int64")])

    assert sort(node(1716), CostOptions()).kernels == SMALL_SORT_LAUNCHES
    assert sort(node(54912), CostOptions()).kernels == RADIX_SORT_LAUNCHES
