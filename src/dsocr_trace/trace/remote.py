"""The official remote code (the hub's `modeling_deepseekocr.py` under transformers 4.46.3, run as its README
runs `model.infer`) as a rewrite of the traced transformers-native graph.

The remote code cannot be traced here: it needs transformers 4.46.3 (the tool runs 5.x), and its MoE reads the
router's token counts to the host (`tokens_per_expert.cpu()`) to drive a Python loop over the experts, which a
meta tensor cannot answer. The rewrite keeps every traced op the two implementations share and replaces, from
the remote files as read, what differs (each OpNode built here is costed by the ordinary rule registry):

* MoE (`DeepseekV2MoE.moe_infer`): counts by scatter + sum, argsort of the token-expert pairs, a gather of the
  sorted rows, the counts copied to the host (a sync per MoE layer), then per expert with rows: gate_proj,
  SiLU, up_proj, multiply, down_proj (5 kernels, their GEMMs at that expert's rows); the outputs concatenated,
  scattered back with `index_put`, weighted in fp32 and summed. Rows per expert come from the routing model;
* the router under `infer()`'s autocast: the fp32 casts of hidden state and weight, then F.linear autocast back
  to bf16 (two more casts) and a bf16 GEMM;
* decoder attention: `LlamaAttention` (eager: Q@K^T, /sqrt(d), + mask, fp32 softmax, cast, @V, transpose
  copy) or `LlamaFlashAttention2` (one flash kernel, kept as traced); RoPE's cos/sin recomputed in every layer
  (the model-level rotary ops copied into each layer);
* the 4-D mask of `_prepare_4d_causal_attention_mask` instead of transformers 5's mask functions;
* prefill: the vision branch's two `torch.sum(...).item()` checks (host syncs);
* decode, in `generate()` as `infer()` sets it: per token, the prepare-inputs ops, the last-token logits copy,
  the no-repeat-20-gram processor (the sequence read to the host, then Python over its n-grams), argmax,
  the unfinished-sequence arithmetic, the input-ids and mask appends, the streamer's read of the token, the
  eos check and the stop test's `.item()`.
The vision encoders keep the native trace (the remote deepencoder's kernels differ in detail; validation says
by how much).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

from attrs import evolve

from dsocr_trace.errors import UserError
from dsocr_trace.trace.ir import ATTENTION, MOE_EXPERTS, OpNode, TensorRef, Trace, contiguous_strides
from dsocr_trace.trace.remote_vision import VISION_STAGES, remote_vision_trace

IMPLEMENTATIONS = ("native", "remote", "remote-flash")
NO_REPEAT_NGRAM = 20  # infer()'s no_repeat_ngram_size
# Python work of the no-repeat n-gram processor per n-gram of the sequence (a 20-tuple built, a dict updated)
# in units of one dispatched CUDA torch call's host time: 1.3-2.6 us per n-gram measured on the dev CPU
# (benchmarks/results/remote/ngram_cpu.txt) over the ~25 us per call of the H200 hosts (profiles' host_op_s)
NGRAM_HOST_CALLS = 0.08
RowsFn = Callable[[int, int, int, int], tuple[int, ...]]  # (layer, tokens, experts, top_k) -> rows per expert



def _t(shape: Iterable[int], dtype: str = "bfloat16", param: str | None = None,
       strides: tuple[int, ...] | None = None) -> TensorRef:
    sh = tuple(int(s) for s in shape)
    return TensorRef(shape=sh, dtype=dtype, strides=strides if strides is not None else contiguous_strides(sh),
                     param=param)


class _Writer:
    """Appends nodes with fresh ids, one Python-level call each unless told to share the previous one."""

    def __init__(self, trace: Trace) -> None:
        self.nodes: list[OpNode] = []
        self.remap: dict[int, int] = {}
        self.copied: set[int] = set()  # nodes from copy_block, whose groups are already remapped
        self.pycall = max((n.pycall for n in trace.nodes), default=0) + 1
        self.module_types = dict(trace.module_types)
        self.module_calls = dict(trace.module_calls)

    def _ref(self, t: TensorRef, ids: dict[int, int]) -> TensorRef:
        """`t` with its producer's id in the new numbering (none where the producer was rewritten away)."""
        if t.producer is None:
            return t
        nid = ids.get(t.producer[0])
        return evolve(t, producer=None if nid is None else (nid, t.producer[1]))

    def keep(self, n: OpNode) -> None:
        self.remap[n.id] = len(self.nodes)
        new = OpNode(id=len(self.nodes), op=n.op, module_path=n.module_path, module_type=n.module_type,
                     stage=n.stage, inputs=[self._ref(t, self.remap) for t in n.inputs],
                     outputs=[self._ref(t, self.remap) for t in n.outputs], attrs=dict(n.attrs), is_view=n.is_view,
                     group=n.group, members=list(n.members), sync=n.sync, call=None, pycall=n.pycall,
                     pass_kind=n.pass_kind)
        self.nodes.append(new)

    def copy_block(self, block: list[OpNode]) -> None:
        """Append a copy of `block`: its semantic groups remapped inside it, its Python calls renumbered."""
        local: dict[int, int] = {}
        base = self.pycall + 1
        top = base
        start = len(self.nodes)
        for n in block:
            pc = n.pycall + base if n.pycall >= 0 else -1
            top = max(top, pc)
            local[n.id] = len(self.nodes)
            self.copied.add(len(self.nodes))
            self.nodes.append(OpNode(id=len(self.nodes), op=n.op, module_path=n.module_path,
                                     module_type=n.module_type, stage=n.stage,
                                     inputs=[self._ref(t, local) for t in n.inputs],
                                     outputs=[self._ref(t, local) for t in n.outputs],
                                     attrs=dict(n.attrs), is_view=n.is_view, group=n.group, members=list(n.members),
                                     sync=n.sync, pycall=pc, pass_kind=n.pass_kind))
        for n in self.nodes[start:]:
            n.members = [local[m] for m in n.members if m in local]
            n.group = local.get(n.group) if n.group is not None else None
        self.pycall = top + 1

    def add(self, op: str, path: str, mtype: str, stage: str, ins: list[TensorRef], outs: list[TensorRef],
            sync: bool = False, view: bool = False, attrs: dict[str, object] | None = None) -> None:
        self.pycall += 1
        self.nodes.append(OpNode(id=len(self.nodes), op=op, module_path=path, module_type=mtype, stage=stage,
                                 inputs=[self._ref(t, self.remap) for t in ins],
                                 outputs=[self._ref(t, self.remap) for t in outs], attrs=dict(attrs or {}),
                                 is_view=view, sync=sync,
                                 pycall=self.pycall))

    def module(self, path: str, mtype: str, calls: int = 1) -> None:
        self.module_types.setdefault(path, mtype)
        self.module_calls[path] = self.module_calls.get(path, 0) + calls

    def fix_groups(self) -> None:
        """Semantic groups kept whole point at their members' (and members at their group's) new ids."""
        for n in self.nodes:
            if n.id in self.copied:
                continue
            if n.members:
                n.members = [self.remap[m] for m in n.members if m in self.remap]
            if n.group is not None:
                n.group = self.remap.get(n.group)


