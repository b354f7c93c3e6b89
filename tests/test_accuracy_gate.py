"""The accuracy gate: committed GPU measurements re-predicted on the CPU with the packaged profile.

The held-out H200 workloads (`dsocr-trace validate` on a lent H200: page grids, batch sizes, KV lengths and a
prompt length the calibration never saw) must stay as accurate as the committed results say; a change to a cost
rule, a kernel family or the replay that moves them fails here. Limits sit just above what this version
reaches (benchmarks/results/accuracy/accuracy.md): median |error| 3.4%, mean 4.4%, worst 22.2% (the ~60 us
projector stage).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dsocr_trace.hardware.profile import packaged_profile
from dsocr_trace.hardware.spec import load_device
from dsocr_trace.validate.offline import validate_measured

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
MODEL = "deepseek-ai/DeepSeek-OCR"
GATE = {"median_abs": 0.045, "mean_abs": 0.065, "max_abs": 0.25, "graph_wall_max_abs": 0.10}


def held_out() -> dict[str, Any]:
    return json.loads((RESULTS / "h200-cli" / "val" / "measured.json").read_text())


def stage_errors(result: dict[str, Any]) -> list[float]:
    return [v["error"] for r in result["runs"] if r["execution"] == "eager" and r["held_out"]
            for v in r["stages"].values() if v["error"] is not None]


def gate_failures(result: dict[str, Any]) -> list[str]:
    """What breaks the gate (empty when it holds)."""
    errs = [abs(e) for e in stage_errors(result)]
    graph = [abs(r["wall"]["error"]) for r in result["runs"] if r["execution"] == "graph"]
    got = {"median_abs": statistics.median(errs), "mean_abs": statistics.mean(errs), "max_abs": max(errs),
           "graph_wall_max_abs": max(graph, default=0.0)}
    return [f"{k} {got[k]:.3f} > {lim}" for k, lim in GATE.items() if got[k] > lim]


@pytest.fixture(scope="module")
def h200() -> Iterator[tuple[Any, Any]]:
    spec = load_device("h200")
    yield spec, packaged_profile(spec)


def test_held_out_h200_within_the_gate(h200: tuple[Any, Any]) -> None:
    spec, prof = h200
    meas = held_out()
    result = validate_measured(meas, prof, spec, MODEL)
    assert result["provenance"]["kind"] == "calibrated" and "H200" in result["profile"]
    runs = [r for r in result["runs"] if r["execution"] == "eager"]
    assert len(runs) == 13 and all(r["held_out"] for r in result["runs"])
    assert len(stage_errors(result)) == 41
    assert gate_failures(result) == []
    # peak memory of every held-out run within 8% of torch.cuda.max_memory_allocated
    mems = [r["memory"]["error"] for r in runs if r.get("memory")]
    assert len(mems) == 13 and max(abs(e) for e in mems) < 0.08
    # the eager wall inside its host band (the profile's host costs x 0.54 .. x 1.87, the three hosts' spread):
    # every held-out run
    assert all(r["wall"]["band_s"][0] < r["wall"]["predicted_s"] < r["wall"]["band_s"][1] for r in runs)
    assert all(r["wall"]["in_band"] for r in runs)


def test_a_broken_formula_fails_the_gate(h200: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Quadruple the bytes the element-wise, copy and cast rules charge: the memory-bound family then prices
    SAM's and the decoder's glue kernels as far longer, and the gate must say so."""
    from attrs import evolve

    from dsocr_trace import analyze
    from dsocr_trace.costs import base as cost_base

    spec, prof = h200
    meas = held_out()

    def picked(r: dict[str, Any]) -> bool:
        w = r["workload"]
        return r["execution"] == "eager" and (w["label"] == "gundam:1x3" or (w.get("kv_len") == 2000
                                                                            and w["batch"] == 2))

    sub = {**meas, "runs": [r for r in meas["runs"] if picked(r)]}
    assert len(sub["runs"]) == 2
    assert gate_failures(validate_measured(sub, prof, spec, MODEL)) == []
    for op in ("aten.add", "aten.mul", "aten.clone", "aten.cat", "aten.copy_", "aten._to_copy"):
        def broken(node: Any, opts: Any, orig: Any = cost_base.RULES[op]) -> Any:
            c = orig(node, opts)
            return evolve(c, bytes_read=4 * c.bytes_read, bytes_written=4 * c.bytes_written)

        monkeypatch.setitem(cost_base.RULES, op, broken)
    monkeypatch.setattr(analyze, "_TRACES", {})
    assert gate_failures(validate_measured(sub, prof, spec, MODEL)), "quadrupled element-wise bytes went unnoticed"


# -- GPUs nobody calibrated: H200 SM partitions predicted from the full card's calibration --------------------
PARTITIONS = RESULTS / "h200-partitions"
# limits just above what this version reaches (benchmarks/results/cross-gpu/cross-gpu.md)
PARTITION_GATE = {"median_abs": 0.06, "key_median_abs": 0.05, "key_max_abs": 0.13}
KEY_STAGES = ("vision.sam", "vision.clip", "decoder.prefill", "lm_head.prefill", "decode.step")


@pytest.mark.parametrize("part", ["p16", "p32", "p66", "p100"])
def test_partitions_predicted_without_their_own_calibration(h200: tuple[Any, Any], part: str) -> None:
    from dsocr_trace.hardware.profile import transfer_profile
    from dsocr_trace.hardware.spec import partition_of
    from dsocr_trace.validate.partition import gpu_figures_of

    card, prof = h200
    rec = json.loads((PARTITIONS / part / "figures.json").read_text())
    spec = partition_of(card, int(rec["sms"]))
    src = gpu_figures_of(json.loads((PARTITIONS / "full-card-session1" / "figures.json").read_text()), card)
    moved = transfer_profile(prof, spec, figures=gpu_figures_of(rec, spec), source=src)
    assert moved.provenance()["kind"] == "transferred" and moved.transfer.source_device == "h200"
    meas = json.loads((PARTITIONS / part / "measured.json").read_text())
    assert meas["device"]["partition_sms"] == spec.sm_count
    result = validate_measured(meas, moved, spec, MODEL)
    pts = [(name, abs(v["error"])) for r in result["runs"] if r["execution"] == "eager"
           for name, v in r["stages"].items() if v["error"] is not None]
    key = [e for n, e in pts if n in KEY_STAGES]
    got = {"median_abs": statistics.median(e for _, e in pts), "key_median_abs": statistics.median(key),
           "key_max_abs": max(key)}
    assert len(pts) == 22 and len(key) == 18
    assert [f"{k} {got[k]:.3f} > {lim}" for k, lim in PARTITION_GATE.items() if got[k] > lim] == []
