"""The fixed calibration sweep: every op spec `dsocr-trace calibrate` times on a GPU.

Nothing here depends on the workloads a user will validate. Two sources:

1. the ops of a fixed set of calibration workloads (CALIBRATION_PREFILL, CALIBRATION_DECODE), traced on meta;
2. synthetic ladders made by resizing template ops of the model, layout preserved (`resize_like`):
   * every weight GEMM of the model over one M ladder (`M_LADDER`: 1, then steps of 1.25-1.75x, and both sides
     of every power-of-two tile edge from 64 up; powers of two themselves are left out so that batch sizes and
     token counts of held-out workloads do not land on a measured point by construction), and the routed
     experts' GEMMs as the official remote code runs them (one mm per expert at the expert's width: the shared
     experts' mm resized, `routed_expert_templates`) up to MAX_M_EXPERT rows;
   * SAM's rel-pos bmm (batch = rows of the window or view, M = images x heads x rows) over a ladder;
   * SAM's convolutions over (batch, side);
   * SDPA for each attention configuration of the model (decoder prefill causal, decode, SAM windows with a
     float bias, SAM global with a float bias, CLIP) over batch and sequence ladders;
   * the MoE grouped GEMMs over token counts, with uniform and skewed routing (the per-expert rows are in the
     spec, `offsets`);
   * memory-bound patterns (contiguous, broadcast, transposing copies, casts, cats, norms in bf16 and float32,
     softmax, gathers) over a size ladder.

Training steps (`build_train_sweep`) add the backward and recompute ops of CALIBRATION_TRAIN, traced on meta,
and each optimizer op of the model (fused AdamW/SGD, the foreach ops of gradient clipping) over lists of
OPT_COUNTS tensors of OPT_NUMEL elements: a multi-tensor kernel's time depends on its launches and chunks, not
on which parameters fill the list.

Every spec carries `sources`: the calibration workloads it came from, or "sweep:<family>". The GPU side is
`validate.opbench.run`; the fit is `kernels.fit`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

SCHEMA = "dsocr-trace/calsweep/1"
MODEL = "deepseek-ai/DeepSeek-OCR"
# (mode, crops, batch, prompt tokens): prefill calibration workloads
CALIBRATION_PREFILL: tuple[tuple[str, str | None, int, int], ...] = (
    ("tiny", None, 1, 12), ("small", None, 1, 12), ("base", None, 1, 12), ("large", None, 1, 12),
    ("gundam", "2x3", 1, 12), ("gundam", "3x3", 1, 12), ("base", None, 8, 12), ("base", None, 32, 12),
)
# (batch, KV lengths): decode calibration steps
CALIBRATION_DECODE: tuple[tuple[int, tuple[int, ...]], ...] = (
    (1, (300, 1000, 4000, 7000)), (8, (300, 1000, 4000, 7000)), (32, (300, 1000, 4000, 7000)),
)


def _ladder() -> tuple[int, ...]:
    out = {1, 3, 5, 7, 10, 14, 20, 28, 40, 56}
    p = 64
    while p <= 1 << 17:
        out.update({p - 1, p + 1, p * 5 // 4, p * 7 // 4})
        p *= 2
    return tuple(sorted(out))


M_LADDER = _ladder()
MAX_M_DECODER = 40000  # B16 x 1,300 prefill tokens = 20,800 rows, with margin
MAX_M_SAM = 170000  # B32 x 25 windows x 196 rows = 156,800
MAX_OUT_BYTES = 12 << 30  # skip sweep points whose output alone would exceed this
MAX_M_EXPERT = 8192  # rows one routed expert gets: B16 x 1,300 tokens x top-6 / 64 experts, x4 for skew


def workload_label(mode: str, crops: str | None, batch: int, prompt: int) -> str:
    return mode + (f":{crops}" if crops else "") + (f"@{batch}" if batch != 1 else "") + \
        (f"+p{prompt}" if prompt != 12 else "")


# -- layout-preserving resize ----------------------------------------------------------------------------
def dense_strides(shape: Sequence[int], like_strides: Sequence[int]) -> list[int]:
    """Strides of a dense tensor of `shape` whose dimensions are laid out in the order of `like_strides`
    (outermost = largest stride; broadcast (stride 0) dimensions stay broadcast)."""
    order = sorted(range(len(shape)), key=lambda d: (-like_strides[d], d))
    strides = [0] * len(shape)
    step = 1
    for d in reversed(order):
        if like_strides[d] == 0 and shape[d] != 1:
            strides[d] = 0
            continue
        strides[d] = step
        step *= max(1, shape[d])
    return strides


def resize_like(ref: dict[str, Any], shape: Sequence[int]) -> dict[str, Any]:
    """An input ref of a new shape with the template's dimension order, dense, offset 0."""
    return {**ref, "shape": list(shape), "strides": dense_strides(shape, ref["strides"]), "offset": 0}


