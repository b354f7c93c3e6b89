"""Tool speed (pytest-benchmark; run with --benchmark-enable). Targets from the issues, measured not asserted:
analyze base (prefill + one decode step) <= 3 s after imports, gundam 3x3 <= 6 s, peak memory < 1 GB,
reports + plots + timeline <= 1 s more.

    python -m pytest benchmarks/test_speed.py --benchmark-enable -q
"""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

import pytest

import dsocr_trace.analyze as analyze_mod
from dsocr_trace.analyze import load_model, run_analysis
from dsocr_trace.models.source import DEFAULT_MODEL
from dsocr_trace.workload import make_workload


@pytest.fixture(scope="module", autouse=True)
def _imports_done() -> None:
    load_model(DEFAULT_MODEL)  # imports and the meta build happen once, outside the timed region


def _fresh(mode: str, crops: str | None = None) -> Any:
    analyze_mod._TRACES.clear()  # time real tracing, not the shape cache
    return run_analysis(DEFAULT_MODEL, make_workload(mode, crops=crops))


def test_analyze_base(benchmark: Any) -> None:
    benchmark.pedantic(_fresh, args=("base",), rounds=3, iterations=1)


def test_analyze_gundam_3x3(benchmark: Any) -> None:
    benchmark.pedantic(_fresh, args=("gundam", "3x3"), rounds=3, iterations=1)


def test_reports_plots_timeline(benchmark: Any, tmp_path: Path) -> None:
    from dsocr_trace.hardware.profile import packaged_profile
    from dsocr_trace.hardware.spec import load_device
    from dsocr_trace.report.build import build_report, dumps
    from dsocr_trace.report.node_rows import trace_nodes
    from dsocr_trace.report.timeline import write_timeline
    from dsocr_trace.report.writers import write_all
    from dsocr_trace.request import predict_request

    a = run_analysis(DEFAULT_MODEL, make_workload("base"))
    spec = load_device("h100")
    report = build_report(a, predict_request(a, spec, packaged_profile(spec)))
    rows = trace_nodes(a)
    counter = iter(range(1000))

    def write() -> None:
        folder = tmp_path / f"r{next(counter)}"
        folder.mkdir()
        (folder / "report.json").write_bytes(dumps(report))
        write_all(report, folder, nodes=rows)
        write_timeline(report, folder / "timeline.json")
        try:
            from dsocr_trace.report.plots import write_plots

            write_plots(report, folder)
        except ImportError:
            pass

    benchmark.pedantic(write, rounds=3, iterations=1)


def test_peak_memory_reported() -> None:
    _fresh("gundam", "3x3")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS after gundam 3x3: {peak_mb:.0f} MB")


def test_train_step_base(benchmark: Any) -> None:
    """One fine-tuning step of base (full, AdamW): a fresh meta build, trace, costs and memory (~3.5 s here)."""
    import dsocr_trace.train.analysis as train_mod
    from dsocr_trace.models.training import TrainConfig
    from dsocr_trace.train.analysis import run_train_analysis
    from dsocr_trace.train.memory import train_memory

    def run() -> Any:
        train_mod._TRACES.clear()
        ta = run_train_analysis(DEFAULT_MODEL, make_workload("base"), TrainConfig())
        return train_memory(ta.trace)

    benchmark.pedantic(run, rounds=1, iterations=1)