def _layer_of(path: str) -> int | None:
    parts = path.split(".")
    for a, b in itertools.pairwise(parts):
        if a == "layers" and b.isdigit():
            return int(b)
    return None


def _moe_loop(w: _Writer, node: OpNode, rows_fn: RowsFn) -> None:
    a = node.attrs
    t, k, e, h, i = a["tokens"], a["top_k"], a["n_experts"], a["hidden"], a["intermediate"]
    mlp = node.module_path.rsplit(".", 1)[0]
    st = node.stage
    layer = _layer_of(node.module_path) or 0
    tk = t * k
    add = w.add
    add("aten.new_zeros.default", mlp, "DeepseekV2MoE", st, [_t((t, k), "int64")], [_t((t, e), "int64")])
    add("aten.scatter_.value", mlp, "DeepseekV2MoE", st, [_t((t, e), "int64"), _t((t, k), "int64")],
        [_t((t, e), "int64")])
    add("aten.sum.dim_IntList", mlp, "DeepseekV2MoE", st, [_t((t, e), "int64")], [_t((e,), "int64")])
    add("aten.sort.default", mlp, "DeepseekV2MoE", st, [_t((tk,), "int64")], [_t((tk,), "int64"), _t((tk,), "int64")])
    add("aten.floor_divide.default", mlp, "DeepseekV2MoE", st, [_t((tk,), "int64")], [_t((tk,), "int64")])
    add("aten.index.Tensor", mlp, "DeepseekV2MoE", st, [_t((t, h)), _t((tk,), "int64")], [_t((tk, h))])
    add("aten._to_copy.default", mlp, "DeepseekV2MoE", st, [_t((e,), "int64")], [_t((e,), "int64")], sync=True,
        attrs={"to_host": True})
    rows = rows_fn(layer, t, e, k)
    experts_path = node.module_path
    for idx, r in enumerate(rows):
        if r <= 0:
            continue
        base = f"{experts_path}.{idx}"
        w.module(base, "DeepseekV2MLP")
        for proj in ("gate_proj", "up_proj", "down_proj"):
            w.module(f"{base}.{proj}", "Linear")
        w.module(f"{base}.act_fn", "SiLU")
        add("aten.slice.Tensor", experts_path, "ModuleList", st, [_t((tk, h))], [_t((r, h))], view=True)
        add("aten.mm.default", f"{base}.gate_proj", "Linear", st,
            [_t((r, h)), _t((h, i), param=f"{base}.gate_proj.weight", strides=(1, h))], [_t((r, i))])
        add("aten.silu.default", f"{base}.act_fn", "SiLU", st, [_t((r, i))], [_t((r, i))])
        add("aten.mm.default", f"{base}.up_proj", "Linear", st,
            [_t((r, h)), _t((h, i), param=f"{base}.up_proj.weight", strides=(1, h))], [_t((r, i))])
        add("aten.mul.Tensor", base, "DeepseekV2MLP", st, [_t((r, i)), _t((r, i))], [_t((r, i))])
        add("aten.mm.default", f"{base}.down_proj", "Linear", st,
            [_t((r, i)), _t((i, h), param=f"{base}.down_proj.weight", strides=(1, i))], [_t((r, h))])
    parts = [_t((r, h)) for r in rows if r > 0]
    add("aten.cat.default", mlp, "DeepseekV2MoE", st, parts, [_t((tk, h))])
    add("aten.empty_like.default", mlp, "DeepseekV2MoE", st, [_t((tk, h))], [_t((tk, h))])
    add("aten.index_put_.default", mlp, "DeepseekV2MoE", st, [_t((tk, h)), _t((tk,), "int64"), _t((tk, h))],
        [_t((tk, h))])
    add("aten._to_copy.default", mlp, "DeepseekV2MoE", st, [_t((t, k, h))], [_t((t, k, h), "float32")])
    add("aten.mul_.Tensor", mlp, "DeepseekV2MoE", st,
        [_t((t, k, h), "float32"), _t((t, k, 1), "float32", strides=(k, 1, 0))], [_t((t, k, h), "float32")])
    add("aten.sum.dim_IntList", mlp, "DeepseekV2MoE", st, [_t((t, k, h), "float32")], [_t((t, h), "float32")])
    add("aten._to_copy.default", mlp, "DeepseekV2MoE", st, [_t((t, h), "float32")], [_t((t, h))])


