"""PNG plots of a report (roofline, time per stage, time per module type) and of a sweep.

Rendered with matplotlib's Agg canvas on private Figure objects (no pyplot state, no display needed), at a
fixed size (WIDTH_PX x HEIGHT_PX) and without a Software/date entry in the PNG metadata, so the same report
gives the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

WIDTH_PX, HEIGHT_PX, DPI = 1200, 800, 100
MAX_TYPES = 30  # module types shown per phase; the rest are summed into "other"
# report stage order (report.aggregate.REPORT_STAGES) and a fixed color per stage
STAGE_COLORS: dict[str, str] = {
    "vision.sam": "tab:blue",
    "vision.clip": "tab:orange",
    "projector": "tab:green",
    "decoder.prefill": "tab:red",
    "lm_head.prefill": "tab:purple",
    "decode.step": "tab:brown",
}
_FALLBACK_COLORS = ("tab:pink", "tab:gray", "tab:olive", "tab:cyan")
_SERIES_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                  "tab:gray", "tab:olive", "tab:cyan")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _figure(left: float = 0.08, wspace: float = 0.2) -> Figure:
    # fixed margins rather than a layout engine: constrained layout cost ~0.2 s per figure
    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    fig.subplots_adjust(left=left, right=0.97, bottom=0.09, top=0.9, wspace=wspace)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    # no "Software: matplotlib version ..." text chunk: the bytes depend on the data only
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 1})
    return path


def _stage_of(phase: str, stage: str) -> str:
    """A node's report stage (as report.aggregate.phase_stage names it)."""
    if phase == "decode":
        return "decode.step"
    return {"decoder": "decoder.prefill", "lm_head": "lm_head.prefill"}.get(stage, stage)


def _color(stage: str, order: list[str]) -> str:
    if stage in STAGE_COLORS:
        return STAGE_COLORS[stage]
    return _FALLBACK_COLORS[order.index(stage) % len(_FALLBACK_COLORS)]


def _roofline(report: Mapping[str, Any], path: Path) -> Path:
    pred = report["predictions"]
    dev = pred["device"]
    tc, cc, bw = float(dev["tc_flops"]), float(dev["cc_flops"]), float(dev["mem_bw"])
    points: dict[str, tuple[list[float], list[float]]] = {}
    hidden = 0
    for phase in ("prefill", "decode"):
        for r in pred.get("nodes", {}).get(phase, []):
            nbytes, secs = float(r.get("bytes", 0.0)), float(r.get("device_s", 0.0))
            if nbytes <= 0 or secs <= 0:
                continue
            flops = float(r.get("tc_flops", 0.0)) + float(r.get("cc_flops", 0.0))
            if flops <= 0:
                hidden += 1  # pure data movement: no place on a FLOP/s axis
                continue
            xs, ys = points.setdefault(_stage_of(phase, str(r.get("stage", ""))), ([], []))
            xs.append(flops / nbytes)
            ys.append(flops / secs)
    fig = _figure()
    ax = fig.add_subplot()
    all_x = [x for xs, _ in points.values() for x in xs]
    all_y = [y for _, ys in points.values() for y in ys]
    ridge_tc, ridge_cc = tc / bw, cc / bw
    lo = min([*all_x, ridge_cc, ridge_tc, 1.0]) / 4
    hi = max([*all_x, ridge_cc, ridge_tc]) * 4
    n = 200
    grid = [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]
    ax.plot(grid, [min(tc, x * bw) for x in grid], color="black", lw=2,
            label=f"tensor-core roof {tc / 1e12:g} TFLOP/s, {bw / 1e9:g} GB/s (datasheet)")
    ax.plot(grid, [min(cc, x * bw) for x in grid], color="black", lw=1.5, ls="--",
            label=f"CUDA-core roof {cc / 1e12:g} TFLOP/s (datasheet)")
    for ridge, peak, name, offset, ha in ((ridge_tc, tc, "tensor-core", (-10, 8), "right"),
                                          (ridge_cc, cc, "CUDA-core", (6, -26), "left")):
        # the ridge point: the intensity at which a kernel stops being memory-bound on that roof
        ax.axvline(ridge, color="gray", lw=0.8, ls=":")
        ax.plot([ridge], [peak], marker="o", color="black", ms=5)
        ax.annotate(f"{name} ridge: {ridge:,.0f} FLOP/B", (ridge, peak), textcoords="offset points",
                    xytext=offset, fontsize=9, ha=ha, fontweight="bold")
    order = [s for s in STAGE_COLORS if s in points] + sorted(s for s in points if s not in STAGE_COLORS)
    for stage in order:
        xs, ys = points[stage]
        ax.scatter(xs, ys, s=10, alpha=0.5, color=_color(stage, order), label=f"{stage} ({len(xs)} kernels)",
                   edgecolors="none")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ymin = min([*all_y, lo * bw]) / 4
    ax.set_ylim(max(ymin, 1e3), tc * 3)
    ax.set_xlabel("arithmetic intensity [FLOP/B]")
    ax.set_ylabel("predicted achieved [FLOP/s] (FLOPs / predicted kernel time)")
    wl = report.get("workload", {})
    prof = (pred.get("profile") or {}).get("source", "?")
    title = (f"Predicted roofline: {dev.get('name', dev.get('key', '?'))}, {wl.get('label', '?')} "
             f"B{wl.get('batch', '?')}, {pred.get('execution', '?')}, profile {prof}")
    if hidden:
        title += f"\n({hidden} kernels without FLOPs not shown)"
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    return _save(fig, path)


