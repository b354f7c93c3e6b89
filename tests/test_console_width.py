"""Console tables at 80 columns: the summary keeps every cell whole (no ellipsis), naming what it left out."""

from __future__ import annotations

import os
import subprocess
import sys

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