def _spec(template: dict[str, Any], inputs: list[dict[str, Any]], family: str, **extra: Any) -> dict[str, Any]:
    return {**template, "inputs": inputs, "sources": [f"sweep:{family}"], **extra}


def _out_bytes(*dims: int, item: int = 2) -> int:
    n = item
    for d in dims:
        n *= d
    return n


# -- families ---------------------------------------------------------------------------------------------
def gemm_operands(template: dict[str, Any]) -> tuple[int, int, int, int]:
    """(index of x, index of W, K, N) of a weight GEMM template: x is the non-parameter 2-D input, W the 2-D
    parameter (stored either way round)."""
    ins = template["inputs"]
    act = next(i for i, r in enumerate(ins) if not r["param"] and len(r["shape"]) == 2)
    wi = next(i for i, r in enumerate(ins) if r["param"] and len(r["shape"]) == 2)
    k = ins[act]["shape"][1]
    w = ins[wi]["shape"]
    return act, wi, k, w[1] if w[0] == k else w[0]


def gemm_ladder(template: dict[str, Any], max_m: int) -> list[dict[str, Any]]:
    """A weight GEMM (mm: x @ W^T, addmm: b + x @ W^T) over the M ladder; x is the non-parameter 2-D input."""
    ins = template["inputs"]
    act, _, k, n = gemm_operands(template)
    out = []
    for m in M_LADDER:
        if m > max_m or _out_bytes(m, n) > MAX_OUT_BYTES:
            continue
        new = list(ins)
        new[act] = resize_like(ins[act], (m, k))
        out.append(_spec(template, new, "gemm", sweep={"m": m, "n": n, "k": k}))
    return out


def relpos_bmm_ladder(template: dict[str, Any]) -> list[dict[str, Any]]:
    """SAM's rel-pos einsum as bmm: (h, rows, 64) @ (h, 64, h): rows = images x 12 heads x h."""
    a, b = template["inputs"][:2]
    h = a["shape"][0]
    out = []
    for imgs in (1, 3, 7, 13, 25, 50, 100, 200, 400, 900):
        rows = imgs * 12 * h
        if _out_bytes(h, rows, h) > MAX_OUT_BYTES:
            continue
        out.append(_spec(template, [resize_like(a, (h, rows, a["shape"][2])), b], "bmm",
                         sweep={"batch": h, "m": rows, "n": b["shape"][2], "k": a["shape"][2]}))
    return out


def conv_ladder(template: dict[str, Any]) -> list[dict[str, Any]]:
    """A SAM convolution over batch x input side (the sides the model's views have, scaled to this layer)."""
    x, *rest = template["inputs"]
    _, c, side, _ = x["shape"]
    # this conv's input side at the 1024 view is `side`; the model's views are 512, 640, 1024 and 1280 px
    out = []
    for view in (512, 640, 1024, 1280):
        s = side * view // 1024
        for b in (1, 3, 5, 7, 11, 20):
            if _out_bytes(b, c, s, s) > MAX_OUT_BYTES // 4:
                continue
            out.append(_spec(template, [resize_like(x, (b, c, s, s)), *rest], "conv",
                             sweep={"batch": b, "side": s, "c_in": c}))
    return out


def attention_ladder(template: dict[str, Any], cases: Iterable[tuple[int, int, int]]) -> list[dict[str, Any]]:
    """SDPA of the template's configuration at (batch, q_len, kv_len) points; q/k/v (and the float bias) keep
    their dimension order."""
    ins = template["inputs"]
    a = template["attrs"]
    out = []
    for b, tq, tk in cases:
        h, d = a["heads"], a["head_dim"]
        new = [resize_like(ins[0], (b, h, tq, d)), resize_like(ins[1], (b, h, tk, d)),
               resize_like(ins[2], (b, h, tk, a.get("v_head_dim", d)))]
        if len(ins) > 3:
            mshape = [b if ins[3]["shape"][0] != 1 else 1, h if ins[3]["shape"][1] != 1 else 1, tq, tk]
            if _out_bytes(*mshape) > 8 << 30:
                continue
            new.append(resize_like(ins[3], mshape))
        out.append({**template, "inputs": new, "attrs": {**a, "batch": b, "q_len": tq, "kv_len": tk},
                    "sources": ["sweep:attention"]})
    return out