def _time_by_stage(report: Mapping[str, Any], path: Path) -> Path:
    stages: Mapping[str, Any] = report["predictions"]["stages"]
    names = [s for s in STAGE_COLORS if s in stages] + sorted(s for s in stages if s not in STAGE_COLORS)
    fig = _figure()
    ax = fig.add_subplot()
    width = 0.27
    for k, (key, label, color) in enumerate((("device_s", "device", "tab:blue"), ("host_s", "host", "tab:orange"),
                                             ("wall_s", "wall", "tab:gray"))):
        vals = [float(stages[s].get(key, 0.0)) * 1e3 for s in names]
        xs = [i + (k - 1) * width for i in range(len(names))]
        bars = ax.bar(xs, vals, width, label=label, color=color)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in vals], fontsize=7, padding=2)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("predicted time [ms]")
    dev = report["predictions"]["device"]
    wl = report.get("workload", {})
    ax.set_title(f"Time by stage: {dev.get('name', '?')}, {wl.get('label', '?')} B{wl.get('batch', '?')}, "
                 f"{report['predictions'].get('execution', '?')} (decode.step = one step)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _top(types: Mapping[str, Any]) -> list[tuple[str, float]]:
    vals = sorted(((t, float(v.get("device_s", 0.0)) * 1e3) for t, v in types.items()),
                  key=lambda tv: (-tv[1], tv[0]))
    vals = [tv for tv in vals if tv[1] > 0]
    if len(vals) > MAX_TYPES:
        rest = sum(v for _, v in vals[MAX_TYPES - 1:])
        vals = [*vals[: MAX_TYPES - 1], (f"other ({len(vals) - MAX_TYPES + 1} types)", rest)]
    return vals


def _time_by_module_type(report: Mapping[str, Any], path: Path) -> Path:
    types: Mapping[str, Any] = report["predictions"].get("module_types", {})
    fig = _figure(left=0.205, wspace=0.85)
    axes = fig.subplots(1, 2)
    for ax, phase, color in zip(axes, ("prefill", "decode"), ("tab:blue", "tab:brown"), strict=True):
        vals = _top(types.get(phase, {}))
        names = [t for t, _ in vals][::-1]  # largest on top
        ms = [v for _, v in vals][::-1]
        bars = ax.barh(range(len(names)), ms, color=color)
        ax.bar_label(bars, labels=[f"{v:.3f}" for v in ms], fontsize=7, padding=2)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        total = sum(ms)
        ax.set_title(f"{phase}{' (one step)' if phase == 'decode' else ''}: {total:.3f} ms device")
        ax.set_xlabel("predicted device time [ms]")
        ax.grid(True, axis="x", alpha=0.3)
        if not names:
            ax.text(0.5, 0.5, "no device time", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(f"Device time by module type (exclusive), {report['predictions']['device'].get('name', '?')}")
    return _save(fig, path)


def write_plots(report: Mapping[str, Any], folder: Path) -> list[Path]:
    """roofline.png, time_by_stage.png and time_by_module_type.png of a report with predictions."""
    if not report.get("predictions"):
        raise ValueError("the report has no predictions: plots need a device")
    folder = Path(folder)
    return [
        _roofline(report, folder / "roofline.png"),
        _time_by_stage(report, folder / "time_by_stage.png"),
        _time_by_module_type(report, folder / "time_by_module_type.png"),
    ]


# ---- sweeps ----
# One panel per device (or per mode when the sweep has one device); inside a panel colour = mode (or device),
# line style = execution, marker = output tokens; one legend naming each value once. Points that do not fit in
# GPU memory (a row's `fits` false) are drawn hollow and crossed in red.

_EXEC_STYLES = {"eager": "-", "fused": "--", "graph": ":"}
SWEEP_METRICS = (  # file, row key, scale, y label, title
    ("sweep_pages.png", "pages_per_gpu_day", 1.0, "pages per GPU-day", "throughput"),
    ("sweep_latency.png", "tpot_mean_s", 1e3, "per-token latency [ms] (mean over the output)",
     "per-token latency"),
    ("sweep_ttft.png", "ttft_s", 1e3, "time to first token [ms]", "time to first token"),
)


def _uniq(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _facets(rows: Sequence[Mapping[str, Any]]) -> tuple[str | None, str]:
    """(panel key, colour key): panels per device when there are several, else per mode."""
    devices = _uniq(r.get("device") for r in rows)
    modes = _uniq(r.get("mode") for r in rows)
    if len(devices) > 1:
        return "device", "mode"
    if len(modes) > 1:
        return "mode", "device"
    return None, "mode"


def _sweep_metric(rows: Sequence[Mapping[str, Any]], path: Path, key: str, scale: float, ylabel: str,
                  what: str) -> Path:
    from matplotlib.lines import Line2D

    fig = _figure()
    panel_key, color_key = _facets(rows)
    panels = _uniq(r.get(panel_key) for r in rows) if panel_key else [None]
    colors = {v: _SERIES_COLORS[i % len(_SERIES_COLORS)] for i, v in enumerate(_uniq(r.get(color_key) for r in rows))}
    executions = _uniq(r.get("execution") for r in rows)
    tokens = _uniq(r.get("output_tokens") for r in rows)
    markers = {t: _MARKERS[i % len(_MARKERS)] for i, t in enumerate(tokens)}
    batches = sorted(_uniq(int(r["batch"]) for r in rows))
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig.subplots_adjust(left=0.07, right=0.82, bottom=0.08, top=0.9, wspace=0.28, hspace=0.42)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    any_unfit = False
    for idx, panel in enumerate(panels):
        ax = axes[idx // ncols][idx % ncols]
        mine = [r for r in rows if panel_key is None or r.get(panel_key) == panel]
        for series in _uniq((r.get(color_key), r.get("execution"), r.get("output_tokens")) for r in mine):
            pts = sorted((int(r["batch"]), float(r[key]) * scale, bool(r.get("fits", True))) for r in mine
                         if (r.get(color_key), r.get("execution"), r.get("output_tokens")) == series)
            color = colors[series[0]]
            ax.plot([b for b, _, _ in pts], [y for _, y, _ in pts], color=color, lw=1.4,
                    ls=_EXEC_STYLES.get(str(series[1]), "-"), marker=markers[series[2]], ms=5)
            bad = [(b, y) for b, y, ok in pts if not ok]
            if bad:
                any_unfit = True
                ax.scatter([b for b, _ in bad], [y for _, y in bad], s=70, marker="o", facecolors="white",
                           edgecolors=color, zorder=3)
                ax.scatter([b for b, _ in bad], [y for _, y in bad], s=70, marker="x", color="red", zorder=4)
        if len(batches) > 1 and batches[-1] / batches[0] >= 8:
            ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches], fontsize=8)
        ys = [float(r[key]) * scale for r in mine]
        if ys and min(ys) > 0 and max(ys) / min(ys) > 30:
            ax.set_yscale("log")
        ax.tick_params(axis="y", labelsize=8)
        ax.set_title(str(panel) if panel is not None else "", fontsize=10)
        ax.set_xlabel("batch", fontsize=9)
        if idx % ncols == 0:
            ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    for idx in range(len(panels), nrows * ncols):
        axes[idx // ncols][idx % ncols].set_axis_off()
    if not rows:
        _empty(axes[0][0])
    handles = [Line2D([], [], color=c, lw=2, label=f"{color_key} {v}") for v, c in colors.items()]
    handles += [Line2D([], [], color="black", ls=_EXEC_STYLES.get(str(e), "-"), label=f"{e}") for e in executions]
    if len(tokens) > 1:
        handles += [Line2D([], [], color="black", lw=0, marker=m, label=f"{t} output tokens")
                    for t, m in markers.items()]
    if any_unfit:
        handles.append(Line2D([], [], color="red", lw=0, marker="x", ms=8, label="does not fit in GPU memory"))
    if handles:
        fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.83, 0.9), fontsize=8, frameon=False)
    out = f", {tokens[0]} output tokens" if len(tokens) == 1 else ""
    fig.suptitle(f"Sweep: predicted {what} by batch{out}" + (f", one panel per {panel_key}" if panel_key else ""))
    return _save(fig, path)


def _empty(ax: Any) -> None:
    ax.text(0.5, 0.5, "no sweep points", ha="center", va="center", transform=ax.transAxes)


def write_sweep_plots(rows: Sequence[Mapping[str, Any]], folder: Path) -> list[Path]:
    """sweep_pages.png (pages per GPU-day), sweep_latency.png (ms per output token) and sweep_ttft.png (TTFT),
    each by batch, of `run_sweep` rows (with `fits` from capacity.annotate where known)."""
    bad = [r for r in rows if not all(math.isfinite(float(r.get(k, 0.0)))
                                      for k in ("e2e_s", "pages_per_s", "pages_per_gpu_day", "ttft_s", "tpot_mean_s"))]
    if bad:
        raise ValueError(f"{len(bad)} sweep rows have non-finite times or rates")
    folder = Path(folder)
    return [_sweep_metric(rows, folder / name, key, scale, ylabel, what)
            for name, key, scale, ylabel, what in SWEEP_METRICS]