def _eager_attention(w: _Writer, node: OpNode) -> None:
    a = node.attrs
    b, heads, q, kv, d = a["batch"], a["heads"], a["q_len"], a["kv_len"], a["head_dim"]
    dv = a.get("v_head_dim", d)
    path, mtype, st = node.module_path, node.module_type, node.stage
    bh = b * heads
    add = w.add
    add("aten.bmm.default", path, mtype, st, [_t((bh, q, d)), _t((bh, d, kv), strides=(kv * d, 1, d))],
        [_t((bh, q, kv))])
    add("aten.div.Tensor", path, mtype, st, [_t((b, heads, q, kv))], [_t((b, heads, q, kv))])
    add("aten.add.Tensor", path, mtype, st, [_t((b, heads, q, kv)), _t((b, heads, q, kv), strides=(q * kv, 0, kv, 1))],
        [_t((b, heads, q, kv))])
    add("aten._softmax.default", path, mtype, st, [_t((b, heads, q, kv))], [_t((b, heads, q, kv), "float32")],
        attrs={"half_to_float": True})
    add("aten._to_copy.default", path, mtype, st, [_t((b, heads, q, kv), "float32")], [_t((b, heads, q, kv))])
    add("aten.bmm.default", path, mtype, st, [_t((bh, q, kv)), _t((bh, kv, dv))], [_t((bh, q, dv))])
    add("aten.clone.default", path, mtype, st, [_t((b, q, heads, dv), strides=(heads * q * dv, dv, q * dv, 1))],
        [_t((b, q, heads, dv))])


