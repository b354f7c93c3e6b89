"""docs/*.md: one page per layer family (SAM attention and blocks, neck, CLIP, projector, decoder attention, KV
cache, RMSNorm, MoE, dense MLP, lm_head): the cost rules that price its ops, how they applied to this workload
(read from the report's own nodes, never a second formula), totals and the top nodes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dsocr_trace.report.markdown import md_table, shape_text
from dsocr_trace.report.node_rows import merged_nodes, node_bytes
from dsocr_trace.report.units import intensity, ms, num, si
from dsocr_trace.trace.ir import parent_path, self_and_ancestors

_SAM_ATTN = re.compile(r"SamVision(Sdpa)?Attention")
_CLIP = re.compile(r"^UnlimitedOcr(Attention|MLP|EncoderLayer|Encoder|VisionEncoder)$")


def _family_of(path: str, chain: Sequence[str], op: str = "", io_last_dims: tuple[int, ...] = ()) -> str:
    """Family of an op given its innermost module path and the class names of that module and its ancestors."""
    kv_cat = op.startswith("aten.cat") and bool(io_last_dims) and len(set(io_last_dims)) == 1
    return _family_cached(path, tuple(chain), kv_cat)


@functools.lru_cache(maxsize=1 << 16)
def _family_cached(path: str, chain: tuple[str, ...], kv_cat: bool) -> str:
    # thousands of nodes share a few hundred (path, chain) pairs: classify each pair once
    has = lambda *names: any(n in t for t in chain for n in names)  # noqa: E731
    if has("TextMoe", "TextExperts", "TopkRouter"):
        return "moe"
    if any(_SAM_ATTN.search(t) for t in chain):
        return "sam_attention"
    if has("PatchEmbeddings", "VisionEmbeddings"):
        return "patch_embed"
    if has("SamVisionNeck", "SamVisionProj"):
        return "sam_neck"
    if has("SamMLPBlock", "SamVisionLayer", "SamVisionEncoder") or path.startswith("model.vision_tower.sam_encoder"):
        return "sam_block"
    if any(_CLIP.match(t) for t in chain) or path.startswith("model.vision_tower.vision_encoder"):
        return "clip_block"
    if has("RMSNorm"):
        return "rmsnorm"
    if has("TextAttention"):
        if kv_cat:
            return "kv_cache"  # concatenation along the sequence axis: the DynamicCache growing
        return "decoder_attention"
    if has("TextMLP"):
        return "dense_mlp"
    if path == "" or path == "lm_head" or path.startswith("lm_head."):
        return "lm_head"
    if path.startswith("model.multi_modal_projector") or path in ("model", "model.vision_tower"):
        return "projector"
    return "decoder_other"


def _chain(path: str, types: Mapping[str, str]) -> list[str]:
    return [t for p in self_and_ancestors(path) if (t := types.get(p, ""))]


_TOTAL_KEYS = ("tc_flops", "cc_flops", "bytes_read", "bytes_written", "ops", "kernels")


def _zero_totals() -> dict[str, float]:
    return dict.fromkeys(_TOTAL_KEYS, 0.0) | {"modules": 0.0, "device_s": 0.0, "host_s": 0.0, "timed": 0.0}


def _exclusive(mods: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Exclusive totals per module path from the report's inclusive ones (minus the direct children)."""
    excl = {p: {k: num(m.get(k)) for k in _TOTAL_KEYS} for p, m in mods.items()}
    for p, m in mods.items():
        if p == "":
            continue
        parent = parent_path(p)
        if parent in excl:
            for k in _TOTAL_KEYS:
                excl[parent][k] -= num(m.get(k))
    for e in excl.values():
        for k in _TOTAL_KEYS:
            if abs(e[k]) < 1e-6:
                e[k] = 0.0
    return excl


def _shapes(v: Any) -> list[list[int]]:
    """Shapes as lists, from [[1, 10], [3]] or the CSV form '1x10;3' / '1x10; 3'."""
    if isinstance(v, str):
        out: list[list[int]] = []
        for part in v.split(";"):
            part = part.strip()
            if part in ("", "()"):
                out.append([])
                continue
            out.append([int(x) for x in part.split("x") if x.strip().lstrip("-").isdigit()])
        return out
    return [list(s) for s in v or [] if isinstance(s, list | tuple)]


