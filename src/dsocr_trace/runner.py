"""What each CLI command does, kept apart from argument parsing so tests can call it directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dsocr_trace.analyze import Analysis, run_analysis
from dsocr_trace.errors import UserError
from dsocr_trace.report.build import build_report, dumps
from dsocr_trace.report.output import atomic_dir, atomic_file, check_target
from dsocr_trace.workload import make_workload


def _fmt(x: float, unit: str) -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:,.2f} {prefix}{unit}"
    return f"{x:,.0f} {unit}"


def print_summary(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    wl = report["workload"]
    p = report["params"]
    console = Console(width=140)
    title = (f"{report['model']['id']}  mode {wl['label']}  vision tokens {wl['vision_tokens']}  "
             f"prefill {wl['prefill_tokens']} tok  batch {wl['batch']}  decode KV {wl['decode_kv_len']}")
    t = Table(title=title, title_justify="left")
    for col in ("stage", "tensor-core", "CUDA-core", "bytes", "FLOP/B", "kernels", "ops"):
        t.add_column(col, justify="right" if col != "stage" else "left")
    preds = (report.get("predictions") or {}).get("stages") or {}
    if preds:
        for col in ("device ms", "host ms", "wall ms", "bound"):
            t.add_column(col, justify="right")
    for name, s in report["stages"].items():
        row = [name, _fmt(s["tc_flops"], "FLOP"), _fmt(s["cc_flops"], "FLOP"), _fmt(s["bytes"], "B"),
               f"{s['intensity_flop_per_byte']:.1f}", str(int(s["kernels"])), str(int(s["ops"]))]
        if preds:
            ps = preds.get(name, {})
            row += [f"{ps.get('device_s', 0) * 1e3:.3f}", f"{ps.get('host_s', 0) * 1e3:.3f}",
                    f"{ps.get('wall_s', 0) * 1e3:.3f}", ps.get("bound", "")]
        t.add_row(*row)
    console.print(t)
    cov = report["coverage"]
    console.print(f"params: checkpoint {p['checkpoint_total']:,} (built {p['built_total']:,}), active/token "
                  f"{p['active_per_token']:,}   ops {cov['ops_total']:,}, costed {cov['ops_costed']:,}, "
                  f"uncosted {sum(cov['uncosted'].values())}")
    req = (report.get("predictions") or {}).get("request")
    if req:
        console.print(f"request on {report['predictions']['device']['name']} ({report['predictions']['execution']}):"
                      f" TTFT {req['ttft_s'] * 1e3:.1f} ms, {req['tpot_mean_s'] * 1e3:.2f} ms/token, "
                      f"end-to-end {req['e2e_s']:.2f} s, {req['pages_per_s']:.2f} pages/s, "
                      f"{req['pages_per_gpu_day']:,.0f} pages/GPU-day")


def write_run(out: Path, force: bool, a: Analysis, report: dict[str, Any], extra: Any = None) -> None:
    """All run-folder files, or none of them."""
    with atomic_dir(out, force) as tmp:
        (tmp / "report.json").write_bytes(dumps(report))
        if extra is not None:
            extra(tmp)


def write_graphml_file(path: Path, force: bool, a: Analysis) -> None:
    from dsocr_trace.graph import build_graph, merge_phases, write_graphml

    graphs = {ph: build_graph(tr, a.costs[ph].eager, a.costs[ph].fused) for ph, tr in a.traces.items()}
    with atomic_file(path, force, "GraphML file") as tmp:
        write_graphml(merge_phases(graphs), tmp)


def resolve_device(device: str | None, device_file: Path | None, profile: Path | None) -> tuple[Any, Any] | None:
    from dsocr_trace.hardware.profile import default_profile, load_profile
    from dsocr_trace.hardware.spec import load_device

    if device is None and device_file is None:
        if profile is not None:
            raise UserError("--profile needs the GPU it was measured on: add --device NAME or --device-file")
        return None
    if device is not None and device_file is not None:
        raise UserError("give either --device or --device-file, not both")
    spec = load_device(str(device_file) if device_file is not None else str(device))
    prof = load_profile(profile) if profile is not None else default_profile(spec)
    return spec, prof


def analyze_command(*, model: str, mode: str, crops: str | None, image_size: str | None, prompt_tokens: int,
                    output_tokens: int, batch: int, kv_len: int | None, tracer: str, out: Path | None,
                    graphml: Path | None, force: bool, device: str | None = None, device_file: Path | None = None,
                    profile: Path | None = None, execution: str = "eager", dtype: str = "bf16",
                    moe_skew: float = 0.0, timeline: Path | None = None, plots: bool = False) -> dict[str, Any]:
    from dsocr_trace.costs import CostOptions
    from dsocr_trace.memory import WEIGHT_BYTES
    from dsocr_trace.plan import EXECUTIONS

    wl = make_workload(mode, crops=crops, image_size=image_size, prompt_tokens=prompt_tokens,
                       output_tokens=output_tokens, batch=batch, kv_len=kv_len)
    if execution not in EXECUTIONS:
        raise UserError(f"unknown --execution {execution!r}: use eager or fused")
    if dtype not in WEIGHT_BYTES or dtype == "fp32":
        raise UserError(f"unknown --dtype {dtype!r}: use bf16, fp16 or fp8")
    if not 0.0 <= moe_skew < 1.0:
        raise UserError(f"--moe-skew must be in [0, 1) (got {moe_skew})")
    hw = resolve_device(device, device_file, profile)
    if (timeline is not None or plots) and hw is None:
        raise UserError("--timeline and --plots need predictions: add --device NAME (see `dsocr-trace devices`)")
    if plots and out is None:
        raise UserError("--plots writes into the run folder: add --out DIR")
    if timeline is not None:
        check_target(timeline, force, "timeline file")
    # refuse bad output paths before minutes of work, and again atomically when writing
    if out is not None:
        check_target(out, force)
    if graphml is not None:
        check_target(graphml, force, "GraphML file")
        if graphml.suffix.lower() != ".graphml":
            raise UserError(f"--graphml {str(graphml)!r} should end in .graphml")
    a = run_analysis(model, wl, tracer=tracer, opts=CostOptions(moe_skew=moe_skew))
    predictions = None
    if hw is not None:
        from dsocr_trace.request import predict_request

        predictions = predict_request(a, hw[0], hw[1], execution, dtype)
    report = build_report(a, predictions)
    print_summary(report)
    if out is not None:
        write_run(out, force, a, report, extra=lambda folder: write_extras(folder, a, report, plots))
    if timeline is not None and predictions is not None:
        from dsocr_trace.report.timeline import write_timeline

        with atomic_file(timeline, force, "timeline file") as tmp:
            write_timeline(report, tmp)
    if graphml is not None:
        write_graphml_file(graphml, force, a)
    return report


def node_rows(a: Analysis) -> list[dict[str, Any]]:
    """Per-node analytic rows for nodes.csv (both phases)."""
    rows = []
    for phase, tr in a.traces.items():
        for n, c in zip(tr.nodes, a.costs[phase].eager, strict=True):
            rows.append({
                "phase": phase, "id": n.id, "op": n.op, "module_path": n.module_path, "module_type": n.module_type,
                "stage": n.stage, "kind": c.kind if c else ("group" if n.members else "uncosted"),
                "tc_flops": c.tc_flops if c else 0.0, "cc_flops": c.cc_flops if c else 0.0,
                "bytes_read": c.bytes_read if c else 0.0, "bytes_written": c.bytes_written if c else 0.0,
                "kernels": c.kernels if c else 0,
                "input_shapes": ";".join("x".join(map(str, t.shape)) for t in n.inputs),
                "output_shapes": ";".join("x".join(map(str, t.shape)) for t in n.outputs),
            })
    return rows


def write_extras(folder: Path, a: Analysis, report: dict[str, Any], plots: bool) -> None:
    from dsocr_trace.report.writers import write_all

    write_all(report, folder, nodes=node_rows(a))
    if plots:
        from dsocr_trace.report.plots import write_plots

        write_plots(report, folder)


def devices_command() -> None:
    from rich.console import Console
    from rich.table import Table

    from dsocr_trace.hardware.spec import catalog

    t = Table(title="GPU catalog (dense figures; BF16 = tensor cores with FP32 accumulate)", title_justify="left")
    for col in ("key", "name", "BF16 TFLOP/s", "FP32 CUDA TFLOP/s", "GB/s", "memory GB", "L2 MB", "SMs", "sources"):
        t.add_column(col)
    for d in catalog():
        srcs = sorted(set(d.sources.values()))
        t.add_row(d.key, d.name, f"{d.tc_flops / 1e12:g}", f"{d.cc_flops / 1e12:g}", f"{d.mem_bw / 1e9:g}",
                  f"{d.mem_bytes / 2**30:g}", f"{d.l2_bytes / 2**20:g}", str(d.sm_count), "; ".join(srcs)[:120])
    Console(width=200).print(t)


def sweep_command(*, model: str, modes: str, devices: str, batch: str, output_tokens: str, execution: str,
                  out: Path, force: bool) -> list[dict[str, Any]]:
    from dsocr_trace.sweep import run_sweep, write_sweep

    check_target(out, force, "sweep file")
    if out.suffix.lower() not in (".csv", ".json"):
        raise UserError(f"--out {str(out)!r} must end in .csv or .json")
    rows = run_sweep(model, modes, devices, batch, output_tokens, execution)
    with atomic_file(out, force, "sweep file") as tmp:
        write_sweep(rows, tmp, out.suffix.lower())
    print(f"{len(rows)} points -> {out}")
    return rows
