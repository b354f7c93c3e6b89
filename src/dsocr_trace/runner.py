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


def analyze_command(*, model: str, mode: str, crops: str | None, image_size: str | None, prompt_tokens: int,
                    output_tokens: int, batch: int, kv_len: int | None, tracer: str, out: Path | None,
                    graphml: Path | None, force: bool, **predict_args: Any) -> dict[str, Any]:
    wl = make_workload(mode, crops=crops, image_size=image_size, prompt_tokens=prompt_tokens,
                       output_tokens=output_tokens, batch=batch, kv_len=kv_len)
    # refuse bad output paths before minutes of work, and again atomically when writing
    if out is not None:
        check_target(out, force)
    if graphml is not None:
        check_target(graphml, force, "GraphML file")
        if graphml.suffix.lower() != ".graphml":
            raise UserError(f"--graphml {str(graphml)!r} should end in .graphml")
    a = run_analysis(model, wl, tracer=tracer)
    report = build_report(a)
    print_summary(report)
    if out is not None:
        write_run(out, force, a, report)
    if graphml is not None:
        write_graphml_file(graphml, force, a)
    return report
