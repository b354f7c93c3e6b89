"""Plotly figures of a report: time and FLOPs per stage, module classes per phase, the predicted roofline and the
request's memory.

Built with plotly's graph objects (which validate every attribute) and kept as plain figure JSON (data + layout),
so the HTML page only hands them to plotly.js: zoom, pan, hover, legend toggling and PNG export are the library's.
The sweep explorer's figures are built in the page (assets/report.js) because its filters rebuild them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from dsocr_trace.report.plots import STAGE_COLORS

# matplotlib's tab10, so stage colours match the PNG plots
TAB10 = {"tab:blue": "#1f77b4", "tab:orange": "#ff7f0e", "tab:green": "#2ca02c", "tab:red": "#d62728",
         "tab:purple": "#9467bd", "tab:brown": "#8c564b", "tab:pink": "#e377c2", "tab:gray": "#7f7f7f",
         "tab:olive": "#bcbd22", "tab:cyan": "#17becf"}
_EXTRA_COLORS = ("#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
WEIGHT_BLUES = ("#08306b", "#08519c", "#2171b5", "#4292c6", "#6baed6", "#9ecae1", "#c6dbef")
TOP_TYPES = 15  # module classes drawn per phase; the tree below the chart lists every module
# the page's look, as figure JSON, for the figures the sweep explorer builds in the browser
TEMPLATE: dict[str, Any] = pio.templates["plotly_white"].to_plotly_json()
_FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12}


def stage_color(stage: str, order: Sequence[str]) -> str:
    if stage in STAGE_COLORS:
        return TAB10[STAGE_COLORS[stage]]
    return _EXTRA_COLORS[list(order).index(stage) % len(_EXTRA_COLORS)]


def _layout(title: str, height: int, **kw: Any) -> dict[str, Any]:
    return {"title": {"text": title, "x": 0.01, "font": {"size": 14}}, "height": height, "template": "plotly_white",
            "font": _FONT, "margin": {"l": 80, "r": 30, "t": 60, "b": 50}, "hovermode": "closest", **kw}


def _json(fig: go.Figure) -> dict[str, Any]:
    return fig.to_plotly_json()  # type: ignore[no-any-return]


def stage_chart(stages: Sequence[Mapping[str, Any]], timed: bool) -> dict[str, Any]:
    """Grouped horizontal bars per stage: predicted device, host and wall ms (view "time") or tensor-core and
    CUDA-core GFLOPs (view "flops"); `visible` gives each view's trace visibility."""
    names = [str(s["name"]) for s in stages]
    info = [f"bound: {s['bound'] or '-'}<br>{s['kernels']:,} kernels, {s['intensity']:,.1f} FLOP/B" for s in stages]
    time_traces = [("device", "device_ms", TAB10["tab:blue"]), ("host", "host_ms", TAB10["tab:orange"]),
                   ("wall", "wall_ms", TAB10["tab:gray"])] if timed else []
    flop_traces = [("tensor-core", "tc_flops", TAB10["tab:blue"]), ("CUDA-core", "cc_flops", TAB10["tab:green"])]
    fig = go.Figure()
    for label, key, color in time_traces:
        fig.add_trace(go.Bar(name=label, y=names, x=[s[key] for s in stages], orientation="h", marker_color=color,
                             customdata=info, texttemplate="%{x:.3f}", textposition="outside",
                             hovertemplate=f"<b>%{{y}}</b><br>{label}: %{{x:.3f}} ms<br>%{{customdata}}"
                                           "<extra></extra>"))
    for label, key, color in flop_traces:
        fig.add_trace(go.Bar(name=label, y=names, x=[s[key] / 1e9 for s in stages], orientation="h",
                             marker_color=color, customdata=info, visible=not timed, texttemplate="%{x:,.1f}",
                             textposition="outside",
                             hovertemplate=f"<b>%{{y}}</b><br>{label}: %{{x:,.1f}} GFLOP<br>%{{customdata}}"
                                           "<extra></extra>"))
    time_title, flop_title = "predicted ms (decode.step: one step)", "GFLOP"
    fig.update_layout(**_layout("Stages", 110 + 22 * len(names) * (3 if timed else 2), barmode="group",
                                legend={"orientation": "h", "y": 1.08, "x": 0}))
    fig.update_layout(margin={"l": 140})
    fig.update_xaxes(title_text=time_title if timed else flop_title)
    fig.update_yaxes(autorange="reversed")
    n_t, n_f = len(time_traces), len(flop_traces)
    views = {"flops": {"visible": [False] * n_t + [True] * n_f, "x_title": flop_title}}
    if timed:
        views["time"] = {"visible": [True] * n_t + [False] * n_f, "x_title": time_title}
    return {"figure": _json(fig), "select": "stage-metric", "views": views}