def _mask_4d(w: _Writer, path: str, mtype: str, st: str, b: int, q: int, kv: int) -> None:
    """`_prepare_4d_causal_attention_mask` of 4.46.3: a causal (q, kv) block when q > 1, the 2-D mask
    expanded, inverted and filled, merged."""
    add = w.add
    if q > 1:
        add("aten.full.default", path, mtype, st, [], [_t((q, q))])
        add("aten.arange.default", path, mtype, st, [], [_t((q,), "int64")])
        add("aten.add.Tensor", path, mtype, st, [_t((q,), "int64")], [_t((q,), "int64")])
        add("aten.lt.Tensor", path, mtype, st, [_t((q,), "int64"), _t((q, 1), "int64")], [_t((q, q), "bool")])
        add("aten.masked_fill_.Scalar", path, mtype, st, [_t((q, q)), _t((q, q), "bool")], [_t((q, q))])
        if kv > q:
            add("aten.zeros.default", path, mtype, st, [], [_t((q, kv - q))])
            add("aten.cat.default", path, mtype, st, [_t((q, kv - q)), _t((q, q))], [_t((q, kv))])
        add("aten.clone.default", path, mtype, st, [_t((b, 1, q, kv), strides=(0, 0, kv, 1))], [_t((b, 1, q, kv))])
    add("aten._to_copy.default", path, mtype, st, [_t((b, 1, q, kv), "int64", strides=(kv, 0, 0, 1))],
        [_t((b, 1, q, kv))])
    add("aten.rsub.Scalar", path, mtype, st, [_t((b, 1, q, kv))], [_t((b, 1, q, kv))])
    add("aten._to_copy.default", path, mtype, st, [_t((b, 1, q, kv))], [_t((b, 1, q, kv), "bool")])
    add("aten.masked_fill.Scalar", path, mtype, st, [_t((b, 1, q, kv)), _t((b, 1, q, kv), "bool")],
        [_t((b, 1, q, kv))])
    if q > 1:
        add("aten._to_copy.default", path, mtype, st, [_t((b, 1, q, kv))], [_t((b, 1, q, kv), "bool")])
        add("aten.masked_fill.Scalar", path, mtype, st, [_t((b, 1, q, kv)), _t((b, 1, q, kv), "bool")],
            [_t((b, 1, q, kv))])


