"""Single-file interactive HTML: a report (stages, modules, predicted roofline, memory) or a sweep explorer.

The page is one file: the data and the Plotly figures (report.charts) as JSON in a <script type="application/json">
element, plotly.js from the installed plotly package, and the stylesheet and the page script (assets/report.css,
assets/report.js: the module tree, the sweep explorer's filters and table) inlined. Nothing is fetched: no CDN,
no fonts, no network. The same inputs and plotly version give the same bytes (keys sorted, no timestamps).
The text facts (workload, device, profile, warnings) are written here, so they read without JavaScript.
"""

from __future__ import annotations

import html
import inspect
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import orjson

from dsocr_trace.costs.base import find_rule
from dsocr_trace.hardware.profile import profile_kind
from dsocr_trace.report import charts
from dsocr_trace.report.plots import STAGE_COLORS
from dsocr_trace.report.units import gib, num, si


def _asset(name: str) -> str:
    return resources.files("dsocr_trace.report").joinpath("assets", name).read_text(encoding="utf-8")


def _json_for_script(data: Any) -> str:
    # inside <script> only "</" can end the element early; "<\/" reads back as "</"
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode().replace("</", "<\\/")


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def _page(title: str, body: str, data: Mapping[str, Any]) -> str:
    import plotly

    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n<style>\n{_asset('report.css')}</style>\n</head>\n<body>\n"
        f"{body}\n"
        f"<script id=\"dsocr-data\" type=\"application/json\">{_json_for_script(data)}</script>\n"
        f"<script id=\"plotly-js\" data-version=\"{plotly.__version__}\">\n{_plotly_js()}</script>\n"
        f"<script id=\"page-js\">\n{_asset('report.js')}</script>\n</body>\n</html>\n"
    )


def _e(x: Any) -> str:
    return html.escape(str(x))


def routing_of(report: Mapping[str, Any]) -> str:
    """The MoE routing the report's costs assume: options.routing (a label), else options.moe_skew."""
    opts = report.get("options") or {}
    if opts.get("routing"):
        return str(opts["routing"])
    skew = num(opts.get("moe_skew", 0.0))
    return "uniform" if skew == 0 else f"skew:{skew:g}"


# -- report ----------------------------------------------------------------------------------------------------


def _rule_text(op: str) -> tuple[str, str]:
    """(rule name as module.function, first paragraph of its docstring or '') for an op or plan item."""
    if op == "fused.pointwise":
        return "plan.plan_fused: pointwise chain fused into one kernel", "FLOPs summed over the chain; bytes: its "\
               "external inputs read once, its last output written once"
    fn = find_rule(op)
    if fn is None:
        return "no rule (uncosted)", ""
    doc = inspect.getdoc(fn) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    return f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}", first[:300]


def _shape_text(n: Mapping[str, Any] | None) -> str:
    if n is None:
        return ""
    ins = n.get("input_shapes") or []
    outs = n.get("output_shapes") or []

    def one(s: Any) -> str:
        return "x".join(str(d) for d in s) if s else "()"

    return ", ".join(one(s) for s in ins) + " -> " + ", ".join(one(s) for s in outs)


