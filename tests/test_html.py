"""The single-file HTML report and sweep explorer: self-contained (no external resource), deterministic, the
embedded data complete; rendered in headless Chromium (Debian's package), whose DOM after the script ran holds
the charts' SVG marks and whose screenshot shows drawn charts (non-background pixels, several colours) in each
chart's box. Without chromium the browser test skips and the DOM-level checks still run in Python."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from dsocr_trace.commands.analyze import analyze_command
from dsocr_trace.commands.sweep import sweep_command
from dsocr_trace.errors import UserError
from dsocr_trace.models.source import DEFAULT_MODEL
from dsocr_trace.report.html import report_html, sweep_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NEEDS_CHROMIUM = pytest.mark.skipif(CHROMIUM is None, reason="headless browser test: Debian's chromium is not "
                                                             "installed (.ci/run installs it with apt-get)")
WIDTH = 1280


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("html")
    report = analyze_command(model=DEFAULT_MODEL, mode="base", crops=None, image_size=None, prompt_tokens=12,
                             output_tokens=50, batch=1, kv_len=None, tracer="dispatch", out=None, graphml=None,
                             force=False, device="h100", html=d / "report.html")
    bare = analyze_command(model=DEFAULT_MODEL, mode="base", crops=None, image_size=None, prompt_tokens=12,
                           output_tokens=50, batch=1, kv_len=None, tracer="dispatch", out=None, graphml=None,
                           force=False, html=d / "bare.html")
    rows = sweep_command(model=DEFAULT_MODEL, modes="tiny", devices="h100,rtx4090", batch="1,512",
                         output_tokens="100", execution="eager,fused", out=d / "s.csv", force=False,
                         html=d / "sweep.html")
    return {"dir": d, "report": report, "bare": bare, "rows": rows}


class _Doc(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.data: dict[str, str] = {}
        self._script: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "script":
            self._script = a.get("id") or f"script{len(self.data)}"
            self.data[self._script] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self.data[self._script] += data


def _parse(path: Path) -> _Doc:
    doc = _Doc()
    doc.feed(path.read_text(encoding="utf-8"))
    return doc


def _check_self_contained(doc: _Doc) -> None:
    for tag, a in doc.tags:
        assert tag not in ("link", "iframe", "img"), tag
        assert "src" not in a and "href" not in a, (tag, a)
    assert all("import(" not in s and "fetch(" not in s and "XMLHttpRequest" not in s for s in doc.data.values())


def test_report_html_is_self_contained_and_complete(pages: dict[str, Any]) -> None:
    doc = _parse(pages["dir"] / "report.html")
    _check_self_contained(doc)
    ids = {a.get("id") for _, a in doc.tags}
    assert {"stage-chart", "type-chart", "module-tree", "roofline", "memory-chart", "roof-phase"} <= ids
    data = json.loads(doc.data["dsocr-data"])
    pred = pages["report"]["predictions"]
    placed = sum(1 for ph in ("prefill", "decode") for r in pred["nodes"][ph]
                 if r["device_s"] > 0 and r["bytes"] > 0 and r["tc_flops"] + r["cc_flops"] > 0)
    roof = data["roofline"]
    assert len(roof["points"]) == placed > 500
    assert roof["tc"] == pred["device"]["tc_flops"] and roof["bw"] == pred["device"]["mem_bw"]
    rules = {roof["strings"][p[6]] for p in roof["points"]}
    assert {"gemm.addmm", "gemm.mm"} <= rules and any(r.startswith("attention.") for r in rules), rules
    mem = data["memory"]
    assert mem["total"] == pred["memory"]["total_bytes"] and mem["device"] == pred["memory"]["device_bytes"]
    assert sum(s["bytes"] for s in mem["segments"]) == pytest.approx(mem["total"])
    assert [s["name"] for s in data["stages"]] == list(pages["report"]["stages"])
    text = (pages["dir"] / "report.html").read_text()
    assert "calibrated on NVIDIA H100" in text  # the profile is named, with its card
    assert "MoE routing" in text


def test_html_is_deterministic(pages: dict[str, Any]) -> None:
    assert report_html(pages["report"]) == report_html(pages["report"])
    path = pages["dir"] / "report.html"
    from dsocr_trace.analyze import run_analysis
    from dsocr_trace.report.writers import trace_nodes
    from dsocr_trace.workload import make_workload

    nodes = trace_nodes(run_analysis(DEFAULT_MODEL, make_workload("base", output_tokens=50)))
    assert report_html(pages["report"], nodes) == path.read_text(encoding="utf-8")
    assert sweep_html(pages["rows"]) == (pages["dir"] / "sweep.html").read_text(encoding="utf-8")


def test_sweep_html_data(pages: dict[str, Any]) -> None:
    doc = _parse(pages["dir"] / "sweep.html")
    _check_self_contained(doc)
    data = json.loads(doc.data["dsocr-data"])
    assert data["kind"] == "sweep" and len(data["rows"]) == len(pages["rows"]) == 8
    assert sum(1 for r in data["rows"] if r["fits"] is False) == 2  # tiny B512 on the 24 GB card
    assert {"filters", "sweep-chart", "sweep-table", "x-metric", "y-metric", "fit-only"} <= {
        a.get("id") for _, a in doc.tags}


def test_html_target_checks(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"should end in \.html"):
        analyze_command(model=DEFAULT_MODEL, mode="base", crops=None, image_size=None, prompt_tokens=12,
                        output_tokens=50, batch=1, kv_len=None, tracer="dispatch", out=None, graphml=None,
                        force=False, html=tmp_path / "r.txt")
    with pytest.raises(UserError, match="names another output"):
        analyze_command(model=DEFAULT_MODEL, mode="base", crops=None, image_size=None, prompt_tokens=12,
                        output_tokens=50, batch=1, kv_len=None, tracer="dispatch", out=tmp_path / "r.html",
                        graphml=None, force=False, html=tmp_path / "r.html")
    assert not list(tmp_path.iterdir())


# -- in the browser ---------------------------------------------------------------------------------------------


def _chromium(args: list[str], profile: Path, height: int) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--force-device-scale-factor=1", "--hide-scrollbars", f"--user-data-dir={profile}",
           f"--window-size={WIDTH},{height}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


_CHART = re.compile(r"<svg [^>]*class=\"chart\"[^>]*>")


def _charts(dom: str) -> dict[str, dict[str, Any]]:
    out = {}
    for tag in _CHART.findall(dom):
        attrs = dict(re.findall(r"([\w-]+)=\"([^\"]*)\"", tag))
        x, y, w, h = (int(v) for v in attrs["data-box"].split(","))
        out[attrs["id"]] = {"box": (x, y, w, h), "marks": int(attrs["data-marks"])}
    return out


def _render(path: Path, tmp: Path) -> tuple[str, dict[str, dict[str, Any]], Any]:
    """The DOM after the script ran, each chart's box and mark count, and a screenshot covering every chart."""
    from PIL import Image

    dom = _chromium(["--dump-dom", path.as_uri()], tmp / "p1", 1200)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-rendered="1"' in dom.stdout, "the page script did not finish"
    charts = _charts(dom.stdout)
    height = min(8000, max(y + h for x, y, w, h in (c["box"] for c in charts.values())) + 40)
    png = tmp / f"{path.stem}.png"
    shot = _chromium([f"--screenshot={png}", path.as_uri()], tmp / "p2", height)
    assert shot.returncode == 0 and png.is_file(), shot.stderr[-2000:]
    return dom.stdout, charts, Image.open(png).convert("RGB")


