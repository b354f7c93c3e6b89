"""The CLI contract: exit codes, one-line errors and warnings, no traceback, outputs written as one transaction,
interruptions that leave nothing behind, --version, --json, choices in --help.

Many command lines run through the real entry point (`dsocr_trace.cli.main`, as the console script calls it) in
ONE subprocess, so the imports are paid once; the two signal tests need processes of their own.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from dsocr_trace.commands.analyze import analyze_command
from dsocr_trace.errors import Interrupted, UserError
from dsocr_trace.models.source import DEFAULT_MODEL
from dsocr_trace.report.output import STAGING_PREFIX, Outputs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "h100"
DEVICES = resources.files("dsocr_trace.hardware").joinpath("devices")
PROFILES = Path(str(resources.files("dsocr_trace.hardware").joinpath("profiles")))

# runs each argv through cli.main() with stdout/stderr captured; a traceback is recorded, not raised
_RUNNER = r"""
import contextlib, io, json, sys, traceback
from dsocr_trace.cli import main
cases = json.loads(sys.stdin.read())
results = {}
for name, argv in cases.items():
    out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), io.StringIO()
    sys.argv = ["dsocr-trace", *argv]
    rc = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as e:
            rc = e.code
        except BaseException:
            err.write(traceback.format_exc())
            rc = "traceback"
    out.flush()
    results[name] = {"rc": rc, "stdout": out.buffer.getvalue().decode(), "stderr": err.getvalue()}