def _roofline(report: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]] | None) -> dict[str, Any] | None:
    """Every kernel with FLOPs, bytes and a predicted time as a roofline point with its hover text (op, module,
    cost rule and its docstring, shapes, prediction), grouped by stage in report order."""
    pred = report.get("predictions") or {}
    if not pred.get("nodes"):
        return None
    dev = pred.get("device") or {}
    by_key = {(n.get("phase"), n.get("id")): n for n in nodes or []}
    stage_order: list[str] = []
    points: list[dict[str, Any]] = []
    without = 0
    rules: dict[str, tuple[str, str]] = {}
    for phase in ("prefill", "decode"):
        for r in (pred["nodes"].get(phase) or []):
            flops = num(r.get("tc_flops")) + num(r.get("cc_flops"))
            nbytes, secs = num(r.get("bytes")), num(r.get("device_s"))
            if secs <= 0 or nbytes <= 0:
                continue
            if flops <= 0:
                without += 1
                continue
            stage = str(r.get("stage", ""))
            if stage not in stage_order:
                stage_order.append(stage)
            op = str(r.get("op", ""))
            if op not in rules:
                rules[op] = _rule_text(op)
            rule, doc = rules[op]
            t = by_key.get((phase, r.get("id")))
            shapes = _shape_text(t) if t is not None and t.get("op") == op else ""
            if int(r.get("fused_ops", 1) or 1) > 1:
                shapes = (shapes + "; " if shapes else "") + f"{r.get('fused_ops')} ops fused"
            module = f"{r.get('module_path', '') or '(top level)'} ({r.get('module_type', '') or 'Root'})"
            hover = (f"<b>{_e(op)}</b> ({_e(r.get('kind', ''))}, {phase})<br>module: {_e(module)}<br>rule: {_e(rule)}"
                     + (f"<br><i>{_e(doc)}</i>" if doc else "") + (f"<br>shapes: {_e(shapes)}" if shapes else "")
                     + f"<br>{si(flops, 'FLOP')}, {si(nbytes, 'B')}, {flops / nbytes:,.1f} FLOP/B<br>predicted "
                       f"{secs * 1e6:,.2f} µs device ({_e(r.get('bound', ''))}-bound, efficiency "
                       f"{num(r.get('efficiency')):,.2f}, {_e(r.get('source', ''))}), "
                       f"{num(r.get('host_s')) * 1e6:,.2f} µs host<br>achieved {si(flops / secs, 'FLOP/s')}")
            points.append({"intensity": flops / nbytes, "achieved": flops / secs, "stage": stage, "phase": phase,
                           "op": op, "rule": rule, "hover": hover})
    order = [st for st in STAGE_COLORS if st in stage_order] + [st for st in stage_order if st not in STAGE_COLORS]
    return {"tc": num(dev.get("tc_flops")), "cc": num(dev.get("cc_flops")), "bw": num(dev.get("mem_bw")),
            "device": str(dev.get("name", dev.get("key", "?"))), "execution": str(pred.get("execution", "?")),
            "profile": str((pred.get("profile") or {}).get("source", "?")), "stages": order,
            "stage_colors": [charts.stage_color(st, order) for st in order], "points": points,
            "without_flops": without}


def _memory(report: Mapping[str, Any]) -> dict[str, Any] | None:
    mem = (report.get("predictions") or {}).get("memory")
    if not mem:
        return None
    comps = sorted((mem.get("weights_by_component") or {}).items(), key=lambda kv: (-num(kv[1]), kv[0]))
    blues = charts.WEIGHT_BLUES
    segs = [{"name": f"weights: {k}", "bytes": num(v), "color": blues[min(i, len(blues) - 1)],
             "note": f"{mem.get('weight_dtype', '?')} weights"} for i, (k, v) in enumerate(comps) if num(v) > 0]
    segs += [
        {"name": "KV cache", "bytes": num(mem.get("kv_cache_bytes")), "color": "#ff7f0e",
         "note": f"{num(mem.get('kv_bytes_per_token')):,.0f} B per token x {mem.get('kv_context_tokens')} tokens "
                 f"x batch"},
        {"name": "activation peak", "bytes": num(mem.get("activation_peak_bytes")), "color": "#2ca02c",
         "note": "live non-parameter tensors at their peak, at "
                 f"{mem.get('activation_peak_op') or 'node ' + str(mem.get('activation_peak_at_node'))}"
                 + (f" in {mem['activation_peak_module']}" if mem.get("activation_peak_module") else "")},
        {"name": "runtime reserve", "bytes": num(mem.get("reserve_bytes")), "color": "#7f7f7f",
         "note": "CUDA context, cuBLAS workspaces, allocator slack (a planning margin)"},
    ]
    return {"segments": segs, "total": num(mem.get("total_bytes")), "device": num(mem.get("device_bytes")),
            "fits": bool(mem.get("fits")), "logits": num(mem.get("logits_bytes")),
            "logits_in_peak": bool(mem.get("activation_peak_holds_logits"))}


