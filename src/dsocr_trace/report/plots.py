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
            label=f"tensor-core roof {tc / 1e12:g} TFLOP/s, {bw / 1e9:g} GB/s")
    ax.plot(grid, [min(cc, x * bw) for x in grid], color="black", lw=1.5, ls="--",
            label=f"CUDA-core roof {cc / 1e12:g} TFLOP/s")
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
    ax.set_ylabel("achieved [FLOP/s]")
    wl = report.get("workload", {})
    title = (f"Roofline: {dev.get('name', dev.get('key', '?'))}, {wl.get('label', '?')} B{wl.get('batch', '?')}, "
             f"{pred.get('execution', '?')}")
    if hidden:
        title += f"  ({hidden} kernels without FLOPs not shown)"
    ax.set_title(title)
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

_SERIES_KEYS = ("device", "execution", "batch", "output_tokens", "mode")
_SHORT = {"device": "", "execution": "", "batch": "B", "output_tokens": "out ", "mode": ""}


def _uniq(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _label(row: Mapping[str, Any], keys: Sequence[str], varying: set[str]) -> str:
    parts = [f"{_SHORT[k]}{row.get(k)}" for k in keys if k in varying]
    return " ".join(parts) or str(row.get(keys[0], ""))


def _empty(ax: Any) -> None:
    ax.text(0.5, 0.5, "no sweep points", ha="center", va="center", transform=ax.transAxes)


def _sweep_latency(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    fig = _figure()
    ax = fig.add_subplot()
    modes = _uniq(r.get("mode") for r in rows)
    keys = ("device", "execution", "batch", "output_tokens")
    varying = {k for k in keys if len(_uniq(r.get(k) for r in rows)) > 1} | {"device"}
    series = _uniq(tuple(r.get(k) for k in keys) for r in rows)
    width = 0.8 / max(len(series), 1)
    for j, s in enumerate(series):
        by_mode = {r.get("mode"): float(r["e2e_s"]) for r in rows if tuple(r.get(k) for k in keys) == s}
        xs = [i + (j - (len(series) - 1) / 2) * width for i, m in enumerate(modes) if m in by_mode]
        ys = [by_mode[m] for m in modes if m in by_mode]
        label = _label(dict(zip(keys, s, strict=True)), keys, varying)
        ax.bar(xs, ys, width, label=label, color=_SERIES_COLORS[j % len(_SERIES_COLORS)],
               hatch=("", "//", "..", "xx")[(j // len(_SERIES_COLORS)) % 4])
    if rows:
        ax.set_xticks(range(len(modes)), [str(m) for m in modes])
        ax.legend(fontsize=8, ncols=2 if len(series) > 8 else 1)
    else:
        _empty(ax)
    ax.set_xlabel("mode")
    ax.set_ylabel("end-to-end latency per request [s]")
    ax.set_title("Sweep: predicted end-to-end latency by mode")
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def _sweep_pages(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    fig = _figure()
    ax = fig.add_subplot()
    keys = ("mode", "device", "execution", "output_tokens")
    varying = {k for k in keys if len(_uniq(r.get(k) for r in rows)) > 1} | {"mode", "device"}
    series = _uniq(tuple(r.get(k) for k in keys) for r in rows)
    batches = sorted(_uniq(int(r["batch"]) for r in rows))
    for j, s in enumerate(series):
        pts = sorted((int(r["batch"]), float(r["pages_per_s"])) for r in rows
                     if tuple(r.get(k) for k in keys) == s)
        ax.plot([b for b, _ in pts], [p for _, p in pts], marker=_MARKERS[j % len(_MARKERS)],
                color=_SERIES_COLORS[j % len(_SERIES_COLORS)], label=_label(dict(zip(keys, s, strict=True)), keys,
                                                                            varying))
    if rows:
        if len(batches) > 1 and batches[-1] / batches[0] >= 8:
            ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.legend(fontsize=8, ncols=2 if len(series) > 8 else 1)
    else:
        _empty(ax)
    ax.set_xlabel("batch (pages per forward)")
    ax.set_ylabel("pages / s")
    ax.set_title("Sweep: predicted throughput by batch")
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def write_sweep_plots(rows: Sequence[Mapping[str, Any]], folder: Path) -> list[Path]:
    """sweep_latency.png (e2e latency by mode, a bar per device/batch/...) and sweep_pages.png (pages/s by
    batch, a line per mode/device/...) of `run_sweep` rows."""
    bad = [r for r in rows if not all(math.isfinite(float(r.get(k, 0.0))) for k in ("e2e_s", "pages_per_s"))]
    if bad:
        raise ValueError(f"{len(bad)} sweep rows have non-finite e2e_s or pages_per_s")
    folder = Path(folder)
    return [_sweep_latency(rows, folder / "sweep_latency.png"), _sweep_pages(rows, folder / "sweep_pages.png")]