sys.__stdout__.write(json.dumps(results))
"""


def _files(d: Path, report: dict[str, Any], counts: dict[str, Any]) -> None:
    (d / "report.json").write_text(json.dumps(report))
    (d / "counts.json").write_text(json.dumps(counts))
    bad = copy.deepcopy(report)
    bad["predictions"]["request"]["ttft_s"] = 0
    (d / "ttft0.json").write_text(json.dumps(bad))
    bad = copy.deepcopy(report)
    bad["stages"] = {}
    (d / "nostages.json").write_text(json.dumps(bad))
    run = {"workload": {"mode": "base", "batch": 1, "phase": "decode"}, "total": {"device_s": "0.002"}}
    (d / "strtime.json").write_text(json.dumps({"schema": "dsocr-trace/measured/1", "runs": [run]}))
    (d / "runsdict.json").write_text(json.dumps({"schema": "dsocr-trace/measured/1", "runs": {"a": 1}}))
    h100 = yaml.safe_load(DEVICES.joinpath("h100.yaml").read_text())
    (d / "big.json").write_text(json.dumps(h100).replace('"tc_bf16_dense_tflops": 989.4',
                                                         '"tc_bf16_dense_tflops": 1e300'))
    (d / "typo.yaml").write_text(yaml.safe_dump(h100 | {"l2_mbb": 50}))
    prof = next(iter(sorted(PROFILES.iterdir(), key=lambda p: p.name)))
    raw = prof.read_bytes()
    (d / "trunc.json.gz").write_bytes(raw[: len(raw) // 2])
    (d / "intevents.json").write_text(json.dumps({"traceEvents": [1, 2, 3, "x"]}))
    (d / "hist_bool.json").write_text(json.dumps({"1": [True, False] * 32}))
    (d / "hist_empty.json").write_text(json.dumps({}))
    (d / "hist_zero.json").write_text(json.dumps({"1": [0] * 64}))
    (d / "hist_32.json").write_text(json.dumps({str(i): [6] * 32 for i in range(1, 12)}))
    (d / "llama.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
        "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "vocab_size": 1000,
        "max_position_embeddings": 2048}))
    (d / "bert.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 64, "num_attention_heads": 4,
                                             "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 100}))


# name -> (argv, expected exit code, text expected in stderr (errors) or stdout (success))
CASES: dict[str, tuple[list[str], int, str]] = {
    "bert": (["analyze", "--model", "{d}/bert.json", "--out", "{d}/o1"], 2, "not a decoder with a KV cache"),
    "device_1e300": (["analyze", "--device-file", "{d}/big.json", "--out", "{d}/o2"], 2,
                     "'tc_bf16_dense_tflops' must be <= 100000"),
    "device_typo": (["analyze", "--device-file", "{d}/typo.yaml"], 2, "did you mean 'l2_mb'?"),
    "batch_huge": (["analyze", "--batch", "1000000", "--out", "{d}/o3"], 2, "above 4096 pages"),
    "dtype_no_device": (["analyze", "--dtype", "fp8"], 2, "--dtype applies to predictions"),
    "execution_no_device": (["analyze", "--execution", "graph"], 2, "--execution applies to predictions"),
    "crops_and_size": (["analyze", "--mode", "gundam", "--crops", "2x3", "--image-size", "800x900"], 2,
                       "not both"),
    "bad_mode": (["analyze", "--mode", "huge"], 2, "'huge' is not one of"),
    "compare_str_time": (["compare", "{d}/report.json", "{d}/strtime.json"], 2,
                         "'runs[0].total.device_s' is not a number"),
    "compare_runs_dict": (["compare", "{d}/report.json", "{d}/runsdict.json"], 2, "'runs' must be a list"),
    "compare_counts_only": (["compare", "{d}/counts.json", str(RESULTS / "measured.json")], 2, "no predictions"),
    "diff_ttft0": (["diff", "{d}/report.json", "{d}/ttft0.json"], 2, "'predictions.request.ttft_s' must be > 0"),
    "diff_no_stages": (["diff", "{d}/nostages.json", "{d}/report.json"], 2, "'stages' must not be empty"),
    "version": (["--version"], 0, "dsocr-trace 0.1.0"),
    "help_choices": (["analyze", "--help"], 0, "eager|fused|graph"),
    "export": (["devices", "--export", "h100"], 0, "name: NVIDIA H100 SXM5 80GB"),
    "json": (["analyze", "--mode", "tiny", "--output-tokens", "2", "--device", "rtx4090", "--dtype", "fp8",
              "--json", "--out", "{d}/j"], 0, '"prediction"'),
    "compare_trace": (["compare", "{d}/report.json", str(RESULTS / "trace_decode_kv1000_b1.json.gz")], 0,
                      "Predicted vs measured"),
    "profile_truncated_gzip": (["analyze", "--mode", "tiny", "--device", "h100", "--profile", "{d}/trunc.json.gz"],
                               2, "gzip data is truncated"),
    "compare_int_events": (["compare", "{d}/report.json", "{d}/intevents.json"], 2, "numeric ts and dur"),
    "routing_bools": (["analyze", "--mode", "tiny", "--routing", "histogram:{d}/hist_bool.json"], 2,
                      "whole numbers >= 0"),
    "routing_empty": (["analyze", "--mode", "tiny", "--routing", "histogram:{d}/hist_empty.json"], 2,
                      "histogram is empty"),
    "routing_all_zero": (["analyze", "--mode", "tiny", "--routing", "histogram:{d}/hist_zero.json"], 2,
                         "routes no rows"),
    "routing_32_experts": (["analyze", "--mode", "tiny", "--routing", "histogram:{d}/hist_32.json"], 2,
                           "has 32 experts per layer, the model has 64"),
    "sweep_empty_execution": (["sweep", "--modes", "tiny", "--devices", "h100", "--execution", "",
                               "--out", "{d}/e.csv"], 2, "must each list at least one entry"),
    "sweep_too_many_points": (["sweep", "--modes", "tiny", "--devices", "h100", "--batch",
                               ",".join(map(str, range(1, 501))), "--output-tokens",
                               ",".join(map(str, range(1, 201))), "--out", "{d}/big.csv"], 2, "split it"),
    "llama_sweep": (["sweep", "--model", "{d}/llama.json", "--modes", "tiny", "--devices", "h100",
                     "--out", "{d}/llama.csv"], 0, "1 points ->"),
    "fp8_train": (["analyze", "--mode", "tiny", "--phase", "train", "--dtype", "fp8", "--device", "h200"], 2,
                  "a training step keeps bf16 weights"),
    "devices_calibrated": (["devices"], 0, "transferred"),
    "bare_gundam": (["analyze", "--mode", "gundam", "--json"], 0, "the default page, A4 at 150 dpi"),
}


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, h100_report: dict[str, Any],
        counts_report: dict[str, Any]) -> tuple[Path, dict[str, dict[str, Any]]]:
    d = tmp_path_factory.mktemp("contract")
    _files(d, h100_report, counts_report)
    before = sorted(p.name for p in d.iterdir())
    argv = {name: [a.format(d=d) for a in args] for name, (args, _, _) in CASES.items()}
    r = subprocess.run([sys.executable, "-c", _RUNNER], input=json.dumps(argv), capture_output=True, text=True,
                       cwd=d, timeout=600, env=os.environ | {"COLUMNS": "120"})
    assert r.returncode == 0, r.stderr[-3000:]
    made = sorted(p.name for p in d.iterdir())
    assert made == sorted([*before, "j", "llama.csv"]), made  # failures wrote nothing, not even a parent folder
    return d, json.loads(r.stdout)


@pytest.mark.parametrize("name", list(CASES))
def test_cli_case(name: str, cli: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    _, results = cli
    r = results[name]
    _, rc, expected = CASES[name]
    assert r["rc"] == rc, r
    assert "Traceback" not in r["stderr"] + r["stdout"], r["stderr"]
    err = [line for line in r["stderr"].splitlines() if line]
    if rc:
        assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], r["stderr"]
        assert r["stdout"] == ""
    else:
        assert expected in r["stdout"], r["stdout"][-2000:]
        assert all(line.startswith("warning: ") for line in err), r["stderr"]


def test_json_is_the_only_stdout(cli: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    d, results = cli
    r = results["json"]
    summary = json.loads(r["stdout"])  # nothing but the JSON document on stdout
    assert summary["prediction"]["weight_dtype"] == "fp8" and summary["out"] == str(d / "j")
    assert summary["prediction"]["profile"]["kind"] == "transferred"
    assert summary["stages"]["decode.step"]["device_s"] > 0
    assert "warning: --dtype fp8 quantizes the decoder" in r["stderr"] and "vision encoders stay bf16" in r["stderr"]
    assert summary["warnings"] == json.loads((d / "j" / "report.json").read_text())["warnings"]
    assert any("carried from the h200 calibration" in w and "not calibrated on this GPU" in w
               for w in summary["warnings"])


def test_trace_phase_detected_and_said(cli: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    r = cli[1]["compare_trace"]
    assert "warning: phase detected from the trace: decode" in r["stderr"]
    assert "| decode | eager | decode.step |" in r["stdout"]


def test_export_is_the_catalog_file(cli: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    assert cli[1]["export"]["stdout"] == DEVICES.joinpath("h100.yaml").read_text()


def test_help_and_validation_agree(cli: tuple[Path, dict[str, dict[str, Any]]]) -> None:
    text = " ".join(cli[1]["help_choices"]["stdout"].split())
    for choice in ("tiny|small|base|large|gundam", "dispatch|export", "bf16|fp16|fp8", "in [0, 4]"):
        assert choice.replace(" ", "") in text.replace(" ", "").replace("│", ""), choice
    # the skew the help allows is accepted, the one it excludes refused (in process: the check, not the trace)
    with pytest.raises(UserError, match=r"\[0, 4\]"):
        _analyze(moe_skew=4.5)


# ---- interruption: SIGINT and SIGTERM leave nothing behind and print one line ----


def _torch_loaded(pid: int) -> bool:
    try:
        return "libtorch_cpu" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to know when the work has begun")
def test_interrupt_leaves_nothing(tmp_path: Path) -> None:
    procs = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        d = tmp_path / sig.name
        d.mkdir()
        # a long job (tens of seconds uninterrupted): the signal lands while it works, even on a loaded machine
        argv = [sys.executable, "-m", "dsocr_trace.cli", "analyze", "--mode", "gundam", "--crops", "3x3",
                "--batch", "256", "--device", "h100", "--output-tokens", "50", "--out", "deep/run",
                "--timeline", "deep/run/t.json"]
        procs[sig] = (d, subprocess.Popen(argv, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    waiting = dict(procs)
    deadline = time.monotonic() + 120
    while waiting and time.monotonic() < deadline:
        for sig, (_, p) in list(waiting.items()):
            if _torch_loaded(p.pid):  # torch is imported inside the command: the handlers are installed
                time.sleep(0.2)
                assert p.poll() is None, "the run ended before it could be interrupted"
                p.send_signal(sig)
                del waiting[sig]
        time.sleep(0.05)
    assert not waiting, "torch never loaded"
    for sig, (d, p) in procs.items():
        _, err = p.communicate(timeout=60)
        assert p.returncode == 128 + sig, (p.returncode, err)
        assert err.splitlines() == [f"error: interrupted by {sig.name}: outputs are written completely or not "
                                    "at all; rerun the command"], err
        assert list(d.iterdir()) == [], list(d.rglob("*"))  # no run folder, no parent, no hidden staging folder


def test_signal_after_outputs_is_named(tmp_path: Path) -> None:
    # a signal that lands once the outputs are complete: named, the outputs kept, shutdown not cut short
    code = ("import os, signal, sys; from dsocr_trace import cli; "
            "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM}); os.kill(os.getpid(), signal.SIGTERM); "
            "print('report written'); cli._exit_after_outputs(0)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 128 + signal.SIGTERM
    assert p.stdout == "report written\n"
    assert p.stderr.splitlines() == ["error: SIGTERM arrived after the outputs were complete: they are kept; "
                                     "nothing to rerun"]
    done = subprocess.run([sys.executable, "-c", "from dsocr_trace import cli; cli._exit_after_outputs(3)"],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (3, "")


# ---- outputs as one transaction (in process) ----


def _analyze(**kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"model": DEFAULT_MODEL, "mode": "tiny", "crops": None, "image_size": None,
                            "prompt_tokens": 12, "output_tokens": 2, "batch": 1, "kv_len": None,
                            "tracer": "dispatch", "out": None, "graphml": None, "force": False}
    return analyze_command(**(args | kw))


def test_timeline_and_graphml_inside_out(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _analyze(out=run, timeline=run / "t.json", graphml=run / "g.graphml", device="h100")
    names = sorted(p.name for p in run.iterdir())
    assert {"report.json", "t.json", "g.graphml"} <= set(names)
    assert json.loads((run / "t.json").read_text())["traceEvents"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging folder left
    # rerun without --force: refused before any work, the run untouched
    with pytest.raises(UserError, match="already exists"):
        _analyze(out=run, timeline=run / "t.json", device="h100")
    assert sorted(p.name for p in run.iterdir()) == names


def test_failed_run_leaves_no_parent_folders(tmp_path: Path) -> None:
    cfg = json.loads(resources.files("dsocr_trace.data").joinpath("deepseek-ocr-config.json").read_text())
    cfg["vision_config"]["width"]["clip-l-14-224"].update(width=512, heads=8)  # breaks only when traced
    (tmp_path / "bad.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="cannot be traced"):
        _analyze(model=str(tmp_path / "bad.json"), out=tmp_path / "a" / "b" / "run",
                 graphml=tmp_path / "g" / "x.graphml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


def test_transaction_removes_everything_on_interrupt(tmp_path: Path) -> None:
    outs = Outputs(force=False)
    outs.folder(tmp_path / "x" / "run")
    outs.file(tmp_path / "x" / "run" / "t.json", "timeline file")
    outs.file(tmp_path / "y" / "g.graphml", "GraphML file")
    with pytest.raises(Interrupted), outs.transaction() as where:
        (where(tmp_path / "x" / "run") / "report.json").write_text("{}")
        where(tmp_path / "y" / "g.graphml").write_text("<graphml/>")
        raise Interrupted(signal.SIGTERM)
    assert list(tmp_path.iterdir()) == []
    with outs.transaction() as where:  # and the same set commits whole
        (where(tmp_path / "x" / "run") / "report.json").write_text("{}")
        where(tmp_path / "x" / "run" / "t.json").write_text("{}")
        where(tmp_path / "y" / "g.graphml").write_text("<graphml/>")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "x/run/report.json", "x/run/t.json", "y/g.graphml"]
    assert not any(p.name.startswith(STAGING_PREFIX) for p in tmp_path.rglob("*"))


def test_warnings_in_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = _analyze(device="h100", dtype="fp8", image_size="800x600", out=tmp_path / "run")
    w = r["warnings"]
    assert any("--image-size has no effect in tiny mode" in x for x in w)
    assert any("--dtype fp8 quantizes the decoder, embedding and lm_head weights only" in x for x in w)
    assert not any("datasheet" in x for x in w)  # the H100 profile is calibrated
    assert r["predictions"]["profile"]["provenance"]["kind"] == "calibrated"
    err = capsys.readouterr().err
    assert err.count("warning: ") == len(w) == 2
    assert "## Warnings" in (tmp_path / "run" / "summary.md").read_text()


def test_deleted_working_directory(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    # started inside a folder that is removed before the command looks around (as `rm -rf` from another shell)
    code = ("import os, sys; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); sys.argv = ['dsocr-trace', 'analyze', "
            "'--mode', 'tiny']; from dsocr_trace import cli; cli.main()")
    p = subprocess.run([sys.executable, "-c", code, str(gone)], capture_output=True, text=True, timeout=120,
                       check=False)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.splitlines() == ["error: the working directory no longer exists (deleted or moved): cd to an "
                                     "existing folder and rerun"], p.stderr