def _routing(tokens: int, experts: int, top_k: int, skew: float, rng: random.Random) -> list[int]:
    """Rows per expert: each token picks top_k distinct experts, with probability proportional to
    1 / (rank + 1)^skew (skew 0: uniform)."""
    weights = [1.0 / (e + 1) ** skew for e in range(experts)]
    counts = [0] * experts
    for _ in range(tokens):
        chosen: set[int] = set()
        while len(chosen) < top_k:
            chosen.add(rng.choices(range(experts), weights)[0])
        for e in chosen:
            counts[e] += 1
    order = list(range(experts))
    rng.shuffle(order)  # which experts are popular is arbitrary
    return [counts[order[e]] for e in range(experts)]


def grouped_ladder(template: dict[str, Any], top_k: int) -> list[dict[str, Any]]:
    x, w, offs = template["inputs"][:3]
    experts = w["shape"][0]
    rng = random.Random(0)
    out = []
    for tokens in (1, 3, 7, 13, 25, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600):
        for skew in (0.0, 1.2):
            counts = _routing(tokens, experts, top_k, skew, rng)
            rows = tokens * top_k
            cum, acc = [], 0
            for c in counts:
                acc += c
                cum.append(acc)
            out.append(_spec(template, [resize_like(x, (rows, x["shape"][1])), w, offs], "grouped_gemm",
                             offsets=cum, sweep={"tokens": tokens, "skew": skew, "expert_rows": counts}))
    return out


def _ref(shape: Sequence[int], dtype: str = "bfloat16", strides: Sequence[int] | None = None) -> dict[str, Any]:
    st = list(strides) if strides is not None else dense_strides(shape, list(range(len(shape), 0, -1)))
    return {"shape": list(shape), "strides": st, "dtype": dtype, "offset": 0, "param": False}


def _op(op: str, inputs: list[dict[str, Any]], args: list[Any], kwargs: dict[str, Any] | None = None
        ) -> dict[str, Any]:
    return {"op": op, "inputs": inputs, "call": {"args": args, "kwargs": kwargs or {}}, "attrs": {},
            "sources": ["sweep:memory"]}


T0, T1 = {"t": 0}, {"t": 1}
MEM_ELEMENTS = tuple(1 << s for s in range(11, 30, 2))  # 2 Ki .. 512 Mi elements