def module_type_chart(types: Mapping[str, Sequence[Mapping[str, Any]]], timed: bool) -> dict[str, Any]:
    """One figure per phase: the TOP_TYPES module classes by predicted device ms (else GFLOPs), exclusive."""
    figures: dict[str, Any] = {}
    for phase, rows in types.items():
        top = list(rows)[:TOP_TYPES]
        labels = [t["type"] if len(t["type"]) <= 40 else t["type"][:39] + "…" for t in top]
        info = [f"{t['type']}<br>{t['flops'] / 1e9:,.2f} GFLOP, {t['bytes'] / 1e6:,.2f} MB"
                + (f"<br>device {t['device_ms']:,.3f} ms, host {t['host_ms']:,.3f} ms" if timed else "") for t in top]
        unit = "predicted device ms (exclusive, by module class)" if timed else "GFLOP (exclusive, by module class)"
        fig = go.Figure(go.Bar(y=labels, x=[t["device_ms"] if timed else t["flops"] / 1e9 for t in top],
                               orientation="h", customdata=info,
                               marker_color=TAB10["tab:brown" if phase == "decode" else "tab:blue"],
                               texttemplate="%{x:.3f}" if timed else "%{x:,.1f}", textposition="outside",
                               hovertemplate="%{customdata}<extra></extra>"))
        fig.update_layout(**_layout(f"Module classes, {phase}", 110 + 26 * max(1, len(top))))
        fig.update_layout(margin={"l": 290})
        fig.update_xaxes(title_text=unit)
        fig.update_yaxes(autorange="reversed")
        figures[phase] = _json(fig)
    return {"figures": figures, "select": "module-phase"}


def roofline_chart(roof: Mapping[str, Any]) -> dict[str, Any]:
    """Log-log roofline: each kernel with FLOPs at (FLOP/B, FLOPs / predicted time), one trace per stage (click the
    legend to hide one), the tensor-core and CUDA-core roofs of the datasheet; views "both", "prefill", "decode"."""
    tc, cc, bw = float(roof["tc"]), float(roof["cc"]), float(roof["bw"])
    points: Sequence[Mapping[str, Any]] = roof["points"]
    xs = [p["intensity"] for p in points] or [1.0]
    ys = [p["achieved"] for p in points] or [1.0]
    x_lo, x_hi = min([*xs, cc / bw, 1.0]) / 3, max([*xs, tc / bw]) * 3
    y_lo = max(1.0, min([*ys, x_lo * bw]) / 3)
    fig = go.Figure()
    phases: list[str] = []
    for i, stage in enumerate(roof["stages"]):
        mine = [p for p in points if p["stage"] == stage]
        phases.append(str(mine[0]["phase"]) if mine else "prefill")
        fig.add_trace(go.Scatter(
            name=f"{stage} ({len(mine)})", x=[p["intensity"] for p in mine], y=[p["achieved"] for p in mine],
            mode="markers", hovertext=[p["hover"] for p in mine], hovertemplate="%{hovertext}<extra></extra>",
            marker={"size": 6, "opacity": 0.7, "color": roof["stage_colors"][i]}))
    for label, peak, dash in (("tensor-core roof", tc, "solid"), ("CUDA-core roof", cc, "dash")):
        ridge = peak / bw
        start = max(x_lo, y_lo / bw)
        fig.add_trace(go.Scatter(name=label, x=[start, ridge, x_hi], y=[start * bw, peak, peak], mode="lines",
                                 line={"color": "#222", "width": 1.8, "dash": dash}, hoverinfo="skip"))
        # annotations on log axes take log10 coordinates
        fig.add_annotation(x=math.log10(ridge), y=math.log10(peak), xref="x", yref="y",
                           text=f"{label.split()[0]} ridge: {ridge:,.0f} FLOP/B at {peak / 1e12:,.1f} TFLOP/s",
                           showarrow=True, arrowhead=0, xanchor="right", ax=-30, ay=-30 if peak == tc else 30)
    n_shown = len(points)
    title = (f"Predicted roofline: {roof['device']} ({roof['execution']}), {n_shown} kernels"
             + (f", {roof['without_flops']} without FLOPs not placed" if roof["without_flops"] else "")
             + f"<br><sup>roofs: datasheet peaks; points: FLOPs / predicted kernel time (profile {roof['profile']})"
               "</sup>")
    fig.update_layout(**_layout(title, 620, legend={"itemclick": "toggle"}))
    fig.update_xaxes(type="log", title_text="arithmetic intensity [FLOP/B]", range=_log_range(x_lo, x_hi))
    fig.update_yaxes(type="log", title_text="predicted achieved FLOP/s", range=_log_range(y_lo, tc * 2.5),
                     exponentformat="SI")
    n_roofs = 2
    views = {"both": {"visible": [True] * (len(phases) + n_roofs)}}
    for ph in ("prefill", "decode"):
        views[ph] = {"visible": [p == ph for p in phases] + [True] * n_roofs}
    return {"figure": _json(fig), "select": "roof-phase", "views": views}