def _io_last_dims(n: Mapping[str, Any]) -> tuple[int, ...]:
    """Last dimension of every input and output of rank >= 2 (empty placeholders such as cat's (0,) skipped)."""
    return tuple(int(s[-1]) for s in _shapes(n.get("input_shapes")) + _shapes(n.get("output_shapes")) if len(s) >= 2)


def family_totals(report: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]] | None = None
                  ) -> dict[str, dict[str, dict[str, float]]]:
    """{phase: {family: totals}}. Analytic counts come from the module tree (exclusive per path) so every op is in
    exactly one family; node data (when given) moves the KV-cache concatenations out of decoder attention and
    adds predicted times."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    mods_all = report.get("modules") or {}
    rows = merged_nodes(report, nodes)
    for phase, mods in mods_all.items():
        types = {p: str(m.get("module_type") or "") for p, m in mods.items()}
        fam: dict[str, dict[str, float]] = {}
        for p, e in _exclusive(mods).items():
            if not any(e.values()):
                continue
            acc = fam.setdefault(_family_of(p, _chain(p, types)), _zero_totals())
            for k in _TOTAL_KEYS:
                acc[k] += e[k]
            acc["modules"] += 1
        for n in rows:
            if n.get("phase") != phase:
                continue
            path = str(n.get("module_path") or "")
            f = _family_of(path, _chain(path, types) or [str(n.get("module_type") or "")], str(n.get("op") or ""),
                           _io_last_dims(n))
            if f == "kv_cache" and "bytes_read" in n:  # analytic data of this node: move it out of attention
                src = fam.setdefault("decoder_attention", _zero_totals())
                dst = fam.setdefault("kv_cache", _zero_totals())
                for k in _TOTAL_KEYS:
                    v = 1.0 if k == "ops" else num(n.get(k))
                    src[k] -= v
                    dst[k] += v
            if "device_s" in n or "host_s" in n:
                acc = fam.setdefault(f, _zero_totals())
                acc["device_s"] += num(n.get("device_s"))
                acc["host_s"] += num(n.get("host_s"))
                acc["timed"] = 1.0
        out[phase] = fam
    return out


def _applied(fam_nodes: Sequence[Mapping[str, Any]]) -> list[str]:
    """The family's cost rules as this report applied them: each distinct traced op (op and input shapes, per
    phase) with its calls and the FLOPs and bytes the rule gave one call, read from the node rows, never
    re-derived. Repeated layers show as one row with their call count."""
    if not fam_nodes:
        return ["(no per-node data in this report: see the traced totals below)"]
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for n in fam_nodes:
        shapes = shape_text(n.get("input_shapes"))
        g = groups.setdefault((str(n.get("phase", "")), str(n.get("op", "")), shapes),
                              {"calls": 0, "flops": 0.0, "bytes": 0.0, "kernels": 0, "weight_bytes": 0.0})
        g["calls"] += 1
        g["flops"] += num(n.get("tc_flops")) + num(n.get("cc_flops"))
        g["bytes"] += node_bytes(n)
        g["kernels"] += int(num(n.get("kernels")))
    rows = sorted(groups.items(), key=lambda kv: (kv[0][0] != "prefill", -kv[1]["flops"], -kv[1]["bytes"]))
    table = [[ph, f"`{op}`", shapes or "-", g["calls"], si(g["flops"] / g["calls"], "FLOP"),
              si(g["bytes"] / g["calls"], "B"), si(g["flops"], "FLOP"), si(g["bytes"], "B")]
             for (ph, op, shapes), g in rows[:12]]
    out = md_table(["phase", "op", "input shapes", "calls", "FLOP per call", "bytes per call (mean)", "FLOP", "bytes"],
                    table, "lllrrrrr")
    if len(rows) > 12:
        out.append(f"({len(rows) - 12} more distinct ops: nodes.csv lists every node)")
    return out


FAMILIES: dict[str, dict[str, str]] = {
    "patch_embed": {
        "title": "Patch and position embeddings",
        "what": "SAM's patch embedding is a 16x16, stride-16 convolution from the RGB image to a grid of "
                "width-768 patch tokens, plus SAM's absolute position embedding; CLIP's embeddings add the CLS "
                "token and (interpolated) position embeddings to the SAM features it receives.",
        "formula": "conv: FLOPs = 2 · B · C_out · H_out · W_out · (C_in/groups) · k_h · k_w (tensor cores, implicit "
                   "GEMM M = B·H_out·W_out, N = C_out, K = C_in·k_h·k_w); + B·C_out·H_out·W_out CUDA-core FLOPs "
                   "for the bias. Bytes: input + weight + bias + output.",
        "rules": "convolution, pointwise, gather, resample",
    },
    "sam_attention": {
        "title": "SAM attention (windowed and global)",
        "what": "SAM ViT-B self-attention: qkv Linear, windowed (14x14) attention in most layers and global "
                "attention in four, with decomposed relative-position bias added to the scores, then the output "
                "projection. transformers builds the rel-pos bias as a dense B·H·Tq·Tk tensor and passes it to "
                "SDPA as a float mask.",
        "formula": "pairs = B·H·Tq·Tk (non-causal); causal: B·H·(Tq(Tq+1)/2 + Tq(Tk−Tq)).\n"
                   "tensor-core FLOPs = 2·pairs·(D + Dv); CUDA-core ≈ 5 per score (max, subtract, exp, sum, "
                   "scale) + 1 with a float bias.\n"
                   "bytes = Q + K + V + bias (dense, read once) + O; the score matrix stays on chip.\n"
                   "Projections: GEMM 2·M·N·K, bytes A + W + C.",
        "rules": "attention, addmm/mm/bmm (qkv, proj, rel-pos), copy (window partition), pointwise",
    },
    "sam_block": {
        "title": "SAM block: MLP, LayerNorms, residuals, windowing",
        "what": "The rest of each SAM ViT-B layer: LayerNorm before attention and before the MLP, the MLP "
                "(Linear 768 -> 3072, GELU, Linear 3072 -> 768), the residual adds, and the window "
                "partition/unpartition padding copies; plus the encoder-level position-embedding add.",
        "formula": "GEMM: 2·M·N·K FLOPs (M tokens, K in, N out); bytes A + W (+ bias) + C.\n"
                   "LayerNorm: ~8 FLOPs per element; bytes x + γ + β + y (+ mean/rstd).\n"
                   "GELU (erf): ~8 FLOPs per element; pointwise bytes in + out.",
        "rules": "addmm, layer_norm, pointwise, copy",
    },
    "sam_neck": {
        "title": "SAM neck and downsampling convolutions",
        "what": "SAM's neck (1x1 conv 768->256, LayerNorm2d, 3x3 conv 256->256, LayerNorm2d) and DeepSeek-OCR's "
                "16x token compressor: two stride-2 3x3 convs 256->512->1024 (`proj`), which turn a 64x64 grid "
                "into 16x16 = 256 tokens.",
        "formula": "conv: FLOPs = 2 · B · C_out · H_out · W_out · C_in · k_h · k_w; bytes input + weight + output.\n"
                   "LayerNorm2d (channel-wise, as pointwise + mean ops): ~1 FLOP per element per op.",
        "rules": "convolution, pointwise, reduce",
    },
    "clip_block": {
        "title": "CLIP-L block (attention, MLP)",
        "what": "CLIP ViT-L/14 encoder (24 layers, width 1024, 16 heads) fed with SAM's compressed features as its "
                "patch embeddings: pre-LayerNorm, q/k/v/out projections, full (non-causal) SDPA, MLP 1024->4096 "
                "with QuickGELU, residuals.",
        "formula": "attention: pairs = B·H·T², FLOPs 2·pairs·(D + Dv) tensor-core + ~5/score CUDA-core; bytes "
                   "Q + K + V + O.\nGEMMs: 2·M·N·K. LayerNorm ~8 FLOPs/element. QuickGELU x·σ(1.702x) as 3 eager "
                   "pointwise ops (mul, sigmoid ~4, mul).",
        "rules": "attention, addmm, layer_norm, pointwise",
    },
    "projector": {
        "title": "Projector and vision-text glue",
        "what": "The linear projector 2048 -> 1280 over the concatenated SAM and CLIP features, the insertion of "
                "`image_newline` and `view_seperator` tokens, and the masked scatter of the image features into "
                "the text embeddings.",
        "formula": "GEMM 2·M·N·K; cat/scatter: bytes read + written, no FLOPs.",
        "rules": "addmm, copy, masked_scatter, gather",
    },
    "decoder_attention": {
        "title": "Decoder attention (MHA with RoPE)",
        "what": "DeepSeek-OCR v1's text attention: plain multi-head attention (10 heads of 128, no MLA), q/k/v/o "
                "Linears without bias, rotary position embedding applied eagerly (mul, neg, cat, add), causal SDPA "
                "in prefill and a 1-query SDPA over the KV cache in decode.",
        "formula": "pairs = B·H·Tq·Tk; causal: B·H·(Tq(Tq+1)/2 + Tq(Tk−Tq)) (diagonal included).\n"
                   "tensor-core FLOPs = 2·pairs·(D + Dv); CUDA-core ≈ 5 per score (+1 with a mask).\n"
                   "bytes = Q + K + V (+ mask) + O.\nProjections: 2·M·N·K each, weights H² per projection.",
        "rules": "attention, mm, pointwise, copy",
    },
    "kv_cache": {
        "title": "KV cache update",
        "what": "transformers' DynamicCache appends each step's K and V with torch.cat along the sequence axis: a "
                "new tensor every step, so the whole cache is read and written again (in prefill the cat is from "
                "an empty tensor: one copy of K and V).",
        "formula": "KV bytes per token = 2 · layers · kv_heads · D · bytes(dtype).\n"
                   "cat per layer per step: read old K (B·h·(L−1)·D) + new K (B·h·1·D), write B·h·L·D; same for V.",
        "rules": "copy (cat)",
    },
    "rmsnorm": {
        "title": "RMSNorm",
        "what": "The decoder's RMSNorm (input and post-attention per layer, and the final norm). Eager "
                "transformers runs it as ~8 aten ops in fp32; a fused engine runs one kernel.",
        "formula": "fused: y = x · rsqrt(mean(x²) + ε) · w: ~4 FLOPs per element; bytes x + w + y.\n"
                   "eager: the sum of the member ops (cast, pow, mean, add, rsqrt, mul, cast, mul), each with its own "
                   "read and write.",
        "rules": "rms_norm (fused), cast, pointwise, reduce (eager)",
    },
    "moe": {
        "title": "MoE: router, routed experts, shared experts",
        "what": "DeepSeek-V2 MoE in layers 1..11: a softmax top-6 router over 64 experts (`gate`), the routed "
                "experts run by transformers' grouped_mm path (sort, histc, gather, two grouped GEMMs, scatter), "
                "and 2 shared experts as one dense SwiGLU MLP of width 2·896.",
        "formula": "routed FLOPs = T·k·(2·H·2I + 2·I·H) (gate+up, then down) tensor-core.\n"
                   "weight bytes = E_touched · 3·H·I · bytes, E_touched = E·(1 − (1 − k/E)^T) (uniform routing; "
                   "--moe-skew concentrates it).\nRouter: GEMM 2·T·H·E, softmax ~5/element, top-k ~log2(k)+1 "
                   "compares per element. Shared experts: dense SwiGLU 3·2·T·H·I_s.",
        "rules": "grouped_mm, moe_experts (fused), mm, softmax, topk, sort, scan, gather, scatter, pointwise",
    },
    "dense_mlp": {
        "title": "Dense MLP (layer 0)",
        "what": "The first decoder layer (first_k_dense_replace = 1) uses a dense SwiGLU MLP: gate and up "
                "projections 1280 -> 6848, SiLU(gate)·up, down projection back to 1280.",
        "formula": "3 GEMMs of 2·M·H·I; SiLU ~4 FLOPs/element, mul 1; bytes: weights 3·H·I·2 B (bf16) + "
                   "activations.",
        "rules": "mm, pointwise",
    },
    "lm_head": {
        "title": "lm_head",
        "what": "The output projection 1280 -> 129,280 vocabulary logits and the top-level fp32 cast of the "
                "logits. DeepSeek-OCR's forward computes logits for every prefill position.",
        "formula": "GEMM 2·M·H·V; bytes: weight H·V·2 B + activations + logits (M·V·2 B, then the fp32 cast reads "
                   "them and writes M·V·4 B).",
        "rules": "mm, cast",
    },
    "decoder_other": {
        "title": "Decoder glue: embeddings, RoPE tables, residuals",
        "what": "Token embedding lookup, rotary cos/sin table construction, the residual adds of the decoder "
                "layers and other small ops outside the modules above.",
        "formula": "gather: bytes = rows picked + indices + output; pointwise: per-element FLOPs, bytes in + out.",
        "rules": "gather, pointwise, cast, fill",
    },
}
FAMILY_ORDER = ["patch_embed", "sam_attention", "sam_block", "sam_neck", "clip_block", "projector",
                "decoder_attention", "kv_cache", "rmsnorm", "moe", "dense_mlp", "lm_head", "decoder_other"]


def _family_table(ft: Mapping[str, Mapping[str, Mapping[str, float]]], fam: str) -> list[str]:
    timed = any(num((ft.get(ph) or {}).get(fam, {}).get("timed")) for ph in ft)
    headers = ["phase", "tensor-core FLOP", "CUDA-core FLOP", "bytes read", "bytes written", "FLOP/B", "kernels",
               "ops"] + (["device ms", "host ms"] if timed else [])
    rows = []
    for ph, fams in ft.items():
        t = fams.get(fam)
        if not t:
            continue
        fl = t["tc_flops"] + t["cc_flops"]
        nb = t["bytes_read"] + t["bytes_written"]
        r: list[Any] = [ph, si(t["tc_flops"], "FLOP"), si(t["cc_flops"], "FLOP"), si(t["bytes_read"], "B"),
                        si(t["bytes_written"], "B"), f"{intensity(fl, nb):.1f}", int(t["kernels"]), int(t["ops"])]
        if timed:
            r += [ms(t["device_s"]), ms(t["host_s"])]
        rows.append(r)
    return md_table(headers, rows)


def nodes_by_family(report: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]] | None
                    ) -> dict[str, list[Mapping[str, Any]]]:
    """Every node row under its layer family, classified once (the docs pages all read it)."""
    mods = report.get("modules") or {}
    types = {ph: {p: str(m.get("module_type") or "") for p, m in mm.items()} for ph, mm in mods.items()}
    out: dict[str, list[Mapping[str, Any]]] = {}
    for n in merged_nodes(report, nodes):
        path = str(n.get("module_path") or "")
        chain = _chain(path, types.get(str(n.get("phase")), {})) or [str(n.get("module_type") or "")]
        out.setdefault(_family_of(path, chain, str(n.get("op") or ""), _io_last_dims(n)), []).append(n)
    return out


def _top_nodes(report: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]] | None, fam: str,
               limit: int = 8, by_family: Mapping[str, list[Mapping[str, Any]]] | None = None
               ) -> tuple[str, list[str]]:
    mods = report.get("modules") or {}
    types = {ph: {p: str(m.get("module_type") or "") for p, m in mm.items()} for ph, mm in mods.items()}
    if by_family is None:
        by_family = nodes_by_family(report, nodes)
    picked = list(by_family.get(fam, []))
    if picked:
        by_time = any("device_s" in n for n in picked)
        def key(n: Mapping[str, Any]) -> tuple[float, float]:
            fl = num(n.get("tc_flops")) + num(n.get("cc_flops"))
            return (-num(n.get("device_s")), -fl) if by_time else (-fl, -node_bytes(n))

        picked.sort(key=key)
        headers = ["phase", "id", "op", "module", "FLOP", "bytes"] + (["device ms", "bound"] if by_time else [])
        out = []
        for n in picked[:limit]:
            r = [n.get("phase", ""), n.get("id", ""), f"`{n.get('op', '')}`", f"`{n.get('module_path', '')}`",
                 si(num(n.get("tc_flops")) + num(n.get("cc_flops")), "FLOP"), si(node_bytes(n), "B")]
            if by_time:
                r += [ms(n.get("device_s")), n.get("bound", "")]
            out.append(r)
        return ("by predicted device time" if by_time else "by FLOPs, then bytes"), md_table(
            headers, out, "lrll" + "r" * (len(headers) - 4))
    # no node data: the heaviest leaf modules of the family
    cand = []
    for ph, mm in mods.items():
        tmap = types.get(ph, {})
        excl = _exclusive(mm)
        for p, e in excl.items():
            if any(e.values()) and _family_of(p, _chain(p, tmap)) == fam:
                cand.append((ph, p, tmap.get(p, ""), e))
    cand.sort(key=lambda c: -(c[3]["tc_flops"] + c[3]["cc_flops"]))
    out = [[ph, f"`{p}`", t, si(e["tc_flops"] + e["cc_flops"], "FLOP"), si(e["bytes_read"] + e["bytes_written"], "B"),
            int(e["kernels"])] for ph, p, t, e in cand[:limit]]
    return "modules by FLOPs (no node data in this report)", md_table(
        ["phase", "module (own ops)", "class", "FLOP", "bytes", "kernels"], out, "lllrrr")


def _module_classes(report: Mapping[str, Any], fam: str) -> list[str]:
    seen: dict[str, None] = {}
    for mm in (report.get("modules") or {}).values():
        tmap = {p: str(m.get("module_type") or "") for p, m in mm.items()}
        for p, t in tmap.items():
            if t and _family_of(p, _chain(p, tmap)) == fam:
                seen[t] = None
    return sorted(seen)


def layer_doc(report: Mapping[str, Any], fam: str, ft: Mapping[str, Any],
              nodes: Sequence[Mapping[str, Any]] | None = None,
              by_family: Mapping[str, list[Mapping[str, Any]]] | None = None) -> str:
    info = FAMILIES[fam]
    wl = report.get("workload") or {}
    L = [f"# {info['title']}", "", "[index](index.md) · [summary](../summary.md)", "", "## What it is", "",
         info["what"], ""]
    classes = _module_classes(report, fam)
    if classes:
        L += ["Module classes here: " + ", ".join(f"`{c}`" for c in classes) + ".", ""]
    L += ["## Cost rule", "", "```", info["formula"], "```", "",
          f"Cost rules involved (src/dsocr_trace/costs): {info['rules']}. See specs/cost-rules.md.", ""]
    L += ["## Applied here", "",
          f"Workload `{wl.get('label', wl.get('mode'))}`: {wl.get('vision_tokens')} vision tokens, "
          f"{wl.get('prefill_tokens')} prefill tokens per sequence, batch {wl.get('batch')}, decode step at KV "
          f"length {wl.get('decode_kv_len')}.", ""]
    if by_family is None:
        by_family = nodes_by_family(report, nodes)
    L += _applied(by_family.get(fam, []))
    L += ["", "Traced totals of this family (every op counted once, under the family of its innermost module):", ""]
    L += _family_table(ft, fam)
    if fam == "kv_cache" and not any((ft.get(ph) or {}).get("kv_cache") for ph in ft):
        L += ["", "(No per-node data in this report: the cache concatenations are counted under "
              "[decoder attention](decoder_attention.md).)"]
    how, table = _top_nodes(report, nodes, fam, by_family=by_family)
    L += ["", f"## Top nodes ({how})", "", *table]
    return "\n".join(L) + "\n"


def families_present(report: Mapping[str, Any], ft: Mapping[str, Mapping[str, Any]]) -> list[str]:
    present = {f for fams in ft.values() for f, t in fams.items() if t.get("ops")}
    if "decoder_attention" in present:
        present.add("kv_cache")  # a page with the formula even when no node data splits it out
    return [f for f in FAMILY_ORDER if f in present]


def write_layer_docs(report: Mapping[str, Any], folder: str | Path,
                     nodes: Sequence[Mapping[str, Any]] | None = None) -> list[Path]:
    """docs/<family>.md per layer family present in the report, and docs/index.md; returns the paths written."""
    root = Path(folder) / "docs"
    root.mkdir(parents=True, exist_ok=True)
    ft = family_totals(report, nodes)
    fams = families_present(report, ft)
    by_family = nodes_by_family(report, nodes)
    written = []
    for fam in fams:
        p = root / f"{fam}.md"
        p.write_text(layer_doc(report, fam, ft, nodes, by_family), encoding="utf-8")
        written.append(p)
    wl = report.get("workload") or {}
    idx = ["# Layer docs", "", f"Model {(report.get('model') or {}).get('id', '?')}, workload "
           f"`{wl.get('label', wl.get('mode'))}` ({wl.get('vision_tokens')} vision tokens, {wl.get('prefill_tokens')} "
           f"prefill tokens, batch {wl.get('batch')}). Back to [summary](../summary.md).", "",
           "Each page: what the layer is, its cost formula, the formula with this workload's numbers, the traced "
           "totals and the heaviest nodes. Every traced op belongs to exactly one page (by its innermost module).",
           ""]
    rows = []
    for fam in fams:
        pre = (ft.get("prefill") or {}).get(fam) or {}
        dec = (ft.get("decode") or {}).get(fam) or {}
        rows.append([f"[{FAMILIES[fam]['title']}]({fam}.md)",
                     si(num(pre.get("tc_flops")) + num(pre.get("cc_flops")), "FLOP"),
                     si(num(pre.get("bytes_read")) + num(pre.get("bytes_written")), "B"),
                     si(num(dec.get("tc_flops")) + num(dec.get("cc_flops")), "FLOP"),
                     si(num(dec.get("bytes_read")) + num(dec.get("bytes_written")), "B")])
    idx += md_table(["layer", "prefill FLOP", "prefill bytes", "decode-step FLOP", "decode-step bytes"], rows)
    (root / "index.md").write_text("\n".join(idx) + "\n", encoding="utf-8")
    written.append(root / "index.md")
    return written