def memory_ladder() -> list[dict[str, Any]]:
    """Memory-bound patterns over a size ladder (rows of 1,280 or 768 where a row length matters)."""
    out = []
    for n in MEM_ELEMENTS:
        rows = max(1, n // 1280)
        r768 = max(1, n // 768)
        out += [
            _op("aten.add.Tensor", [_ref((rows, 1280)), _ref((rows, 1280))], [T0, T1]),
            _op("aten.mul.Tensor", [_ref((rows, 1280), "float32"), _ref((rows, 1), "float32")], [T0, T1]),
            _op("aten.mul.Tensor", [_ref((rows, 1280)), _ref((1280,))], [T0, T1]),
            _op("aten.gelu.default", [_ref((r768, 768))], [T0]),
            _op("aten.silu.default", [_ref((rows, 1280))], [T0]),
            # a transposing copy: (a, b, c) read through a (0, 2, 1) permutation
            _op("aten.clone.default", [_ref((max(1, rows // 64), 1280, 64), strides=(1280 * 64, 1, 1280))], [T0],
                {"memory_format": {"enum": "torch.contiguous_format"}}),
            _op("aten._to_copy.default", [_ref((rows, 1280))], [T0], {"dtype": {"dtype": "float32"}}),
            _op("aten._to_copy.default", [_ref((rows, 1280), "float32")], [T0], {"dtype": {"dtype": "bfloat16"}}),
            _op("aten.cat.default", [_ref((rows, 1280)), _ref((rows, 1280))], [[T0, T1], 0]),
            _op("aten.native_layer_norm.default", [_ref((r768, 768)), _ref((768,)), _ref((768,))],
                [T0, [768], {"t": 1}, {"t": 2}, 1e-6]),
            # float32 norms and adds: the remote code's vision under autocast (LayerNorm in float32, CLIP's
            # residual stream float32)
            _op("aten.native_layer_norm.default", [_ref((r768, 768), "float32"), _ref((768,), "float32"),
                                                   _ref((768,), "float32")], [T0, [768], {"t": 1}, {"t": 2}, 1e-6]),
            _op("aten.native_layer_norm.default", [_ref((max(1, n // 1024), 1024), "float32"),
                                                   _ref((1024,), "float32"), _ref((1024,), "float32")],
                [T0, [1024], {"t": 1}, {"t": 2}, 1e-5]),
            _op("aten.add.Tensor", [_ref((rows, 1280), "float32"), _ref((rows, 1280), "float32")], [T0, T1]),
            _op("aten._softmax.default", [_ref((max(1, n // 256), 256), "float32")], [T0, -1, False]),
            _op("aten.sum.dim_IntList", [_ref((rows, 1280), "float32")], [T0, [-1]]),
            _op("aten.mean.dim", [_ref((rows, 1280), "float32")], [T0, [-1], True]),
            _op("aten.index.Tensor", [_ref((rows, 1280)), _ref((rows,), "int64")], [T0, [T1]]),
        ]
        w = max(2, round((n / 12) ** 0.25))  # SAM's rel-pos bias: (B*12*T, W, 1) + (B*12*T, 1, W), T = W*W
        bt = 12 * w * w
        out.append(_op("aten.add.Tensor", [_ref((bt, w, 1)), _ref((bt, 1, w))], [T0, T1]))
    return out


# -- the whole sweep --------------------------------------------------------------------------------------
def calibration_workloads() -> list[tuple[str, Any, list[int]]]:
    """(label, Workload, decode KV lengths) of the fixed calibration set."""
    from dsocr_trace.workload import make_workload

    out: list[tuple[str, Any, list[int]]] = []
    for mode, crops, batch, prompt in CALIBRATION_PREFILL:
        out.append((workload_label(mode, crops, batch, prompt),
                    make_workload(mode, crops=crops, batch=batch, prompt_tokens=prompt, output_tokens=1), []))
    for batch, kvs in CALIBRATION_DECODE:
        out.append((f"decode@{batch}", make_workload("base", batch=batch, output_tokens=1), list(kvs)))
    return out


def _templates(specs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One template per synthetic family member, from the traced calibration ops."""
    t: dict[str, dict[str, Any]] = {}
    for s in specs.values():
        op, ins = s["op"], s["inputs"]
        if op in ("aten.mm.default", "aten.addmm.default"):
            w = next((r for r in ins if r["param"] and len(r["shape"]) == 2), None)
            if w is not None:
                t.setdefault(f"gemm:{op}:{w['shape'][0]}x{w['shape'][1]}", s)
        elif op == "aten.bmm.default" and len(ins[0]["shape"]) == 3 and ins[0]["shape"][2] == 64:
            t.setdefault(f"bmm:{ins[0]['shape'][0]}", s)
        elif op == "aten.convolution.default":
            w = ins[1]["shape"]
            t.setdefault(f"conv:{w[0]}x{w[1]}x{w[2]}:{s['call']['args'][3]}", s)
        elif op == "attention":
            a = s["attrs"]
            kind = ("decode" if a["q_len"] == 1 else "causal") if a["causal"] or a["q_len"] == 1 else \
                f"h{a['heads']}d{a['head_dim']}:{a['mask']}:{'window' if a['q_len'] == 196 else 'view'}"
            t.setdefault(f"attn:{kind}", s)
        elif op == "aten._grouped_mm.default":
            t.setdefault(f"grouped:{ins[1]['shape'][1]}x{ins[1]['shape'][2]}", s)
    return t


def routed_expert_templates(templates: dict[str, dict[str, Any]], width: int, shared_width: int
                            ) -> dict[str, dict[str, Any]]:
    """GEMM templates of one routed expert's gate/up (hidden -> width) and down (width -> hidden) products, made
    from the shared experts' mm (hidden <-> shared_width, the same x @ W^T layout): the remote code's expert loop
    (trace.remote) runs these shapes, which the native model's grouped GEMM never does."""
    out: dict[str, dict[str, Any]] = {}
    for key, t in sorted(templates.items()):
        if not key.startswith("gemm:aten.mm.default:"):
            continue
        ins = t["inputs"]
        act, wi, k, n = gemm_operands(t)
        if n == shared_width:
            k2, n2 = k, width
        elif k == shared_width:
            k2, n2 = width, n
        else:
            continue
        new = list(ins)
        new[act] = resize_like(ins[act], (ins[act]["shape"][0], k2))
        new[wi] = resize_like(ins[wi], (k2, n2) if ins[wi]["shape"][0] == k else (n2, k2))
        out[f"gemm:aten.mm.default:{new[wi]['shape'][0]}x{new[wi]['shape'][1]}"] = {**t, "inputs": new}
    return out


def _attention_cases(key: str, tmpl: dict[str, Any]) -> list[tuple[int, int, int]]:
    if key == "attn:causal":
        return [(b, t, t) for b in (1, 3, 6, 12, 24) for t in (80, 160, 320, 640, 1200, 2400, 4800, 7000)
                if b * t <= 60000]
    if key == "attn:decode":
        return [(b, 1, t) for b in (1, 3, 6, 12, 24, 40) for t in (100, 300, 700, 1500, 3000, 5000, 7000, 8191)]
    a = tmpl["attrs"]
    if "window" in key:
        return [(b, a["q_len"], a["kv_len"]) for b in (7, 13, 25, 45, 81, 150, 300, 500, 900)]
    if a["heads"] == 16:  # CLIP: 1 + (side/16)^2 positions per view
        return [(b, t, t) for t in (65, 101, 257, 401) for b in (1, 3, 5, 7, 11, 20, 36)]
    return [(b, t, t) for t in (1024, 1600, 4096, 6400) for b in (1, 3, 5, 7, 11, 20)]  # SAM global views


def build_sweep(model_id: str = MODEL) -> dict[str, Any]:
    """Trace the calibration workloads on meta and add the synthetic ladders: {"schema", "ops": {key: spec}}."""
    from dsocr_trace.models.source import load_config
    from dsocr_trace.validate.opbench import emit_sources

    traced = emit_sources(model_id, calibration_workloads())
    specs: dict[str, dict[str, Any]] = dict(traced)
    synth: list[dict[str, Any]] = []
    decoder_mm = ("aten.mm.default",)
    text = load_config(model_id)[0].get("language_config", {})
    width = int(text.get("moe_intermediate_size") or 0)
    shared = width * int(text.get("n_shared_experts") or 0)
    for tmpl in routed_expert_templates(_templates(traced), width, shared).values():
        synth += gemm_ladder(tmpl, MAX_M_EXPERT)
    for key, tmpl in sorted(_templates(traced).items()):
        fam = key.split(":")[0]
        if fam == "gemm":
            synth += gemm_ladder(tmpl, MAX_M_DECODER if tmpl["op"] in decoder_mm else MAX_M_SAM)
        elif fam == "bmm":
            synth += relpos_bmm_ladder(tmpl)
        elif fam == "conv":
            synth += conv_ladder(tmpl)
        elif fam == "attn":
            synth += attention_ladder(tmpl, _attention_cases(key, tmpl))
        elif fam == "grouped":
            synth += grouped_ladder(tmpl, top_k=6)
    synth += memory_ladder()
    from dsocr_trace.validate.opbench import spec_key

    for s in synth:
        specs.setdefault(spec_key(s), s)
    return {"schema": SCHEMA, "model": model_id,
            "workloads": [lbl for lbl, _, _ in calibration_workloads()], "ops": dict(sorted(specs.items()))}


# -- training steps: backward kernels traced, optimizer kernels synthetic ------------------------------------
# (mode, crops, batch, trainable, LoRA rank, checkpointing): the training steps whose backward (and recompute)
# ops are timed. The committed training validation runs tiny and base at batch 1/2/4 with LoRA rank 16 and no
# checkpointing; none of these steps is one of them.
CALIBRATION_TRAIN: tuple[tuple[str, str | None, int, str, int, bool], ...] = (
    ("small", None, 1, "full", 16, False), ("large", None, 1, "decoder", 16, True), ("base", None, 3, "lora", 8, False),
)
# an optimizer step depends only on the parameter shapes, identical for every workload of one trainable set:
# its kernels are timed on synthetic tensor lists, never on the model's own lists
OPT_NUMEL = (12_000, 90_000, 700_000, 5_000_000, 30_000_000)
OPT_COUNTS = (3, 20, 90, 300)
OPT_MAX_ELEMENTS = 400_000_000
_OPT_TEMPLATES = ("aten._fused_adamw_.default", "aten._fused_adam_.default", "aten._fused_sgd_.default",
                  "aten._foreach_norm.Scalar", "aten._foreach_mul_.Tensor", "aten._foreach_add_.Scalar",
                  "aten._foreach_copy_.default", "aten._foreach_zero_.default")


def train_label(mode: str, crops: str | None, batch: int, trainable: str, rank: int, ckpt: bool) -> str:
    return "train:" + workload_label(mode, crops, batch, 12) + f"/{trainable}" + \
        (f"-r{rank}" if trainable == "lora" else "") + ("+ckpt" if ckpt else "")


def _resized_lists(tmpl: dict[str, Any], count: int, numel: int) -> dict[str, Any]:
    """The template optimizer op with every tensor list replaced by `count` 1-D tensors of `numel` elements
    (scalar step counters stay scalars); single tensors and scalars kept."""
    inputs: list[dict[str, Any]] = []

    def new(ref: dict[str, Any]) -> dict[str, Any]:
        shape = [] if not ref["shape"] or math.prod(ref["shape"]) == 1 else [numel]
        inputs.append({**_ref(shape, ref["dtype"]), "param": False})
        return {"t": len(inputs) - 1}

    args: list[Any] = []
    for a in tmpl["call"]["args"]:
        if isinstance(a, list) and a and all(isinstance(v, dict) and set(v) == {"t"} for v in a):
            args.append([new(tmpl["inputs"][a[0]["t"]]) for _ in range(count)])
        elif isinstance(a, dict) and set(a) == {"t"}:
            args.append(new(tmpl["inputs"][a["t"]]))
        else:
            args.append(a)
    kwargs = {}
    for k, v in tmpl["call"]["kwargs"].items():
        kwargs[k] = new(tmpl["inputs"][v["t"]]) if isinstance(v, dict) and set(v) == {"t"} else v
    return {"op": tmpl["op"], "inputs": inputs, "call": {"args": args, "kwargs": kwargs}, "attrs": {},
            "sources": ["sweep:optimizer"]}


def optimizer_ladder(templates: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each optimizer template over lists of OPT_COUNTS tensors of OPT_NUMEL elements (total capped)."""
    return [_resized_lists(t, c, n) for t in templates for c in OPT_COUNTS for n in OPT_NUMEL
            if c * n <= OPT_MAX_ELEMENTS]


def build_train_sweep(model_id: str = MODEL) -> dict[str, Any]:
    """Backward and recompute ops of the CALIBRATION_TRAIN steps, traced on meta, plus the optimizer ladder
    (templates: the optimizer ops of the first step): {"schema", "workloads", "ops": {key: spec}}."""
    from dsocr_trace.costs import cost_of
    from dsocr_trace.models.training import TrainConfig
    from dsocr_trace.trace.opkey import op_key
    from dsocr_trace.train.analysis import trace_train
    from dsocr_trace.validate.opbench import _SKIP, spec_key, spec_of
    from dsocr_trace.workload import make_workload

    specs: dict[str, dict[str, Any]] = {}
    templates: dict[str, dict[str, Any]] = {}
    labels = []
    for mode, crops, batch, trainable, rank, ckpt in CALIBRATION_TRAIN:
        label = train_label(mode, crops, batch, trainable, rank, ckpt)
        labels.append(label)
        cfg = TrainConfig(trainable=trainable, lora_rank=rank, checkpointing=ckpt)
        tr = trace_train(model_id, make_workload(mode, crops=crops, batch=batch, output_tokens=1), cfg)
        for n in tr.nodes:
            c = cost_of(n)
            if c is None or c.kernels == 0 or n.op.startswith(_SKIP):
                continue
            if n.pass_kind == "optimizer":
                if n.op in _OPT_TEMPLATES:
                    templates.setdefault(n.op, spec_of(n))
                continue
            if n.pass_kind not in ("backward", "recompute"):
                continue
            key = op_key(n)
            if key is None:
                continue
            spec = specs.setdefault(key, {**spec_of(n), "sources": []})
            if label not in spec["sources"]:
                spec["sources"].append(label)
    for s in optimizer_ladder([templates[k] for k in sorted(templates)]):
        specs.setdefault(spec_key(s), s)
    return {"schema": SCHEMA, "model": model_id, "workloads": labels, "ops": dict(sorted(specs.items()))}