def _log_range(lo: float, hi: float) -> list[float]:
    return [math.log10(lo), math.log10(hi)]


def memory_chart(mem: Mapping[str, Any]) -> dict[str, Any]:
    """One stacked bar of the request's memory (weights by component, KV cache, activation peak, reserve) against
    the device's usable memory; the fp32 logits drawn hatched under the activation peak when it holds them."""
    fig = go.Figure()
    start = 0.0
    logits_base = 0.0
    for seg in mem["segments"]:
        if str(seg["name"]).startswith("activation"):
            logits_base = start
        gib = seg["bytes"] / 2**30
        fig.add_trace(go.Bar(name=f"{seg['name']} {gib:,.2f} GiB", y=["request"], x=[gib], orientation="h",
                             marker_color=seg["color"], customdata=[seg.get("note", "")],
                             hovertemplate=f"<b>{seg['name']}</b><br>{gib:,.2f} GiB<br>%{{customdata}}"
                                           "<extra></extra>"))
        start += gib
    if mem["logits"] > 0 and mem.get("logits_in_peak"):
        gib = mem["logits"] / 2**30
        fig.add_trace(go.Bar(name=f"fp32 logits {gib:,.2f} GiB (inside the activation peak)", y=["of which"],
                             x=[gib], base=[logits_base], orientation="h",
                             marker={"color": "#2ca02c", "pattern": {"shape": "/"}},
                             hovertemplate=f"<b>fp32 logits</b><br>{gib:,.2f} GiB: live at the end of prefill, "
                                           "counted in the activation peak<extra></extra>"))
    device = mem["device"] / 2**30
    total = mem["total"] / 2**30
    fits = f"fits, {device - total:,.2f} GiB free" if mem["fits"] else "DOES NOT FIT"
    fig.add_vline(x=device, line={"color": "#c62828", "width": 2.5, "dash": "dash"},
                  annotation={"text": f"device memory {device:,.2f} GiB", "font": {"color": "#c62828"}},
                  annotation_position="top left")
    fig.update_layout(**_layout(f"Memory of the request: {total:,.2f} of {device:,.2f} GiB ({fits})", 300,
                                barmode="stack", legend={"orientation": "h", "y": -0.35, "x": 0,
                                                                 "traceorder": "normal"}))
    fig.update_xaxes(title_text="GiB", range=[0, max(total, device) * 1.04])
    fig.update_yaxes(categoryorder="array", categoryarray=["of which", "request"])
    return {"figure": _json(fig)}


def train_chart(passes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Predicted device and host ms of each pass of one training step (forward, backward, optimizer, ...)."""
    names = list(passes)
    fig = go.Figure()
    for label, key, color in (("device", "device_s", TAB10["tab:blue"]), ("host", "host_s", TAB10["tab:orange"])):
        fig.add_trace(go.Bar(name=label, y=names, x=[float(passes[p].get(key) or 0.0) * 1e3 for p in names],
                             orientation="h", marker_color=color, texttemplate="%{x:,.2f}", textposition="outside",
                             hovertemplate=f"<b>%{{y}}</b><br>{label}: %{{x:,.3f}} ms<extra></extra>"))
    fig.update_layout(**_layout("Training step, predicted per pass", 110 + 44 * max(1, len(names)), barmode="group",
                                legend={"orientation": "h", "y": 1.08, "x": 0}))
    fig.update_layout(margin={"l": 140})
    fig.update_xaxes(title_text="predicted ms")
    fig.update_yaxes(autorange="reversed")
    return {"figure": _json(fig)}