def _generation_step(w: _Writer, b: int, seq: int, vocab: int) -> None:
    """What `generate()` (greedy, infer()'s processors, streamer, eos) runs per token beside the forward."""
    p, mt, st = "generate", "GenerationMixin", "lm_head"
    add = w.add
    add("aten.cumsum.default", p, mt, st, [_t((b, seq), "int64")], [_t((b, seq), "int64")])
    add("aten.sub.Tensor", p, mt, st, [_t((b, seq), "int64")], [_t((b, seq), "int64")])
    add("aten.eq.Scalar", p, mt, st, [_t((b, seq), "int64")], [_t((b, seq), "bool")])
    add("aten.masked_fill_.Scalar", p, mt, st, [_t((b, seq), "int64"), _t((b, seq), "bool")], [_t((b, seq), "int64")])
    add("aten.arange.default", p, mt, st, [], [_t((1,), "int64")])
    add("aten.clone.default", p, mt, st, [_t((b, vocab), "float32", strides=(vocab, 1))], [_t((b, vocab), "float32")])
    # no-repeat n-gram processor: the ids read to the host, Python over every n-gram of every sequence
    add("aten._to_copy.default", p, mt, st, [_t((b, seq), "int64")], [_t((b, seq), "int64")], sync=True,
        attrs={"to_host": True})
    ngrams = b * max(0, seq - NO_REPEAT_NGRAM + 1)
    add("python.ngrams", p, mt, st, [], [], attrs={"on_cpu": True, "host_calls": ngrams * NGRAM_HOST_CALLS})
    add("aten.argmax.default", p, mt, st, [_t((b, vocab), "float32")], [_t((b,), "int64")])
    for op in ("aten.mul.Tensor", "aten.rsub.Scalar", "aten.mul.Tensor", "aten.add.Tensor"):
        add(op, p, mt, st, [_t((b,), "int64")], [_t((b,), "int64")])
    add("aten.cat.default", p, mt, st, [_t((b, seq), "int64"), _t((b, 1), "int64")], [_t((b, seq + 1), "int64")])
    add("aten._to_copy.default", p, mt, st, [_t((b,), "int64")], [_t((b,), "int64")], sync=True,
        attrs={"to_host": True})  # the streamer's put(): token ids to the host
    add("aten.new_ones.default", p, mt, st, [], [_t((b, 1), "int64")])
    add("aten.cat.default", p, mt, st, [_t((b, seq), "int64"), _t((b, 1), "int64")], [_t((b, seq + 1), "int64")])
    add("aten.add.Tensor", p, mt, st, [_t((1,), "int64")], [_t((1,), "int64")])
    add("aten.isin.Tensor_Tensor", p, mt, st, [_t((b,), "int64"), _t((1,), "int64")], [_t((b,), "bool")])
    add("aten.bitwise_or.Tensor", p, mt, st, [_t((b,), "bool"), _t((b,), "bool")], [_t((b,), "bool")])
    add("aten.bitwise_not.default", p, mt, st, [_t((b,), "bool")], [_t((b,), "bool")])
    add("aten.bitwise_and.Tensor", p, mt, st, [_t((b,), "int64"), _t((b,), "bool")], [_t((b,), "int64")])
    add("aten.max.default", p, mt, st, [_t((b,), "int64")], [_t((), "int64")])
    add("aten.eq.Scalar", p, mt, st, [_t((), "int64")], [_t((), "bool")])
    add("aten._local_scalar_dense.default", p, mt, st, [_t((), "bool")], [], sync=True, attrs={"on_cpu": True})


def check_implementation(implementation: str, execution: str | None, train: bool = False) -> None:
    """The remote code runs eager only: its MoE syncs every layer (no CUDA graph, torch.compile breaks there)."""
    if implementation not in IMPLEMENTATIONS:
        raise UserError(f"unknown --implementation {implementation!r}: use {', '.join(IMPLEMENTATIONS)}")
    if implementation == "native":
        return
    if execution not in (None, "eager"):
        raise UserError(f"--implementation {implementation} runs eager only (its MoE reads token counts to the host "
                        f"in every layer, so no CUDA graph or torch.compile): drop --execution {execution} or use "
                        "--implementation native")
    if train:
        raise UserError(f"--implementation {implementation} is the inference path (model.infer): use "
                        "--implementation native with --phase train")


