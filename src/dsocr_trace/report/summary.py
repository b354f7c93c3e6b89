"""summary.md: the run on one page: workload, parameters, stages (counts and, with a device, predicted times and
what bounds them), the request, its memory (parts adding up to the total), the top module classes and the
coverage of the cost rules. Reads the report only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dsocr_trace.report.markdown import md_table, predictions_of
from dsocr_trace.report.units import gib, intensity, ms, num, si
from dsocr_trace.trace.ir import PHASES


def _kv_table(d: Mapping[str, Any], fmt: Callable[[str, Any], str] | None = None) -> list[str]:
    rows = [(k, fmt(k, v) if fmt else ("" if v is None else v)) for k, v in d.items() if not isinstance(v, dict)]
    return md_table(["field", "value"], rows, "ll")


def _params_fmt(k: str, v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def _stage_table(report: Mapping[str, Any]) -> list[str]:
    ps = predictions_of(report).get("stages") or {}
    headers = ["stage", "tensor-core FLOP", "CUDA-core FLOP", "bytes", "FLOP/B", "kernels", "ops"]
    if ps:
        headers += ["device ms", "host ms", "wall ms", "bound"]
    rows = []
    for name, s in (report.get("stages") or {}).items():
        r = [name, si(s.get("tc_flops"), "FLOP"), si(s.get("cc_flops"), "FLOP"), si(s.get("bytes"), "B"),
             f"{num(s.get('intensity_flop_per_byte')):.1f}", int(num(s.get("kernels"))), int(num(s.get("ops")))]
        if ps:
            p = ps.get(name) or {}
            r += [ms(p.get("device_s")), ms(p.get("host_s")), ms(p.get("wall_s")), p.get("bound", "")]
        rows.append(r)
    return md_table(headers, rows)


def _bound_table(report: Mapping[str, Any]) -> list[str]:
    ps = predictions_of(report).get("stages") or {}
    rows = []
    for name, p in ps.items():
        b = p.get("bound_s") or {}
        dev = num(p.get("device_s"))
        cells = [name]
        for k in ("compute", "memory", "launch"):
            v = num(b.get(k))
            cells.append(f"{v * 1e3:,.3f} ({100 * v / dev:.0f}%)" if dev else f"{v * 1e3:,.3f}")
        cells += [ms(p.get("host_s")), p.get("bound", "")]
        rows.append(cells)
    return md_table(["stage", "compute ms", "memory ms", "launch ms", "host ms", "bound"], rows)


def _gib(x: Any) -> str:
    return gib(num(x))


def _memory_table(mem: Mapping[str, Any]) -> list[str]:
    """The request's memory as parts that add up to the total (GiB, as every output shows memory), then the
    device's usable memory and the fit."""
    rows: list[list[Any]] = []
    dtype = mem.get("weight_dtype", "?")
    for comp, b in (mem.get("weights_by_component") or {}).items():
        rows.append([f"weights: {comp}", _gib(b), f"{num(b):,.0f}", f"{dtype} weights"])
    rows.append(["KV cache", _gib(mem.get("kv_cache_bytes")), f"{num(mem.get('kv_cache_bytes')):,.0f}",
                 f"{num(mem.get('kv_bytes_per_token')):,.0f} B per token x {mem.get('kv_context_tokens')} tokens "
                 "(prompt + output) x batch"])
    where = mem.get("activation_peak_op") or f"node {mem.get('activation_peak_at_node')}"
    module = mem.get("activation_peak_module")
    rows.append(["activation peak", _gib(mem.get("activation_peak_bytes")),
                 f"{num(mem.get('activation_peak_bytes')):,.0f}",
                 f"live tensors at {where}" + (f" in {module}" if module else "")
                 + (f"; holds the fp32 logits ({_gib(mem.get('logits_bytes'))} GiB)"
                    if mem.get("activation_peak_holds_logits") else
                    f"; the fp32 logits ({_gib(mem.get('logits_bytes'))} GiB) come later, below this peak")])
    rows.append(["runtime reserve", _gib(mem.get("reserve_bytes")), f"{num(mem.get('reserve_bytes')):,.0f}",
                 "CUDA context, library workspaces, allocator slack"])
    rows.append(["**total**", f"**{_gib(mem.get('total_bytes'))}**", f"{num(mem.get('total_bytes')):,.0f}",
                 "the sum of the rows above"])
    if "device_bytes" in mem:
        fit = "fits" if mem.get("fits") else "DOES NOT FIT"
        rows.append(["device (usable)", _gib(mem.get("device_bytes")), f"{num(mem.get('device_bytes')):,.0f}",
                     f"{fit}; headroom {_gib(mem.get('headroom_bytes'))} GiB"])
    return md_table(["memory", "GiB", "bytes", "what"], rows, "lrrl")


