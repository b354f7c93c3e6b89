"""PNG plots: analyze --plots writes the three report plots, sweep rows give the two sweep plots; fixed pixel
size, valid PNG signature, no timestamp/software metadata (same input -> same bytes)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from dsocr_trace.commands.analyze import analyze_command
from dsocr_trace.commands.sweep import sweep_command
from dsocr_trace.errors import UserError
from dsocr_trace.models.source import DEFAULT_MODEL
from dsocr_trace.report.plots import HEIGHT_PX, WIDTH_PX, write_plots, write_sweep_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPORT_PLOTS = ("roofline.png", "time_by_stage.png", "time_by_module_type.png")
SWEEP_PLOTS = ("sweep_pages.png", "sweep_latency.png", "sweep_ttft.png")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def check_png(path: Path) -> None:
    assert path.is_file(), path
    assert png_size(path) == (WIDTH_PX, HEIGHT_PX) == (1200, 800)
    data = path.read_bytes()
    assert b"Software" not in data and b"matplotlib" not in data  # no version text chunk
    assert b"tIME" not in data  # no modification-time chunk


@pytest.fixture(scope="module")
def run_with_plots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("plots") / "run"
    report = analyze_command(model=DEFAULT_MODEL, mode="base", crops=None, image_size=None, prompt_tokens=12,
                             output_tokens=50, batch=1, kv_len=None, tracer="dispatch", out=out, graphml=None,
                             force=False, device="h100", plots=True)
    return out, report


def test_analyze_writes_report_plots(run_with_plots: tuple[Path, dict[str, Any]]) -> None:
    out, report = run_with_plots
    assert (out / "report.json").is_file()
    for name in REPORT_PLOTS:
        check_png(out / name)
    assert report["predictions"]["device"]["key"] == "h100"


def test_report_plots_deterministic(run_with_plots: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, report = run_with_plots
    paths = write_plots(report, tmp_path)
    assert [p.name for p in paths] == list(REPORT_PLOTS)
    for p in paths:
        assert p.read_bytes() == (out / p.name).read_bytes(), f"{p.name} differs between two renders"


def test_report_plots_need_predictions(run_with_plots: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    _, report = run_with_plots
    with pytest.raises(ValueError, match="predictions"):
        write_plots({k: v for k, v in report.items() if k != "predictions"}, tmp_path)


def _row(mode: str, device: str, batch: int, n: int, e2e: float) -> dict[str, Any]:
    return {"mode": mode, "device": device, "execution": "eager", "batch": batch, "output_tokens": n,
            "vision_tokens": 273, "prefill_tokens": 286, "ttft_s": 0.05, "tpot_mean_s": (e2e - 0.05) / n,
            "tpot_last_s": (e2e - 0.05) / n, "e2e_s": e2e, "tokens_per_s": batch * n / e2e,
            "pages_per_s": batch / e2e, "pages_per_gpu_day": batch / e2e * 86_400}


def test_sweep_plots(tmp_path: Path) -> None:
    rows = [_row(m, d, b, 500, 1.0 + 0.1 * i + 0.05 * b + (0.3 if d == "rtx4090" else 0.0))
            for i, m in enumerate(("tiny", "base", "gundam:2x3")) for d in ("h100", "rtx4090") for b in (1, 4, 16)]
    (tmp_path / "a").mkdir()
    paths = write_sweep_plots(rows, tmp_path / "a")
    assert [p.name for p in paths] == list(SWEEP_PLOTS)
    for p in paths:
        check_png(p)
    (tmp_path / "b").mkdir()
    again = write_sweep_plots(rows, tmp_path / "b")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]


def test_sweep_plots_single_point_and_empty(tmp_path: Path) -> None:
    for name, rows in (("one", [_row("base", "h100", 1, 100, 0.8)]), ("none", [])):
        (tmp_path / name).mkdir()
        for p in write_sweep_plots(rows, tmp_path / name):
            check_png(p)


def test_sweep_plots_reject_non_finite(tmp_path: Path) -> None:
    row = _row("base", "h100", 1, 100, 0.8) | {"e2e_s": float("nan")}
    with pytest.raises(ValueError, match="non-finite"):
        write_sweep_plots([row], tmp_path)


def test_sweep_command_plots_option(tmp_path: Path) -> None:
    csv, plots = tmp_path / "s.csv", tmp_path / "p"
    rows = sweep_command(model=DEFAULT_MODEL, modes="tiny", devices="h100", batch="1", output_tokens="100",
                         execution="eager", out=csv, force=False, plots=plots)
    assert len(rows) == 1 and csv.is_file()
    for name in SWEEP_PLOTS:
        check_png(plots / name)
    assert sorted(p.name for p in plots.iterdir()) == sorted(SWEEP_PLOTS)
    # an existing plots folder without --force: refused before any work, nothing touched
    before = {p.name: p.read_bytes() for p in plots.iterdir()}
    csv2 = tmp_path / "s2.csv"
    with pytest.raises(UserError, match="already exists"):
        sweep_command(model=DEFAULT_MODEL, modes="tiny", devices="h100", batch="1", output_tokens="100",
                      execution="eager", out=csv2, force=False, plots=plots)
    assert not csv2.exists()
    assert {p.name: p.read_bytes() for p in plots.iterdir()} == before
    with pytest.raises(UserError, match="other than --out"):
        sweep_command(model=DEFAULT_MODEL, modes="tiny", devices="h100", batch="1", output_tokens="100",
                      execution="eager", out=csv2, force=False, plots=csv2)
