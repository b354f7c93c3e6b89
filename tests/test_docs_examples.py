"""Every `dsocr-trace ...` example in the README and specs/quickstart.md runs (in-process, in a scratch folder).

`calibrate` and `validate` measure a local CUDA GPU: on this CPU machine they must fail with their one-line
error. Files the examples name (a user device file, a snapshot folder, measured timings, a Chrome trace) are
created from the package and the committed H100 measurements.
"""

from __future__ import annotations

import shlex
import shutil
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dsocr_trace.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _examples() -> list[str]:
    cmds: list[str] = []
    for doc in (ROOT / "README.md", ROOT / "specs" / "quickstart.md"):
        inside, block = False, []
        for line in doc.read_text().splitlines():
            if line.startswith("```"):
                if inside:
                    text = "\n".join(block).replace("\\\n", " ")
                    for cmd in text.splitlines():
                        cmd = cmd.split("  #")[0].split(" # ")[0].strip()
                        if cmd.startswith("dsocr-trace "):
                            cmds.append(cmd)
                inside, block = not inside, []
            elif inside:
                block.append(line)
    return cmds


EXAMPLES = _examples()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("docs")
    shutil.copy(resources.files("dsocr_trace.hardware").joinpath("devices", "h100.yaml"), d / "my-gpu.yaml")
    (d / "my-snapshot").mkdir()
    shutil.copy(resources.files("dsocr_trace.data").joinpath("deepseek-ocr-config.json"),
                d / "my-snapshot" / "config.json")
    import gzip

    (d / "my-gpu.json").write_bytes(gzip.decompress(
        resources.files("dsocr_trace.hardware").joinpath("profiles", "h100.json.gz").read_bytes()))
    shutil.copy(ROOT / "benchmarks" / "results" / "h100" / "measured.json", d / "measured.json")
    shutil.copy(ROOT / "benchmarks" / "results" / "h100" / "trace_decode_kv1000_b1.json.gz", d / "trace.json.gz")
    return d


def test_examples_found() -> None:
    assert len(EXAMPLES) >= 15
    assert any(c.startswith("dsocr-trace sweep") for c in EXAMPLES)


def test_every_example_runs(scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(scratch)
    runner = CliRunner()
    for cmd in EXAMPLES:
        args = shlex.split(cmd)[1:]
        if args[0] in ("analyze", "sweep", "compare", "diff") and "--force" not in args and "--out" in args:
            args.append("--force")  # the README and quickstart reuse run folders
        if args[0] == "analyze" and "--graphml" in args and "--force" not in args:
            args.append("--force")
        if args[0] == "sweep":
            # the README's sweep is the full planner grid; the docs test runs its first point of each axis
            args = [a if not a.startswith(("tiny,", "rtx5090,", "1,8", "500,")) else a.split(",")[0] for a in args]
        result = runner.invoke(app, args, catch_exceptions=True)
        if args[0] in ("calibrate", "validate"):
            assert result.exit_code != 0, cmd
            assert "no CUDA device" in str(result.exception), cmd
            continue
        assert result.exit_code == 0, (cmd, result.output[-2000:], repr(result.exception))
    assert (scratch / "runs" / "base" / "report.json").is_file()
    assert (scratch / "runs" / "base.graphml").is_file()