def _drawn(img: Any, box: tuple[int, int, int, int]) -> tuple[float, int, int]:
    """(share of non-white pixels, distinct colours at 4 bits a channel, saturated pixels) inside a box."""
    import numpy as np

    x, y, w, h = box
    px = np.asarray(img.crop((x + 2, y + 2, x + w - 2, y + h - 2)), dtype=np.int32).reshape(-1, 3)
    ink = px[px.min(axis=1) < 235]
    colours = {tuple(c) for c in (ink >> 4).tolist()}
    saturated = int(((ink.max(axis=1) - ink.min(axis=1)) > 80).sum())
    return len(ink) / max(1, len(px)), len(colours), saturated


@NEEDS_CHROMIUM
def test_report_renders_in_chromium(pages: dict[str, Any], tmp_path: Path) -> None:
    dom, charts, img = _render(pages["dir"] / "report.html", tmp_path)
    assert set(charts) == {"stage-chart", "type-chart", "roofline", "memory-chart"}
    data = json.loads(_parse(pages["dir"] / "report.html").data["dsocr-data"])
    n_points = len(data["roofline"]["points"])
    assert dom.count('class="pt"') == n_points  # one circle per kernel with FLOPs
    assert charts["roofline"]["marks"] >= n_points
    assert charts["stage-chart"]["marks"] >= 3 * len(data["stages"])  # device, host and wall bars per stage
    assert charts["memory-chart"]["marks"] >= len(data["memory"]["segments"])
    assert "<tbody><tr>" in dom and "language_model" in dom  # the module tree's rows
    for name, c in charts.items():
        share, colours, saturated = _drawn(img, c["box"])
        assert share > 0.01 and colours >= 4 and saturated > 50, (name, share, colours, saturated)


@NEEDS_CHROMIUM
def test_report_without_device_renders(pages: dict[str, Any], tmp_path: Path) -> None:
    dom, charts, img = _render(pages["dir"] / "bare.html", tmp_path)
    assert set(charts) == {"stage-chart", "type-chart"}
    assert "--device NAME" in dom
    for c in charts.values():
        share, colours, _ = _drawn(img, c["box"])
        assert share > 0.01 and colours >= 3


@NEEDS_CHROMIUM
def test_sweep_explorer_renders_in_chromium(pages: dict[str, Any], tmp_path: Path) -> None:
    dom, charts, img = _render(pages["dir"] / "sweep.html", tmp_path)
    assert set(charts) == {"sweep-chart"}
    rows = pages["rows"]
    # every point drawn (circle = eager, square = fused), the two that do not fit crossed out
    assert dom.count('class="pt"') == sum(1 for r in rows if r["execution"] == "eager")
    assert len(re.findall(r'<rect class="bar"', dom)) == sum(1 for r in rows if r["execution"] == "fused")
    assert len(re.findall(r'<path d="M[^"]*" stroke="#d62728"', dom)) == 2
    # tiny, 2 devices, 2 executions, 2 batches, 1 token count, "only points that fit"
    assert dom.count('type="checkbox"') == 1 + 2 + 2 + 2 + 1 + 1
    body = dom.split('id="sweep-table"', 1)[1]
    assert body.count("<tr") == 1 + len(rows) and body.count('class="unfit"') == 2
    share, colours, saturated = _drawn(img, charts["sweep-chart"]["box"])
    assert share > 0.005 and colours >= 4 and saturated > 50
