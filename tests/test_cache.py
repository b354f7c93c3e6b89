"""The disk cache: round trips, corrupt and truncated entries, concurrent writers, unwritable folders, and a
cached analysis that is byte-identical to a traced one."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from dsocr_trace import analyze
from dsocr_trace import cache as disk_cache
from dsocr_trace.analyze import run_analysis
from dsocr_trace.models.source import DEFAULT_MODEL
from dsocr_trace.report.build import build_report, dumps
from dsocr_trace.workload import make_workload


@pytest.fixture
def cache_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DSOCR_TRACE_CACHE", str(tmp_path / "c"))
    return tmp_path / "c"


def test_round_trip_and_miss(cache_at: Path) -> None:
    assert disk_cache.load("x", "k") is None
    assert disk_cache.store("x", "k", {"a": [1, 2]})
    assert disk_cache.load("x", "k") == {"a": [1, 2]}
    assert disk_cache.key_of({"b": 1, "a": 2}) == disk_cache.key_of({"a": 2, "b": 1})
    assert disk_cache.key_of(1) != disk_cache.key_of(2)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_damaged_entry_is_a_miss(cache_at: Path, damage: str) -> None:
    disk_cache.store("x", "k", list(range(1000)))
    f = cache_at / "x-k.pkl"
    raw = f.read_bytes()
    if damage == "truncate":
        f.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        f.write_bytes(raw[:-10] + bytes([raw[-10] ^ 0xFF]) + raw[-9:])
    elif damage == "garbage":
        f.write_bytes(b"not a cache file at all")
    else:
        f.write_bytes(b"")
    assert disk_cache.load("x", "k") is None
    assert disk_cache.store("x", "k", [1])  # and it is replaced
    assert disk_cache.load("x", "k") == [1]


def test_concurrent_writers_leave_a_whole_entry(cache_at: Path) -> None:
    big = [list(range(5000)) for _ in range(20)]
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for _ in range(5):
                disk_cache.store("x", "same", (i, big))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    got = disk_cache.load("x", "same")
    assert got is not None and got[1] == big
    assert not [p for p in cache_at.iterdir() if p.suffix == ".tmp"]  # no temporary file left behind


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_skipped(cache_at: Path) -> None:
    cache_at.mkdir(parents=True)
    cache_at.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert disk_cache.store("x", "k", 1) is False
        assert disk_cache.load("x", "k") is None
    finally:
        cache_at.chmod(stat.S_IRWXU)


def test_uncreatable_folder_and_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("DSOCR_TRACE_CACHE", str(blocker / "sub"))
    assert disk_cache.cache_dir() is None
    assert disk_cache.store("x", "k", 1) is False
    monkeypatch.setenv("DSOCR_TRACE_CACHE", "off")
    assert disk_cache.cache_dir() is None and disk_cache.load("x", "k") is None


def test_cached_analysis_is_byte_identical(cache_at: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh process's view: the in-process caches emptied, traces and model facts read from disk, the model
    never built, and the same report bytes."""
    monkeypatch.setattr(analyze, "_TRACES", {})
    monkeypatch.setattr(analyze, "_MODELS", {})
    wl = make_workload("tiny", batch=2)
    first = dumps(build_report(run_analysis(DEFAULT_MODEL, wl)))
    assert sorted(p.name.split("-")[0] for p in cache_at.iterdir()).count("trace") == 2
    monkeypatch.setattr(analyze, "_TRACES", {})
    monkeypatch.setattr(analyze, "_MODELS", {})
    again = run_analysis(DEFAULT_MODEL, wl)
    assert analyze._MODELS[DEFAULT_MODEL].built is None  # nothing traced, so nothing built
    assert dumps(build_report(again)) == first


def test_code_fingerprint_follows_the_source() -> None:
    assert disk_cache.code_fingerprint("trace") != disk_cache.code_fingerprint("costs")
    assert disk_cache.code_fingerprint("trace") == disk_cache.code_fingerprint("trace")


def test_one_bound_rule_for_console_and_report(base_analysis: analyze.Analysis) -> None:
    """The console's stage table and report.json name the same bound for every stage (CLIP under fused execution
    at batch 8 once read compute-bound on the console and host-bound in report.json)."""
    from dsocr_trace.commands.analyze import stage_view
    from dsocr_trace.hardware.profile import packaged_profile
    from dsocr_trace.hardware.spec import load_device
    from dsocr_trace.request import predict_request

    spec = load_device("h200")
    report = build_report(base_analysis, predict_request(base_analysis, spec, packaged_profile(spec), "fused"))
    shown = stage_view(report)
    stages = report["predictions"]["stages"]
    assert set(stages) <= set(shown)
    for name, p in stages.items():
        assert shown[name]["bound"] == p["bound"], name
        idle = p["wall_s"] - p["device_s"] > 0.10 * p["wall_s"]
        assert (p["bound"] == "host") == idle, name
