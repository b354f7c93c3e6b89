"""Planner outputs: sweep rows carry profile, routing and the memory check (consistent with analyze's memory
section), the best-points table marks what does not fit, and `plan` answers the inverse question (sorted
answers, bisection to the largest batch, a clear message and exit 1 when nothing meets the targets)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from attrs import evolve

from dsocr_trace import sweep
from dsocr_trace.commands.analyze import analyze_command
from dsocr_trace.commands.sweep import sweep_command
from dsocr_trace.errors import UserError
from dsocr_trace.hardware.profile import document_bytes, packaged_profile
from dsocr_trace.hardware.spec import load_device
from dsocr_trace.models.source import DEFAULT_MODEL
from dsocr_trace.planner import Targets, candidates, plan_command, rank_key
from dsocr_trace.report.tables import sweep_records


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], str]:
    """tiny at batch 1 and 512 on an 80 GB and a 24 GB card: B512 (56 GiB) fits only on the first."""
    import io

    from rich.console import Console

    import dsocr_trace.planner as planner

    out = tmp_path_factory.mktemp("sweep") / "s.json"
    buf = io.StringIO()
    orig = planner.console
    planner.console = lambda: Console(file=buf, width=200)  # type: ignore[assignment]
    try:
        rows = sweep_command(model=DEFAULT_MODEL, modes="tiny", devices="h100,rtx4090", batch="1,512",
                             output_tokens="100", execution="fused", out=out, force=False)
    finally:
        planner.console = orig  # type: ignore[assignment]
    assert json.loads(out.read_text()) == json.loads(json.dumps(sweep_records(rows)))
    return rows, buf.getvalue()


def _row(rows: list[dict], device: str, batch: int) -> dict:
    return next(r for r in rows if r["device"] == device and r["batch"] == batch)


def test_sweep_rows_fit_profile_routing(swept: tuple[list[dict], str]) -> None:
    rows, _ = swept
    assert _row(rows, "h100", 512)["fits"] is True
    assert _row(rows, "rtx4090", 512)["fits"] is False
    assert _row(rows, "rtx4090", 1)["fits"] is True
    big = _row(rows, "rtx4090", 512)
    assert big["memory_total_bytes"] > big["device_memory_bytes"] == int(load_device("rtx4090").capacity_bytes)
    for r in rows:
        assert r["routing"] == "uniform" and r["weight_dtype"] == "bf16"
        assert r["profile"] == sweep._device(r["device"])[1].source  # the profile that priced the row
    # the memory of a point grows with its batch, and does not depend on the GPU
    assert _row(rows, "h100", 512)["memory_total_bytes"] == big["memory_total_bytes"]
    assert _row(rows, "h100", 1)["memory_total_bytes"] < big["memory_total_bytes"]


def test_sweep_memory_matches_analyze(swept: tuple[list[dict], str], tmp_path: Path) -> None:
    rows, _ = swept
    report = analyze_command(model=DEFAULT_MODEL, mode="tiny", crops=None, image_size=None, prompt_tokens=12,
                             output_tokens=100, batch=1, kv_len=None, tracer="dispatch", out=None, graphml=None,
                             force=False, device="rtx4090", execution="fused")
    mem = report["predictions"]["memory"]
    r = _row(rows, "rtx4090", 1)
    assert r["memory_total_bytes"] == mem["total_bytes"]
    assert r["fits"] == mem["fits"]


def test_sweep_table_marks_unfit_points(swept: tuple[list[dict], str]) -> None:
    rows, text = swept
    assert "Best of 4 points by measured executions first, then pages per GPU-day (1 do not fit in GPU memory)" in text
    lines = [ln for ln in text.splitlines() if "│" in ln and ("tiny" in ln)]
    assert len(lines) == 4
    # fitting points come first, ranked by pages/GPU-day; the unfit one last, marked NO
    assert "NO" in lines[-1] and "rtx4090" in lines[-1] and "512" in lines[-1]
    assert all("yes" in ln for ln in lines[:-1])
    ranked = sorted(rows, key=rank_key)
    assert [r["pages_per_gpu_day"] for r in ranked[:3]] == sorted((r["pages_per_gpu_day"] for r in ranked[:3]),
                                                                   reverse=True)
    assert "lowest TTFT:" in text and "lowest per-token latency:" in text
    assert "rtx4090 priced from another GPU's calibration by the cross-GPU model" in text  # no calibration of its own


def test_run_sweep_with_a_given_profile() -> None:
    spec = load_device("h100")
    prof = evolve(packaged_profile(spec), file="mine.json", host_op_s=5e-6)
    rows = sweep.run_sweep(DEFAULT_MODEL, "tiny", "h100+mine,h100", "1", "100", "eager",
                           loaded={"h100+mine": (spec, prof)})
    mine, catalog = rows
    assert mine["device"] == "h100+mine" and mine["profile"] == "calibrated"
    assert catalog["profile"] == sweep._device("h100")[1].source
    assert mine["tpot_mean_s"] < catalog["tpot_mean_s"]  # a faster host per op: a faster eager decode


def _plan(tmp_path: Path, **kw: object) -> dict:
    args: dict = {"model": DEFAULT_MODEL, "mode": "tiny", "output_tokens": 100, "devices": "h100",
                  "executions": "fused", "max_batch": 4, "quiet": True}
    args.update(kw)
    return plan_command(**args)


def test_plan_easy_target_rows_sorted(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    res = _plan(tmp_path, ttft_ms=10_000, tpot_ms=1_000, devices="h100,rtx4090", executions="eager,fused", out=out,
                max_batch=2)
    assert json.loads(out.read_text())["best"] == json.loads(json.dumps(res["best"]))
    points = res["points"]
    assert {r["batch"] for r in points} == {1, 2}
    assert all(r["meets"] for r in points)  # tiny B<=2 meets a 10 s TTFT everywhere
    # default ranking: eager (measured on a GPU) before fused (modelled only), each by pages per GPU-day
    execs = [r["execution"] for r in points]
    assert execs == sorted(execs, key=lambda e: e == "fused")
    for ex in ("eager", "fused"):
        pages = [r["pages_per_gpu_day"] for r in points if r["execution"] == ex]
        assert pages == sorted(pages, reverse=True)
    best = res["best"]
    assert len(best) == 4 and {(r["device"], r["execution"]) for r in best} == {
        (d, e) for d in ("h100", "rtx4090") for e in ("eager", "fused")}
    assert all(r["batch"] == 2 for r in best)  # more pages per GPU-day at the larger batch
    assert [r["execution"] for r in best] == ["eager", "eager", "fused", "fused"]
    # --rank throughput: pages per GPU-day alone, so the (faster) fused engine leads
    fast = _plan(tmp_path, ttft_ms=10_000, tpot_ms=1_000, devices="h100,rtx4090", executions="eager,fused",
                 max_batch=2, rank="throughput")
    assert [r["pages_per_gpu_day"] for r in fast["points"]] == sorted(
        (r["pages_per_gpu_day"] for r in fast["points"]), reverse=True)
    assert fast["best"][0]["execution"] == "fused"
    # --rank cost: measured executions first, each by USD per page (lowest first)
    cheap = _plan(tmp_path, ttft_ms=10_000, tpot_ms=1_000, devices="h100,rtx4090", executions="eager,fused",
                  max_batch=2, rank="cost")["best"]
    assert [r["execution"] for r in cheap] == ["eager", "eager", "fused", "fused"]
    for ex in ("eager", "fused"):
        usd = [r["usd_per_page"] for r in cheap if r["execution"] == ex]
        assert usd == sorted(usd) and usd[0] > 0
    with pytest.raises(UserError, match="--rank"):
        _plan(tmp_path, rank="cheapest")


def test_plan_bisects_to_the_largest_meeting_batch(tmp_path: Path) -> None:
    free = _plan(tmp_path)["points"]
    ttft = {r["batch"]: r["ttft_s"] for r in free}
    assert ttft[1] < ttft[2] < ttft[4]
    target_ms = (ttft[2] + ttft[4]) / 2 * 1e3
    res = _plan(tmp_path, ttft_ms=target_ms)
    b3 = sweep.run_sweep(DEFAULT_MODEL, "tiny", "h100", "3", "100", "fused")[0]
    want = 3 if b3["ttft_s"] <= target_ms / 1e3 else 2
    assert [r["batch"] for r in res["best"]] == [want]
    assert sorted(r["batch"] for r in res["points"]) == [1, 2, 3, 4]
    missed = next(r for r in res["points"] if r["batch"] == 4)
    assert not missed["meets"] and missed["misses"] == "ttft"


def test_plan_nothing_meets_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from dsocr_trace import cli

    out = tmp_path / "none.csv"
    monkeypatch.setattr(sys, "argv", ["dsocr-trace", "plan", "--mode", "tiny", "--ttft-ms", "0.001", "--devices",
                                      "h100", "--executions", "fused", "--max-batch", "2", "--output-tokens", "100",
                                      "--out", str(out)])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 1
    text = " ".join(capsys.readouterr().out.split())
    assert "no GPU, execution and batch meets TTFT <= 0.001 ms" in text
    assert "closest: h100 fused B1" in text and "misses ttft" in text
    # every point, written whole
    assert out.read_text().splitlines()[0].startswith("mode,crops_w,crops_h,device,execution,implementation,batch")


def test_plan_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--ttft-ms must be a positive"):
        _plan(tmp_path, ttft_ms=-1)
    with pytest.raises(UserError, match="--executions"):
        _plan(tmp_path, executions="bogus")
    with pytest.raises(UserError, match="--max-batch"):
        _plan(tmp_path, max_batch=0)
    with pytest.raises(UserError, match=r"must end in \.csv, \.json or \.parquet"):
        _plan(tmp_path, out=tmp_path / "p.txt")
    assert not (tmp_path / "p.txt").exists()


def test_plan_candidates_from_profiles(tmp_path: Path) -> None:
    spec = load_device("h100")
    good, nameless = tmp_path / "mine.json", tmp_path / "nameless.json"
    doc = packaged_profile(spec).document
    good.write_bytes(document_bytes(doc))
    nameless.write_bytes(document_bytes({**doc, "device": None}))
    cands = candidates("h100", [good])
    assert [c.label for c in cands] == ["h100", "h100+mine.json"]
    assert cands[1].profile is not None and cands[1].profile.source == "calibrated"
    assert cands[1].profile.file == "mine.json"
    assert len(candidates(None, [])) >= 6  # the whole catalog
    with pytest.raises(UserError, match="does not say which GPU"):
        candidates("h100", [nameless])
    assert Targets(0.2, 0.02).describe() == "TTFT <= 200 ms and <= 20 ms per output token and fits in GPU memory"


def test_sweep_takes_analyze_option_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """sweep and plan accept analyze's spellings (--mode, --device, --execution) and its workload options: a
    longer prompt lengthens the prefill, a profile file adds a labelled candidate, fp8 weights shrink memory."""
    from dsocr_trace import cli

    spec = load_device("h100")
    mine = tmp_path / "mine.json"
    mine.write_bytes(document_bytes(packaged_profile(spec).document))

    def run(name: str, *extra: str) -> list[dict]:
        out = tmp_path / f"{name}.json"
        monkeypatch.setattr(sys, "argv", ["dsocr-trace", "sweep", "--mode", "tiny", "--device", "h100",
                                          "--execution", "eager", "--output-tokens", "50", "--out", str(out),
                                          *extra])
        with pytest.raises(SystemExit) as done:
            cli.main()
        assert done.value.code in (0, None)
        return json.loads(out.read_text())

    base = run("base")
    longer = run("long", "--prompt-tokens", "200", "--dtype", "fp8", "--routing", "skew:1", "--profile", str(mine))
    assert [r["device"] for r in longer] == ["h100", "h100+mine.json"]
    assert longer[0]["prefill_tokens"] == base[0]["prefill_tokens"] + 188
    assert longer[0]["weight_dtype"] == "fp8" and longer[0]["memory_total_bytes"] < base[0]["memory_total_bytes"]
    assert longer[0]["routing"] == "skew:1" and base[0]["routing"] == "uniform"
    assert "measured executions first" in " ".join(capsys.readouterr().out.split())
    monkeypatch.setattr(sys, "argv", ["dsocr-trace", "sweep", "--mode", "tiny", "--device", "h100",
                                      "--rank", "fastest", "--out", str(tmp_path / "x.csv")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code != 0 and not (tmp_path / "x.csv").exists()