def _request_table(req: Mapping[str, Any]) -> list[str]:
    rows: list[list[Any]] = []
    for k, v in req.items():
        if k.endswith("per_s") and isinstance(v, int | float):  # a rate: tokens_per_s, pages_per_s
            rows.append([k[:-6] + " [1/s]", f"{v:,.3f}"])
        elif k.endswith("_s") and isinstance(v, int | float):
            rows.append([k[:-2] + " [ms]", ms(v)])
        elif isinstance(v, float):
            rows.append([k, f"{v:,.3f}"])
        else:
            rows.append([k, f"{v:,}" if isinstance(v, int) else str(v)])
    return md_table(["request", "value"], rows, "lr")


def _top_module_types(report: Mapping[str, Any], phase: str, n: int = 12) -> list[str]:
    mt = (report.get("module_types") or {}).get(phase) or {}
    pmt = (predictions_of(report).get("module_types") or {}).get(phase) or {}
    items = sorted(mt.items(), key=lambda kv: -num(kv[1].get("flops")))[:n]
    headers = ["module class", "FLOP", "bytes", "FLOP/B", "kernels", "ops"] + (["device ms", "host ms"] if pmt else [])
    rows = []
    for cls, t in items:
        r = [cls, si(t.get("flops"), "FLOP"), si(t.get("bytes"), "B"),
             f"{intensity(num(t.get('flops')), num(t.get('bytes'))):.1f}", t.get("kernels", ""), t.get("ops", "")]
        if pmt:
            p = pmt.get(cls) or {}
            r += [ms(p.get("device_s")), ms(p.get("host_s"))]
        rows.append(r)
    return md_table(headers, rows)


