"""Console tables at 80 columns: analyze's, sweep's and plan's keep every cell whole (no ellipsis), naming what
they left out or shortened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("args", [["--mode", "tiny", "--device", "h100"],
                                  ["--mode", "tiny", "--phase", "train", "--trainable", "lora", "--device", "h200"]])
def test_tables_fit_80_columns(args: list[str]) -> None:
    env = {**os.environ, "COLUMNS": "80"}
    r = subprocess.run([sys.executable, "-m", "dsocr_trace", "analyze", *args], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(x) for x in lines) <= 80
    assert not [x for x in lines if "…" in x]
    assert any(x.split()[:1] == ["vision.sam"] for x in lines)  # stage names whole
    assert "CUDA-core FLOPs, FLOP/B and op counts left out" in " ".join(x.strip() for x in lines)
    wide = subprocess.run([sys.executable, "-m", "dsocr_trace", "analyze", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=300)
    assert "CUDA-core" in wide.stdout and "left out" not in wide.stdout


@pytest.mark.parametrize("args", [["sweep", "--modes", "tiny,gundam:2x3", "--devices", "h100,rtx5090", "--batch",
                                   "1,64", "--output-tokens", "500", "--execution", "eager,compiled,fused"],
                                  ["plan", "--mode", "base", "--ttft-ms", "200", "--tpot-ms", "30", "--devices",
                                   "h100,rtx5090", "--max-batch", "4"]])
def test_sweep_and_plan_tables_fit_80_columns(args: list[str], tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "dsocr_trace", *args, "--out", str(tmp_path / "rows.csv")]
    r = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"}, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    table = [x for x in lines if x.startswith(" ")]  # the table's rows (the notes after it name file paths)
    assert len(table) >= 4 and max(len(x) for x in table) <= 80 and not [x for x in lines if "…" in x]
    assert "xfer = transferred" in " ".join(x.strip() for x in lines)
    assert any("rtx5090" in x and "xfer" in x for x in lines)