def _module_types(report: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    pred = (report.get("predictions") or {}).get("module_types") or {}
    out: dict[str, list[dict[str, Any]]] = {}
    for phase, types in (report.get("module_types") or {}).items():
        p = pred.get(phase) or {}
        rows = [{"type": t, "flops": num(v.get("flops")), "bytes": num(v.get("bytes")),
                 "device_ms": num((p.get(t) or {}).get("device_s")) * 1e3,
                 "host_ms": num((p.get(t) or {}).get("host_s")) * 1e3} for t, v in types.items()]
        key = "device_ms" if pred else "flops"
        out[phase] = sorted(rows, key=lambda r: (-r[key], r["type"]))
    return out


def _modules(report: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    pred = (report.get("predictions") or {}).get("modules") or {}
    out: dict[str, list[dict[str, Any]]] = {}
    for phase, mods in (report.get("modules") or {}).items():
        p = pred.get(phase) or {}
        out[phase] = [{"path": path, "type": str(m.get("module_type", "")),
                       "flops": num(m.get("tc_flops")) + num(m.get("cc_flops")),
                       "bytes": num(m.get("bytes_read")) + num(m.get("bytes_written")),
                       "kernels": num(m.get("kernels")),
                       "device_ms": num((p.get(path) or {}).get("device_s")) * 1e3,
                       "host_ms": num((p.get(path) or {}).get("host_s")) * 1e3} for path, m in sorted(mods.items())]
    return out


def _stages(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    ps = (report.get("predictions") or {}).get("stages") or {}
    out = []
    for name, st in (report.get("stages") or {}).items():
        p = ps.get(name) or {}
        out.append({"name": name, "tc_flops": num(st.get("tc_flops")), "cc_flops": num(st.get("cc_flops")),
                    "bytes": num(st.get("bytes")), "intensity": num(st.get("intensity_flop_per_byte")),
                    "kernels": int(num(st.get("kernels"))), "device_ms": num(p.get("device_s")) * 1e3,
                    "host_ms": num(p.get("host_s")) * 1e3, "wall_ms": num(p.get("wall_s")) * 1e3,
                    "bound": str(p.get("bound", ""))})
    return out


def report_warnings(report: Mapping[str, Any]) -> list[str]:
    pred = report.get("predictions") or {}
    out = []
    if pred:
        src = str((pred.get("profile") or {}).get("source", ""))
        if profile_kind(src) == "datasheet":
            out.append("Times come from datasheet figures only (profile spec-default): this GPU has not been "
                       "calibrated. Run `dsocr-trace calibrate` on it for measured numbers.")
        elif "transferred" in src:
            out.append(f"Times use a calibration moved from another GPU ({src}): not measured on this one.")
        mem = pred.get("memory") or {}
        if mem and not mem.get("fits", True):
            out.append(f"The request does not fit in GPU memory: it needs {num(mem.get('total_bytes')) / 2**30:,.1f}"
                       f" GiB of {num(mem.get('device_bytes')) / 2**30:,.1f} GiB; the times assume it ran.")
        if pred.get("weight_dtype") == "fp8":
            out.append("fp8 weights apply to the decoder and lm_head in the memory figures; the vision encoders stay "
                       "bf16 (as served).")
    unc = sum((report.get("coverage") or {}).get("uncosted", {}).values())
    if unc:
        out.append(f"{unc} traced ops have no cost rule (counted as zero): see coverage in summary.md.")
    return out


def _report_body(report: Mapping[str, Any]) -> tuple[str, str]:
    model = report.get("model") or {}
    wl = report.get("workload") or {}
    pred = report.get("predictions") or {}
    tool = report.get("tool") or {}
    title = f"dsocr-trace: {model.get('id', '?')}, {wl.get('label', '?')} B{wl.get('batch', '?')}"
    facts = [("model", model.get("id", "?")), ("config", model.get("config_source", "?")),
             ("mode", wl.get("label", "?")), ("batch", wl.get("batch", "?")),
             ("vision tokens", wl.get("vision_tokens", "?")), ("prefill tokens", wl.get("prefill_tokens", "?")),
             ("output tokens", wl.get("output_tokens", "?")), ("MoE routing", routing_of(report))]
    if pred:
        dev = pred.get("device") or {}
        prof = pred.get("profile") or {}
        src = str(prof.get("label") or prof.get("source", "?"))
        facts += [("GPU", f"{dev.get('name', '?')} ({dev.get('key', '?')})"), ("execution", pred.get("execution", "?")),
                  ("weights", pred.get("weight_dtype", "?")), ("profile", src)]
    facts.append(("tool", f"{tool.get('name', 'dsocr-trace')} {tool.get('version', '')}, torch {tool.get('torch', '?')}"
                          f", transformers {tool.get('transformers', '?')}"))
    parts = [f"<h1>{_e(title)}</h1>", "<div class=\"facts\">"]
    parts += [f"<div><span class=\"muted\">{_e(k)}</span> <b>{_e(v)}</b></div>" for k, v in facts]
    parts.append("</div>")
    req = pred.get("request") or {}
    mem = pred.get("memory") or {}
    if req:
        kpis = [("time to first token", f"{num(req.get('ttft_s')) * 1e3:,.1f} ms"),
                ("per output token (mean)", f"{num(req.get('tpot_mean_s')) * 1e3:,.2f} ms"),
                ("end to end", f"{num(req.get('e2e_s')):,.2f} s"),
                ("pages per GPU-day", f"{num(req.get('pages_per_gpu_day')):,.0f}")]
        if req.get("usd_per_million_pages") is not None:
            kpis.append(("USD per million pages", f"${num(req.get('usd_per_million_pages')):,.0f} at "
                                                  f"${num(req.get('price_per_hour_usd')):,.2f}/GPU-hour"))
        if req.get("confidence"):
            kpis.append(("trust", str(req["confidence"])))
        if mem:
            fits = "fits" if mem.get("fits") else "DOES NOT FIT"
            kpis.append(("memory", f"{num(mem.get('total_bytes')) / 2**30:,.1f} / "
                                   f"{num(mem.get('device_bytes')) / 2**30:,.1f} GiB, {fits}"))
        parts.append("<div class=\"kpis\">" + "".join(
            f"<div class=\"kpi\"><div class=\"v\">{_e(v)}</div><div class=\"k\">{_e(k)}</div></div>" for k, v in kpis)
            + "</div>")
    notes = [str(req[k]) for k in ("confidence_note", "price_source") if req.get(k)]
    parts += [f"<p class=\"muted\">{_e(n)}</p>" for n in notes]
    parts += [f"<div class=\"warn\">{_e(w)}</div>" for w in report_warnings(report)]
    timed = bool(pred)
    parts += ["<h2>Stages</h2>",
              "<div class=\"controls\"><label>show <select id=\"stage-metric\">"
              + ("<option value=\"time\" selected>predicted time</option>" if timed else "")
              + "<option value=\"flops\">FLOPs</option></select></label>"
              "<span class=\"muted\">decode.step is one decode step; the other stages run once per prefill"
              "</span></div>",
              "<div class=\"chart\" id=\"stage-chart\"></div>",
              "<h2>Modules</h2>",
              "<div class=\"controls\"><label>phase <select id=\"module-phase\"><option value=\"prefill\">prefill"
              "</option><option value=\"decode\">decode (one step)</option></select></label>"
              "<span class=\"muted\">bars: the 15 largest module classes (exclusive); table: the module tree "
              "(inclusive, click ▸ to open)</span></div>",
              "<div class=\"chart\" id=\"type-chart\"></div>",
              "<div class=\"scroll\" id=\"module-tree\"></div>"]
    if timed:
        parts += ["<h2>Roofline (predicted)</h2>",
                  "<div class=\"controls\"><label>phase <select id=\"roof-phase\"><option value=\"both\">both"
                  "</option><option value=\"prefill\">prefill</option><option value=\"decode\">decode step</option>"
                  "</select></label><span class=\"muted\">hover a point for its op, module, cost rule and "
                  "prediction; click a stage in the legend to hide it, drag to zoom, double-click to reset"
                  "</span></div>",
                  "<div class=\"chart\" id=\"roofline\"></div>",
                  "<h2>Memory</h2>",
                  "<div class=\"chart\" id=\"memory-chart\"></div>"]
    else:
        parts += ["<h2>Roofline and memory</h2>",
                  "<p class=\"muted\">No device was given: rerun with <code>--device NAME</code> for predicted "
                  "times, the roofline and the memory picture.</p>"]
    if report.get("train"):
        parts += _train_parts(report["train"])
    parts.append(f"<footer>Written by {_e(tool.get('name', 'dsocr-trace'))} {_e(tool.get('version', ''))} from "
                 "report.json; every number is a prediction from the traced graph and the cost rules.</footer>")
    return title, "\n".join(parts)


def _gib_text(x: Any) -> str:
    return f"{gib(num(x))} GiB"


def _train_parts(train: Mapping[str, Any]) -> list[str]:
    """The training step (--phase train): per-pass counts and predicted times, its memory; static tables."""
    cfg = train.get("config") or {}
    pred = train.get("predictions") or {}
    parts = ["<h2>Training step</h2>",
             "<p class=\"muted\">" + _e(", ".join(f"{k} {v}" for k, v in sorted(cfg.items()))) + "</p>"]
    if pred:
        step = pred.get("step") or {}
        kpis = [("step wall", f"{num(step.get('wall_s')) * 1e3:,.1f} ms"),
                ("step device time", f"{num(step.get('device_s')) * 1e3:,.1f} ms"),
                ("trust", str(pred.get("confidence", "?")))]
        parts.append("<div class=\"kpis\">" + "".join(
            f"<div class=\"kpi\"><div class=\"v\">{_e(v)}</div><div class=\"k\">{_e(k)}</div></div>"
            for k, v in kpis) + "</div>")
        if pred.get("confidence_note"):
            parts.append(f"<p class=\"muted\">{_e(pred['confidence_note'])}</p>")
    heads = ["pass", "FLOPs", "bytes", "kernels"] + (["device ms", "host ms"] if pred else [])
    rows = []
    for p, c in (train.get("passes") or {}).items():
        cells = [f"<td class=\"l\">{_e(p)}</td>", f"<td>{num(c.get('flops')):,.4g}</td>",
                 f"<td>{num(c.get('bytes')):,.4g}</td>", f"<td>{int(num(c.get('kernels'))):,}</td>"]
        if pred:
            t = (pred.get("passes") or {}).get(p)
            if t is None and p == "total":
                t = {"device_s": num((pred.get("step") or {}).get("device_s")),
                     "host_s": num((pred.get("step") or {}).get("host_s"))}
            t = t or {}
            cells += [f"<td>{num(t.get('device_s')) * 1e3:,.3f}</td>", f"<td>{num(t.get('host_s')) * 1e3:,.3f}</td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    if pred.get("passes"):
        parts.append("<div class=\"chart\" id=\"train-chart\"></div>")
    parts.append("<div class=\"scroll\"><table class=\"data\" id=\"train-passes\"><thead><tr>"
                 + "".join(("<th class=\"l\">" if i == 0 else "<th>") + f"{_e(h)}</th>" for i, h in enumerate(heads))
                 + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")
    mem = train.get("memory") or {}
    if mem:
        items = [("weights", mem.get("weights_bytes")), ("optimizer states", mem.get("optimizer_state_bytes")),
                 ("gradients", mem.get("gradients_bytes")), ("saved activations", mem.get("saved_activations_bytes")),
                 ("peak", (mem.get("peak") or {}).get("total_bytes"))]
        peak_pass = (mem.get("peak") or {}).get("pass")
        fit = "" if "fits" not in mem else (", fits on the device" if mem["fits"] else ", DOES NOT FIT on the device")
        parts.append("<div class=\"facts\" id=\"train-memory\">" + "".join(
            f"<div><span class=\"muted\">{_e(k)}</span> <b>{_e(_gib_text(v))}</b></div>" for k, v in items)
            + f"<div><span class=\"muted\">peak in</span> <b>{_e(peak_pass or '?')}{_e(fit)}</b></div></div>")
    return parts


def report_html(report: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]] | None = None) -> str:
    """The HTML page of a report (as build_report returns it or read back from report.json); `nodes`
    (node_rows.trace_nodes) adds tensor shapes to the roofline's hover text."""
    title, body = _report_body(report)
    timed = bool(report.get("predictions"))
    figures = {"stage-chart": charts.stage_chart(_stages(report), timed),
               "type-chart": charts.module_type_chart(_module_types(report), timed)}
    roof = _roofline(report, nodes)
    if roof is not None:
        figures["roofline"] = charts.roofline_chart(roof)
    mem = _memory(report)
    if mem is not None:
        figures["memory-chart"] = charts.memory_chart(mem)
    train_pred = (report.get("train") or {}).get("predictions") or {}
    if train_pred.get("passes"):
        figures["train-chart"] = charts.train_chart(train_pred["passes"])
    data = {"kind": "report", "has_predictions": timed, "charts": figures, "modules": _modules(report)}
    return _page(title, body, data)


# -- sweep -----------------------------------------------------------------------------------------------------

_METRICS = (("tpot_mean_ms", "ms per output token (mean)"), ("ttft_ms", "TTFT ms"), ("e2e_s", "end to end s"),
            ("batch", "batch"), ("memory_gib", "memory GiB"), ("pages_per_gpu_day", "pages per GPU-day"),
            ("tokens_per_s", "tokens/s"), ("usd_per_million_pages", "$ per million pages"))


def _select(ident: str, chosen: str) -> str:
    opts = "".join(f"<option value=\"{k}\"{' selected' if k == chosen else ''}>{_e(label)}</option>"
                   for k, label in _METRICS)
    return f"<select id=\"{ident}\">{opts}</select>"


def sweep_html(rows: Sequence[Mapping[str, Any]], title: str = "dsocr-trace sweep") -> str:
    """An explorer of sweep (or plan) rows: filters by mode, device, execution, batch and output tokens, a
    scatter of any two metrics (points that do not fit in GPU memory crossed in red) and a sortable table."""
    devices: dict[str, str] = {}
    for r in rows:
        devices.setdefault(str(r.get("device")), str(r.get("profile", "?")))
    unfit = sum(1 for r in rows if r.get("fits") is False)
    routing = sorted({str(r.get("routing", "?")) for r in rows})
    parts = [f"<h1>{_e(title)}</h1>", "<div class=\"facts\">",
             f"<div><span class=\"muted\">points</span> <b>{len(rows)}</b></div>",
             f"<div><span class=\"muted\">do not fit in GPU memory</span> <b>{unfit}</b></div>",
             f"<div><span class=\"muted\">MoE routing</span> <b>{_e(', '.join(routing))}</b></div>",
             "</div>", "<div class=\"facts\">"]
    parts += [f"<div><span class=\"muted\">{_e(d)}</span> <b>{_e(src)}</b> ({_e(profile_kind(src))})</div>"
              for d, src in devices.items()]
    parts.append("</div>")
    datasheet = [d for d, src in devices.items() if profile_kind(src) == "datasheet"]
    if datasheet:
        parts.append(f"<div class=\"warn\">{_e(', '.join(datasheet))}: priced from datasheet figures only (not "
                     "calibrated on that GPU). Run `dsocr-trace calibrate` there for measured numbers.</div>")
    if rows and unfit == len(rows):
        parts.append("<div class=\"warn\">No point fits in GPU memory.</div>")
    parts += ["<h2>Points</h2>", "<div class=\"controls\" id=\"filters\"></div>",
              "<div class=\"controls\"><label><input type=\"checkbox\" id=\"fit-only\"> only points that fit in GPU "
              f"memory</label><label>x {_select('x-metric', 'tpot_mean_ms')}</label>"
              f"<label>y {_select('y-metric', 'pages_per_gpu_day')}</label></div>",
              "<p class=\"muted\">colour: GPU; marker: execution (circle eager, diamond graph, triangle compiled, "
              "square fused); open and crossed in red: does not fit in GPU memory. Click the legend to hide a "
              "series, drag to zoom, double-click to reset.</p>",
              "<div class=\"chart\" id=\"sweep-chart\"></div>",
              "<div class=\"chart\" id=\"sweep-gpus\"></div>",
              "<p class=\"muted\">Click a column header to sort.</p>",
              "<div class=\"scroll\" id=\"sweep-table\"></div>",
              "<footer>Written by dsocr-trace from the sweep rows; every number is a prediction.</footer>"]
    return _page(title, "\n".join(parts), {"kind": "sweep", "rows": [dict(r) for r in rows],
                                             "template": charts.TEMPLATE})
