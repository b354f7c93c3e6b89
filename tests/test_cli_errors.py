"""Every user mistake gives a one-line actionable error, a non-zero exit, no traceback, and no half-written output.

Most rejections are checked in process (`UserError` from make_workload / analyze_command / compare / diff: one
line, no newline); a representative set goes through the real CLI (`python -m dsocr_trace.cli`) as
subprocesses, started together so the file stays fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import dsocr_trace.hardware.spec
from dsocr_trace.commands.analyze import analyze_command
from dsocr_trace.commands.compare import compare_command, diff_command
from dsocr_trace.commands.sweep import sweep_command
from dsocr_trace.errors import UserError
from dsocr_trace.models.source import DEFAULT_MODEL
from dsocr_trace.workload import make_workload

# ---- fixture files ----


def _h100() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        (Path(dsocr_trace.hardware.spec.__file__).parent / "devices" / "h100.yaml").read_text(encoding="utf-8"))
    return data


def resolve(value: Any, files: dict[str, Path], base: Path) -> Any:
    """'@name[/rest]' -> the fixture file `name` (or base/name when there is none) [/ rest]; else unchanged."""
    if not (isinstance(value, str) and value.startswith("@")):
        return value
    head, _, rest = value[1:].partition("/")
    path = files.get(head, base / head)
    return path / rest if rest else path


def make_files(d: Path, report: dict[str, Any], counts: dict[str, Any]) -> dict[str, Path]:
    """Bad inputs of every kind, written once into `d` (`report`: a real report with predictions)."""
    files: dict[str, Path] = {}

    def put(name: str, text: str) -> None:
        files[name] = d / name
        files[name].write_text(text)

    put("bad_arch.json", json.dumps({"model_type": "bert-nonexistent", "architectures": ["BertNonexistentModel"]}))
    put("not_json.json", '{"model_type": "bert", ')
    put("list.json", "[1, 2, 3]")
    missing = _h100()
    del missing["mem_bw_gbs"]
    put("missing.yaml", yaml.safe_dump(missing))
    negative = _h100() | {"tc_bf16_dense_tflops": -989.4}
    put("negative.yaml", yaml.safe_dump(negative))
    put("broken.yaml", "name: [unclosed\n")
    put("a_file", "not a folder\n")
    put("not_report.json", json.dumps({"hello": 1}))
    put("no_predictions.json", json.dumps(counts))
    put("with_predictions.json", json.dumps(report))
    put("not_measured.json", json.dumps({"schema": "something/else", "runs": []}))
    (d / "empty_folder").mkdir()
    files["empty_folder"] = d / "empty_folder"
    existing = d / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("precious\n")
    files["existing"] = existing
    return files


def assert_one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg and msg == msg.strip(), f"not one line: {msg!r}"
    assert "Traceback" not in msg
    return msg


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# ---- workload validation (in process) ----


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "huge"}, "unknown mode"),
        ({"mode": ""}, "unknown mode"),
        ({"mode": "gundam", "crops": "5x2"}, "2 to 9 tiles"),
        ({"mode": "gundam", "crops": "1x1"}, "2 to 9 tiles"),
        ({"mode": "gundam", "crops": "0x4"}, "2 to 9 tiles"),
        ({"mode": "gundam", "crops": "-2x-3"}, "2 to 9 tiles"),
        ({"mode": "gundam", "crops": "abc"}, "not WxH"),
        ({"mode": "gundam", "crops": "2x3x4"}, "not WxH"),
        ({"mode": "gundam", "crops": ""}, "not WxH"),
        ({"mode": "base", "crops": "2x2"}, "gundam mode only"),
        ({"mode": "tiny", "crops": "2x3"}, "gundam mode only"),
        ({"mode": "gundam", "image_size": "0x100"}, "out of range"),
        ({"mode": "gundam", "image_size": "100000x100"}, "out of range"),
        ({"mode": "base", "image_size": "100x100000"}, "out of range"),
        ({"mode": "gundam", "image_size": "big"}, "not WxH"),
        ({"mode": "base", "output_tokens": 0}, "--output-tokens"),
        ({"mode": "base", "output_tokens": -5}, "--output-tokens"),
        ({"mode": "base", "batch": 0}, "--batch"),
        ({"mode": "base", "batch": -1}, "--batch"),
        ({"mode": "base", "prompt_tokens": 0}, "--prompt-tokens"),
        ({"mode": "base", "prompt_tokens": -3}, "--prompt-tokens"),
        ({"mode": "base", "kv_len": 0}, "--kv-len"),
        ({"mode": "base", "kv_len": 9000}, "positions"),
        ({"mode": "base", "output_tokens": 8000}, "exceeds the model's 8192 positions"),
        ({"mode": "base", "prompt_tokens": 8000}, "exceeds the model's 8192 positions"),
        ({"mode": "gundam", "crops": "3x3", "output_tokens": 7000}, "exceeds"),
    ],
)
def test_workload_rejections(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(UserError, match=match) as e:
        make_workload(**kwargs)
    assert_one_line(e.value)


# ---- analyze (in process): every rejection before any output ----


def _analyze(out: Path | None = None, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"model": DEFAULT_MODEL, "mode": "base", "crops": None, "image_size": None,
                            "prompt_tokens": 12, "output_tokens": 50, "batch": 1, "kv_len": None,
                            "tracer": "dispatch", "out": out, "graphml": None, "force": False}
    return analyze_command(**(args | kw))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, h100_report: dict[str, Any],
          counts_report: dict[str, Any]) -> dict[str, Path]:
    return make_files(tmp_path_factory.mktemp("bad-inputs"), h100_report, counts_report)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"model": "nope/nope"}, "unknown model"),
        ({"model": "@bad_arch.json"}, "unsupported architecture"),
        ({"model": "@not_json.json"}, "as JSON"),
        ({"model": "@list.json"}, "not a config object"),
        ({"model": "@empty_folder"}, "no config.json"),
        ({"mode": "huge"}, "unknown mode"),
        ({"mode": "base", "crops": "2x2"}, "gundam mode only"),
        ({"output_tokens": 8000}, "8192 positions"),
        ({"device": "nosuchgpu"}, "unknown device"),
        ({"device_file": "@missing.yaml"}, "'mem_bw_gbs' is missing"),
        ({"device_file": "@negative.yaml"}, "'tc_bf16_dense_tflops' must be > 0"),
        ({"device_file": "@broken.yaml"}, "not valid YAML"),
        ({"device_file": "@no_such.yaml"}, "cannot be read"),
        ({"device": "h100", "device_file": "@missing.yaml"}, "not both"),
        ({"profile": "@not_json.json"}, "needs the GPU"),
        ({"execution": "turbo"}, "--execution"),
        ({"dtype": "int3"}, "--dtype"),
        ({"moe_skew": 4.5}, "--moe-skew"),
        ({"routing": "zipf:2"}, "--routing"),
        ({"routing": "skew:x"}, "--routing"),
        ({"routing": "histogram:@no_such.yaml"}, "routing histogram"),
        ({"plots": True}, "need predictions"),
        ({"tracer": "magic"}, "unknown tracer"),
        ({"graphml": "@g.txt"}, "should end in .graphml"),
    ],
)
def test_analyze_rejections_write_nothing(kw: dict[str, Any], match: str, files: dict[str, Path],
                                          tmp_path: Path) -> None:
    kw = {k: resolve(v, files, files["a_file"].parent) for k, v in kw.items()}
    if "model" in kw:
        kw["model"] = str(kw["model"])
    out = tmp_path / "sub" / "run"
    with pytest.raises(UserError, match=match) as e:
        _analyze(out, **kw)
    assert_one_line(e.value)
    assert not out.exists()
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []  # no stray temporaries either


@pytest.mark.parametrize("target", ["/proc/x/out", "@a_file/out", "@a_file/deeper/out"])
def test_analyze_unwritable_out(target: str, files: dict[str, Path]) -> None:
    out = Path(target.replace("@a_file", str(files["a_file"])))
    with pytest.raises(UserError, match="choose") as e:
        _analyze(out)
    assert_one_line(e.value)
    assert files["a_file"].read_text() == "not a folder\n"


def test_existing_out_untouched_then_replaced_with_force(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious\n")
    before = tree(out)
    with pytest.raises(UserError, match=r"already exists.*--force") as e:
        _analyze(out)
    assert_one_line(e.value)
    assert tree(out) == before
    _analyze(out, force=True, output_tokens=1)
    after = tree(out)
    assert "keep.txt" not in after and "report.json" in after
    assert json.loads(after["report.json"])["workload"]["output_tokens"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # the temporary folder was renamed, not left


# ---- compare / diff / sweep (in process) ----


def test_compare_and_diff_rejections(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    cases = [
        (lambda: compare_command(files["no_predictions.json"], files["not_measured.json"], None, out, False),
         "no predictions"),
        (lambda: compare_command(files["with_predictions.json"], files["not_measured.json"], None, out, False),
         "not a measured-timings file"),
        (lambda: compare_command(files["with_predictions.json"], files["not_json.json"], None, out, False),
         "cannot read measured timings"),
        (lambda: compare_command(files["with_predictions.json"], tmp_path / "absent.json", None, out, False),
         "is not a file"),
        (lambda: compare_command(files["with_predictions.json"], files["empty_folder"], None, out, False),
         "is not a file"),
        (lambda: compare_command(files["not_json.json"], files["not_measured.json"], None, out, False),
         "cannot read report"),
        (lambda: diff_command(files["not_report.json"], files["not_report.json"], out, False),
         "not a dsocr-trace report"),
        (lambda: diff_command(files["list.json"], files["not_report.json"], out, False),
         "not a dsocr-trace report"),
        (lambda: diff_command(tmp_path / "absent.json", files["not_report.json"], out, False), "cannot read report"),
    ]
    for call, match in cases:
        with pytest.raises(UserError, match=match) as e:
            call()
        assert_one_line(e.value)
        assert not out.exists()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"modes": "huge"}, "unknown mode"),
        ({"modes": "gundam:1x1"}, "2 to 9 tiles"),
        ({"modes": ""}, "at least one"),
        ({"devices": "nosuchgpu"}, "unknown device"),
        ({"batch": "1,x"}, "comma list"),
        ({"batch": "0"}, ">= 1"),
        ({"output_tokens": "-4"}, ">= 1"),
        ({"execution": "turbo"}, "unknown execution"),
        ({"out": "@s.txt"}, "must end in .csv, .json or .parquet"),
        ({"out": "@a_file/s.csv"}, "is a file, not a folder"),
        ({"plots": "@existing"}, "already exists"),
    ],
)
def test_sweep_rejections(kw: dict[str, Any], match: str, files: dict[str, Path], tmp_path: Path) -> None:
    args: dict[str, Any] = {"model": DEFAULT_MODEL, "modes": "base", "devices": "h100", "batch": "1",
                            "output_tokens": "100", "execution": "eager", "out": tmp_path / "s.csv", "force": False,
                            "plots": None}
    args |= {k: resolve(v, files, tmp_path) for k, v in kw.items()}
    before = tree(files["existing"])
    with pytest.raises(UserError, match=match) as e:
        sweep_command(**args)
    assert_one_line(e.value)
    assert not (tmp_path / "s.csv").exists()
    assert tree(files["existing"]) == before


# ---- the real CLI, as subprocesses (started together) ----

CLI_CASES: dict[str, tuple[list[str], str]] = {
    "unknown_model": (["analyze", "--model", "nope/nope", "--out", "{d}/r1"], "unknown model"),
    "bad_mode": (["analyze", "--mode", "huge", "--out", "{d}/r3"], "--mode"),
    "bad_crops": (["analyze", "--mode", "gundam", "--crops", "4x4"], "2 to 9 tiles"),
    "zero_batch": (["analyze", "--batch", "0"], "--batch"),
    "not_an_int": (["analyze", "--batch", "abc"], "--batch"),
    "unknown_option": (["analyze", "--bogus"], "--bogus"),
    "existing_out": (["analyze", "--out", "{d}/existing"], "already exists"),
    "negative_device_field": (["analyze", "--device-file", "{d}/negative.yaml", "--out", "{d}/r4"],
                              "tc_bf16_dense_tflops"),
    "unknown_device": (["analyze", "--device", "nosuchgpu", "--out", "{d}/r5"], "unknown device"),
    "out_under_file": (["analyze", "--out", "{d}/a_file/out"], "not a folder"),
    "out_in_proc": (["analyze", "--out", "/proc/x/out"], "choose a writable path"),
    "sweep_bad_mode": (["sweep", "--modes", "huge", "--out", "{d}/s.csv"], "unknown mode"),
    "compare_no_predictions": (["compare", "{d}/no_predictions.json", "{d}/not_measured.json"], "no predictions"),
    "compare_not_measured": (["compare", "{d}/with_predictions.json", "{d}/not_measured.json"],
                             "not a measured-timings file"),
    "compare_bad_phase": (["compare", "{d}/with_predictions.json", "{d}/not_measured.json", "--phase", "x"],
                          "--phase"),
    "diff_not_report": (["diff", "{d}/not_report.json", "{d}/not_report.json"], "not a dsocr-trace report"),
    "train_option_without_phase": (["analyze", "--trainable", "lora", "--out", "{d}/r6"], "add --phase train"),
    "bad_trainable": (["analyze", "--phase", "train", "--trainable", "all", "--out", "{d}/r7"], "unknown --trainable"),
}


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory: pytest.TempPathFactory, h100_report: dict[str, Any], counts_report: dict[str, Any]
                ) -> tuple[Path, dict[str, subprocess.CompletedProcess[str]]]:
    d = tmp_path_factory.mktemp("cli")
    made = make_files(d, h100_report, counts_report)
    procs = {}
    for name, (args, _) in CLI_CASES.items():
        argv = [sys.executable, "-m", "dsocr_trace.cli", *(a.format(d=d) for a in args)]
        procs[name] = (argv, subprocess.Popen(argv, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True))
    results = {}
    for name, (argv, p) in procs.items():
        out, err = p.communicate(timeout=120)
        results[name] = subprocess.CompletedProcess(argv, p.returncode, out, err)
    assert sorted(p.name for p in d.iterdir()) == sorted(p.name for p in made.values())
    return d, results


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_cli_one_line_error(name: str, cli_results: tuple[Path, dict[str, subprocess.CompletedProcess[str]]]) -> None:
    d, results = cli_results
    r = results[name]
    assert r.returncode != 0, r
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert CLI_CASES[name][1] in lines[0]
    # nothing half-written (run folders, temporaries): the fixture checks the folder holds its inputs only
    assert tree(d / "existing") == {"keep.txt": b"precious\n"}
    assert (d / "a_file").read_text() == "not a folder\n"


def test_cli_module_entry_point_help() -> None:
    r = subprocess.run([sys.executable, "-m", "dsocr_trace.cli", "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "analyze" in r.stdout and not r.stderr