def remote_code_trace(trace: Trace, rows_fn: RowsFn, attention: str = "eager", page: Trace | None = None) -> Trace:
    """The remote code's ops for one traced phase of the native model (see the module docstring).

    `page`: the same prefill traced at batch 1. The remote forward loops over the batch's pages
    (`for image, crop_shape in zip(images, images_spatial_crop)`), so a batch-B prefill runs the vision
    encoders and projector of one page B times instead of once on B pages."""
    if attention not in ("eager", "flash"):
        raise ValueError(f"attention {attention!r}: eager or flash")
    trace = remote_vision_trace(trace)
    page = remote_vision_trace(page) if page is not None else None
    nodes = trace.nodes
    phase = trace.phase
    w = _Writer(trace)
    pages = int(trace.meta.get("batch", 1))
    per_page = page is not None and phase == "prefill" and pages > 1
    vision_done = False
    text_prefix = "model.language_model"
    rotary = [n for n in nodes if n.module_path == f"{text_prefix}.rotary_emb"]
    skip_groups = {n.id for n in nodes if n.op == MOE_EXPERTS}
    mask_done = False
    rope_layers: set[int] = set()
    attn = next((n for n in nodes if n.op == ATTENTION and n.module_path.startswith(text_prefix)), None)
    batch = int(trace.meta.get("batch", 1))
    q_len = attn.attrs["q_len"] if attn is not None else int(trace.meta.get("tokens", 1))
    kv_len = attn.attrs["kv_len"] if attn is not None else q_len
    lm_out = next((n for n in reversed(nodes) if n.module_path == "" and n.outputs), None)
    vocab = lm_out.outputs[0].shape[-1] if lm_out is not None else 0
    if phase == "prefill":
        # the vision branch's checks: torch.sum(images[0][1]).item() and torch.sum(patches).item()
        for _ in range(2):
            w.add("aten.sum.default", "model", "DeepseekOCRModel", "projector", [_t((1, 3, 1024, 1024))], [_t(())])
            w.add("aten._local_scalar_dense.default", "model", "DeepseekOCRModel", "projector", [_t(())], [],
                  sync=True, attrs={"on_cpu": True})
    for n in nodes:
        if n.group in skip_groups:
            continue
        if per_page and n.stage in VISION_STAGES:
            if not vision_done and page is not None:
                block = [m for m in page.nodes if m.stage in VISION_STAGES]
                for _ in range(pages):
                    w.copy_block(block)
                for mp in {m.module_path for m in block}:
                    w.module_calls[mp] = page.module_calls.get(mp, 1) * pages
                vision_done = True
            continue
        path = n.module_path
        if path == text_prefix or path == f"{text_prefix}.rotary_emb":
            # transformers 5's mask functions and the model-level RoPE give way to the remote code's own
            if not mask_done and path == text_prefix and not n.is_view:
                _mask_4d(w, text_prefix, n.module_type, n.stage, batch, q_len, kv_len)
                mask_done = True
            continue
        layer = _layer_of(path) if path.startswith(f"{text_prefix}.layers.") else None
        if layer is not None and ".self_attn" in path and layer not in rope_layers:
            rope_layers.add(layer)
            rp = f"{text_prefix}.layers.{layer}.self_attn.rotary_emb"
            w.module(rp, "LlamaRotaryEmbedding")
            for r in rotary:
                w.add(r.op, rp, "LlamaRotaryEmbedding", r.stage, r.inputs, r.outputs, view=r.is_view,
                      attrs=dict(r.attrs))
        if n.op == MOE_EXPERTS:
            _moe_loop(w, n, rows_fn)
            continue
        if n.op == ATTENTION and path.startswith(text_prefix) and attention == "eager":
            _eager_attention(w, n)
            continue
        if (n.op == "aten.mm.default" and "gate" in path and path.endswith(".mlp.gate")
                and n.inputs[0].dtype == "float32"):
            # F.linear under autocast: both fp32 operands cast back to bf16, the GEMM in bf16
            for x in n.inputs:
                w.add("aten._to_copy.default", path, n.module_type, n.stage, [x],
                      [_t(x.shape, "bfloat16", strides=x.strides)])
            w.add("aten.mm.default", path, n.module_type, n.stage,
                  [_t(x.shape, "bfloat16", strides=x.strides) for x in n.inputs],
                  [_t(o.shape, "bfloat16") for o in n.outputs])
            continue
        w.keep(n)
    if phase == "decode" and vocab:
        _generation_step(w, batch, kv_len, vocab)
    w.fix_groups()
    meta = dict(trace.meta) | {"implementation": "remote" if attention == "eager" else "remote-flash"}
    return Trace(phase=phase, nodes=w.nodes, tracer=trace.tracer, module_types=w.module_types,
                 module_calls=w.module_calls, meta=meta)

