"""The README's and the quickstart's `dsocr-trace` commands run in order, as written, each document in a fresh folder.

No `--force` is added: a sequence that overwrote its own outputs would fail here, as it would for a reader.
`calibrate` and `validate` measure a local CUDA GPU: on this CPU machine they must fail with their one-line error.
The placeholder files the documents point to (a snapshot folder with a config.json, measured timings, a Chrome
trace, the profile `calibrate` would have written) are put where the documents say they come from. Commands run
in process (typer's CliRunner: exit codes and outputs), `> FILE` redirections write stdout to FILE.
"""

from __future__ import annotations

import gzip
import re
import shlex
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dsocr_trace.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = {"README": ROOT / "README.md", "quickstart": ROOT / "specs" / "quickstart.md"}


def examples(doc: Path) -> list[str]:
    """Every `dsocr-trace ...` command of the document's code blocks, in order (parts of `&&` chains included)."""
    cmds: list[str] = []
    inside, block = False, []
    for line in doc.read_text().splitlines():
        if line.startswith("```"):
            if inside:
                text = "\n".join(block).replace("\\\n", " ")
                for cmd in text.splitlines():
                    for part in cmd.split("&&"):
                        part = part.split("  #")[0].split(" # ")[0].strip()
                        if part.startswith("dsocr-trace "):
                            cmds.append(part)
            inside, block = not inside, []
        elif inside:
            block.append(line)
    return cmds


def _placeholders(d: Path) -> None:
    """What the documents say to bring: a snapshot folder (a model's config.json), the committed H100 measurements
    and Chrome trace, and the profile `calibrate` writes on a GPU (the packaged H100 one stands in)."""
    (d / "my-snapshot").mkdir()
    shutil.copy(resources.files("dsocr_trace.data").joinpath("deepseek-ocr-config.json"),
                d / "my-snapshot" / "config.json")
    shutil.copy(ROOT / "benchmarks" / "results" / "h100" / "measured.json", d / "measured.json")
    shutil.copy(ROOT / "benchmarks" / "results" / "h100" / "trace_decode_kv1000_b1.json.gz", d / "trace.json.gz")
    (d / "my-gpu.json").write_bytes(gzip.decompress(
        resources.files("dsocr_trace.hardware").joinpath("profiles", "h100.json.gz").read_bytes()))


def test_examples_found() -> None:
    assert len(examples(DOCS["README"])) >= 10 and len(examples(DOCS["quickstart"])) >= 15
    assert any(c.startswith("dsocr-trace sweep") for c in examples(DOCS["README"]))
    first = examples(DOCS["README"])[0]  # the install line's job
    assert first.startswith("dsocr-trace analyze") and "--force" not in first


def test_quickstart_lists_every_command() -> None:
    m = re.search(r"`dsocr-trace --help` lists the commands: (.*?);", DOCS["quickstart"].read_text())
    assert m, "the quickstart names the commands --help lists"
    named = re.findall(r"`(\w+)`", m.group(1))
    registered = [c.name or c.callback.__name__ for c in app.registered_commands if c.callback is not None]
    assert sorted(named) == sorted(registered)


@pytest.mark.parametrize("doc", list(DOCS))
def test_commands_run_in_order_in_a_fresh_folder(doc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _placeholders(tmp_path)
    runner = CliRunner()
    for cmd in examples(DOCS[doc]):
        words = shlex.split(cmd)[1:]
        target = None
        if ">" in words:
            target = Path(words[words.index(">") + 1])
            words = words[: words.index(">")]
        if words[0] == "sweep":
            # the README's sweep is the full planner grid; here the first point of each axis
            words = [w.split(",")[0] if "," in w and not w.startswith("-") else w for w in words]
        result = runner.invoke(app, words, catch_exceptions=True)
        if words[0] in ("calibrate", "validate"):
            assert result.exit_code != 0, cmd
            assert "no CUDA device" in str(result.exception), cmd
            continue
        assert result.exit_code == 0, (cmd, result.output[-2000:], repr(result.exception))
        if target is not None:
            target.write_text(result.stdout)
    if doc == "README":
        assert (tmp_path / "runs" / "base-h100" / "timeline.json").is_file()
        assert (tmp_path / "runs" / "tiny.graphml").is_file()
        assert (tmp_path / "my-gpu.yaml").read_text().startswith("# NVIDIA GeForce RTX 4090")
        assert '"prediction"' in (tmp_path / "runs" / "mine.json").read_text()
    assert not [p for p in tmp_path.rglob(".dsocr-trace-staging.*")]


def test_planner_table_script_runs_from_any_folder(tmp_path: Path) -> None:
    """The script imports the checkout it lives in, whatever the working folder (and whatever is installed)."""
    code = ("import runpy, sys; g = runpy.run_path(sys.argv[1]); import dsocr_trace; "
            "print(dsocr_trace.__file__); print(callable(g['main']))")
    env = {"PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", code, str(ROOT / "scripts" / "planner_table.py")], cwd=tmp_path,
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [str(ROOT / "src" / "dsocr_trace" / "__init__.py"), "True"]
