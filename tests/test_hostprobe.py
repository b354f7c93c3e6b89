import json
import sys
from typing import Any

from dsocr_trace.validate import hostprobe


def test_cpu_probe_times_each_call_kind() -> None:
    r = hostprobe.probe_cpu(calls=50, loops=2)
    assert set(r) == {"cpu_op_s", "cpu_op_inplace_s", "cpu_linear_s", "cpu_module_s", "python_call_s"}
    # a torch call costs more than an empty Python call and less than a millisecond on any host
    assert r["python_call_s"] < r["cpu_op_s"] < 1e-3
    assert r["cpu_linear_s"] > 0


def test_probe_document_names_host_and_schema(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    real = hostprobe.probe_cpu
    monkeypatch.setattr(hostprobe, "probe_cpu", lambda: real(calls=20, loops=1))
    out = tmp_path / "probe.json"
    assert hostprobe.main(["--out", str(out), "--label", "here"]) == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == hostprobe.SCHEMA and doc["label"] == "here"
    assert doc["host"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "cuda" not in doc and doc["cpu_op_s"] > 0


def test_host_command_writes_once_and_keeps_a_user_file(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from dsocr_trace.cli import app

    real = hostprobe.probe_cpu
    monkeypatch.setattr(hostprobe, "probe_cpu", lambda: real(calls=20, loops=1))
    out = tmp_path / "host.json"
    r = CliRunner().invoke(app, ["host", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["schema"] == hostprobe.SCHEMA
    out.write_text("mine")
    r = CliRunner().invoke(app, ["host", "--out", str(out)])
    # the console entry turns this UserError into one line and exit 1 (tests/test_cli_errors.py)
    assert r.exit_code != 0 and type(r.exception).__name__ == "UserError" and "--force" in str(r.exception)
    assert out.read_text() == "mine"


def test_quick_calibration_runs_a_subset_of_the_calibration_workloads() -> None:
    from dsocr_trace.commands.gpu import calibration_harness_options

    def parts(opts: Any) -> tuple[set[str], set[str]]:
        modes = set(opts.modes.split(","))
        decode = {f"{b}:{k}" for grp in opts.decode.split(";") for b, ks in [grp.split(":")] for k in ks.split(",")}
        return modes, decode

    full, quick = parts(calibration_harness_options()), parts(calibration_harness_options(quick=True))
    assert quick[0] < full[0] and quick[1] < full[1]
    assert any(d.startswith("1:") for d in quick[1])  # batch-1 decode: host-bound, what the host cost is fitted on
