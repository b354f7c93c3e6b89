"""`dsocr-trace sweep`: modes x devices x batches x executions priced from cached traces, written as one table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dsocr_trace.commands.common import check_html_target
from dsocr_trace.errors import UserError
from dsocr_trace.report.output import atomic_dir, atomic_file, check_target
from dsocr_trace.workload import DEFAULT_PROMPT_TOKENS


def sweep_command(*, model: str, modes: str, devices: str, batch: str, output_tokens: str, execution: str,
                  out: Path, force: bool, plots: Path | None = None, html: Path | None = None,
                  implementation: str = "native", profiles: Sequence[Path] = (), dtype: str = "bf16",
                  routing: str | None = None, prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
                  rank: str = "measured") -> list[dict[str, Any]]:
    from contextlib import ExitStack

    from dsocr_trace.costs.routing import parse_routing
    from dsocr_trace.planner import candidates, check_rank, price_candidates, print_sweep_summary, write_rows

    check_rank(rank)
    route = parse_routing(routing)
    cands = candidates(devices, profiles)
    check_target(out, force, "sweep file")
    if out.suffix.lower() not in (".csv", ".json", ".parquet"):
        raise UserError(f"--out {str(out)!r} must end in .csv, .json or .parquet")
    if plots is not None:
        if plots.resolve() == out.resolve():
            raise UserError("--plots names a folder for the PNGs: give it a path other than --out")
        check_target(plots, force, "plots folder")
    if html is not None:
        check_html_target(html, force, out)
    from dsocr_trace.report.console import progress_bar

    with progress_bar("pricing") as update:
        rows = price_candidates(model, modes, batch, output_tokens, cands, execution, dtype, implementation, route,
                                prompt_tokens, progress=update)
    # every output is written to a temporary sibling and renamed into place at the end: all of them or none
    with ExitStack() as stack:
        if plots is not None:
            from dsocr_trace.report.plots import write_sweep_plots

            write_sweep_plots(rows, stack.enter_context(atomic_dir(plots, force)))
        if html is not None:
            from dsocr_trace.report.html import sweep_html

            stack.enter_context(atomic_file(html, force, "HTML file")).write_text(sweep_html(rows), encoding="utf-8")
        write_rows(rows, stack.enter_context(atomic_file(out, force, "sweep file")), out.suffix.lower())
    print_sweep_summary(rows, rank=rank)  # after the files: a closed stdout must not cost them
    print(f"{len(rows)} points -> {out}" + (f", plots -> {plots}" if plots is not None else "")
          + (f", HTML -> {html}" if html is not None else ""))
    return rows