def summary_markdown(report: Mapping[str, Any]) -> str:
    wl = report.get("workload") or {}
    model = report.get("model") or {}
    tool = report.get("tool") or {}
    preds = predictions_of(report)
    L: list[str] = [f"# dsocr-trace summary: {model.get('id', '?')}, mode {wl.get('label', wl.get('mode', '?'))}", ""]
    L += [f"{tool.get('name', 'dsocr-trace')} {tool.get('version', '')} (torch {tool.get('torch', '?')}, "
          f"transformers {tool.get('transformers', '?')}), report schema {report.get('schema_version', '?')}. "
          "FLOPs count 2 per multiply-add; bytes are the minimum each kernel must move; times in milliseconds.",
          "", "Layer-by-layer explanations: [docs/index.md](docs/index.md).", ""]
    if report.get("warnings"):
        L += ["## Warnings", "", *(f"- {w}" for w in report["warnings"]), ""]
    L += ["## Workload", ""]
    L += _kv_table(wl, lambda k, v: "" if v is None else (" x ".join(map(str, v)) if isinstance(v, list) else str(v)))
    L += ["", f"Vision tokens {wl.get('vision_tokens')}, prefill {wl.get('prefill_tokens')} tokens per sequence, "
          f"batch {wl.get('batch')}, decode step traced at KV length {wl.get('decode_kv_len')}, "
          f"{wl.get('output_tokens')} output tokens.", ""]
    params = report.get("params") or {}
    L += ["## Parameters", ""]
    L += _kv_table(params, _params_fmt)
    comps = params.get("components") or {}
    if comps:
        L += ["", *md_table(["component", "params"], [(k, f"{v:,}") for k, v in comps.items()], "lr")]
    L += ["", "## Stages", ""]
    if preds:
        dev = preds.get("device") or {}
        prof = preds.get("profile") or {}
        L += [f"Predicted on **{dev.get('name', dev.get('key', '?'))}**, execution `{preds.get('execution', '?')}`, "
              f"weights {preds.get('weight_dtype', '?')}, profile `{prof.get('source', '?')}`.", ""]
    L += _stage_table(report)
    L += ["", "decode.step is one decode step (one new token per sequence); the other stages run once per prefill.",
          ""]
    db = report.get("decode_breakdown") or {}
    if db:
        L += ["### Decode step by stage", ""]
        L += md_table(["stage", "tensor-core FLOP", "CUDA-core FLOP", "bytes", "kernels", "ops"],
                       [(k, si(v.get("tc_flops"), "FLOP"), si(v.get("cc_flops"), "FLOP"), si(v.get("bytes"), "B"),
                         v.get("kernels", ""), v.get("ops", "")) for k, v in db.items()])
        L += [""]
    if preds.get("stages"):
        L += ["## Bound breakdown (predicted device time by limiter)", ""]
        L += _bound_table(report)
        L += ["", "compute: the kernel's FLOPs at the achieved FLOP rate dominate; memory: its bytes at the "
              "achieved bandwidth; launch: the per-kernel floor. A stage is `host` bound when Python dispatch "
              "takes longer than its kernels.", ""]
    phases = preds.get("phases") or {}
    if phases:
        L += ["## Phases (predicted)", ""]
        keys = sorted({k for v in phases.values() if isinstance(v, dict) for k in v})
        L += md_table(["phase", *(k[:-2] + " ms" if k.endswith("_s") else k for k in keys)],
                       [[ph, *(ms(v.get(k)) if k.endswith("_s") else v.get(k, "") for k in keys)]
                        for ph, v in phases.items() if isinstance(v, dict)])
        L += ["", "prefill is one forward over the page; decode is one step at the traced KV length.", ""]
    if preds.get("request"):
        L += ["## Request", ""]
        L += _request_table(preds["request"])
        L += [""]
    mem = preds.get("memory") or report.get("memory")
    if mem:  # the request's memory needs no device; with one, the fit check comes with it
        L += ["## Memory", ""]
        L += _memory_table(mem)
        L += [""]
    for phase in PHASES:
        if (report.get("module_types") or {}).get(phase):
            L += [f"## Top module classes, {phase} (exclusive counts)", ""]
            L += _top_module_types(report, phase)
            L += [""]
    cov = report.get("coverage") or {}
    L += ["## Coverage", ""]
    unc = cov.get("uncosted") or {}
    L += [f"{cov.get('ops_total', 0):,} ops traced, {cov.get('ops_costed', 0):,} costed by a rule "
          f"({cov.get('views', 0):,} of them views, free), {sum(unc.values()):,} uncosted.", ""]
    if unc:
        L += ["Uncosted ops (no cost rule; counted as zero FLOPs and bytes):", ""]
        L += md_table(["op", "count"], sorted(unc.items()), "lr")
    else:
        L += ["Uncosted ops: none."]
    sg = cov.get("semantic_groups") or {}
    if sg:
        L += ["", "Semantic groups (recognised multi-op patterns): "
              + ", ".join(f"{k} x{v}" for k, v in sg.items()) + "."]
    rules = cov.get("rules_used") or {}
    if rules:
        L += ["", "Cost rules used: " + ", ".join(f"{k} ({v})" for k, v in rules.items()) + "."]
    notes = model.get("build_notes") or []
    if notes:
        L += ["", "## Build notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(L) + "\n"


def write_summary_md(report: Mapping[str, Any], path: str | Path) -> None:
    Path(path).write_text(summary_markdown(report), encoding="utf-8")


