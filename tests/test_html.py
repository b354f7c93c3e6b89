"""The single-file HTML report and sweep explorer: self-contained (no external resource; plotly.js inlined from the
installed package, unchanged), deterministic, the embedded figures complete; rendered in headless Chromium
(Debian's package), whose DOM after plotly.js drew holds the charts' marks and whose screenshot shows drawn charts
(non-background pixels, several colours) in each chart's box. Without chromium the browser tests skip and the
DOM-level checks still run in Python."""

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
    from plotly.offline import get_plotlyjs

    for tag, a in doc.tags:
        assert tag not in ("link", "iframe", "img"), tag
        assert "src" not in a and "href" not in a, (tag, a)
    # the library's bundle as the plotly package ships it; the page's own script loads nothing
    assert doc.data["plotly-js"].strip() == get_plotlyjs().strip()
    own = doc.data["page-js"]
    assert "import(" not in own and "fetch(" not in own and "XMLHttpRequest" not in own


def _points(fig: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in fig["data"] if t.get("mode") == "markers"]


def test_report_html_is_self_contained_and_complete(pages: dict[str, Any]) -> None:
    doc = _parse(pages["dir"] / "report.html")
    _check_self_contained(doc)
    ids = {a.get("id") for _, a in doc.tags}
    assert {"stage-chart", "type-chart", "module-tree", "roofline", "memory-chart", "roof-phase"} <= ids
    data = json.loads(doc.data["dsocr-data"])
    pred = pages["report"]["predictions"]
    placed = sum(1 for ph in ("prefill", "decode") for r in pred["nodes"][ph]
                 if r["device_s"] > 0 and r["bytes"] > 0 and r["tc_flops"] + r["cc_flops"] > 0)
    roof = data["charts"]["roofline"]
    points = _points(roof["figure"])
    assert sum(len(t["x"]) for t in points) == placed > 500
    assert [t["name"].split(" (")[0] for t in points] == [s for s in pages["report"]["stages"]
                                                          if any(s in t["name"] for t in points)]
    roofs = {t["name"]: t for t in roof["figure"]["data"] if t.get("mode") == "lines"}
    assert roofs["tensor-core roof"]["y"][-1] == pred["device"]["tc_flops"]
    assert roofs["tensor-core roof"]["y"][1] / roofs["tensor-core roof"]["x"][1] == pytest.approx(
        pred["device"]["mem_bw"])
    hovers = " ".join(h for t in points for h in t["hovertext"])
    assert "rule: gemm.addmm" in hovers and "rule: gemm.mm" in hovers and "rule: attention." in hovers
    # the phase views show only that phase's stages, the roofs always
    assert roof["views"]["decode"]["visible"] == [t["name"].startswith("decode.") for t in points] + [True, True]
    mem = data["charts"]["memory-chart"]["figure"]
    stacked = [t for t in mem["data"] if t["y"] == ["request"]]
    assert sum(t["x"][0] for t in stacked) == pytest.approx(pred["memory"]["total_bytes"] / 2**30)
    assert mem["layout"]["shapes"][0]["x0"] == pytest.approx(pred["memory"]["device_bytes"] / 2**30)
    stage = data["charts"]["stage-chart"]
    assert stage["figure"]["data"][0]["y"] == list(pages["report"]["stages"])
    assert stage["figure"]["data"][0]["x"] == [pred["stages"][n]["device_s"] * 1e3 for n in pages["report"]["stages"]]
    assert set(stage["views"]) == {"time", "flops"}
    assert set(data["charts"]["type-chart"]["figures"]) == {"prefill", "decode"}
    text = (pages["dir"] / "report.html").read_text()
    assert "calibrated on NVIDIA H100" in text  # the profile is named, with its card
    assert "MoE routing" in text
    req = pred["request"]
    assert "USD per million pages" in text and f"${req['usd_per_million_pages']:,.0f} at" in text
    assert req["price_source"].split(",")[0] in text and f">{req['confidence']}<" in text


def test_html_is_deterministic(pages: dict[str, Any]) -> None:
    assert report_html(pages["report"]) == report_html(pages["report"])
    path = pages["dir"] / "report.html"
    from dsocr_trace.analyze import run_analysis
    from dsocr_trace.report.node_rows import trace_nodes
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
    assert {"filters", "sweep-chart", "sweep-gpus", "sweep-table", "x-metric", "y-metric", "fit-only"} <= {
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


_CHART = re.compile(r"<div [^>]*class=\"chart[^\"]*\"[^>]*>")


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

    dom = _chromium(["--virtual-time-budget=10000", "--dump-dom", path.as_uri()], tmp / "p1", 1200)
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
    n_points = sum(len(t["x"]) for t in _points(data["charts"]["roofline"]["figure"]))
    assert charts["roofline"]["marks"] == n_points  # one marker per kernel with FLOPs
    assert charts["stage-chart"]["marks"] == 3 * len(pages["report"]["stages"])  # device, host and wall bars
    segments = [t for t in data["charts"]["memory-chart"]["figure"]["data"] if t["y"] == ["request"]]
    assert charts["memory-chart"]["marks"] >= len(segments)
    assert dom.count('class="main-svg"') >= 4 and "modebar" in dom  # plotly.js drew, with its zoom/pan bar
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


_CIRCLE, _SQUARE = "A5,5", "H-5V-5H5Z"  # plotly.js's circle and square marker paths at size 10


@NEEDS_CHROMIUM
def test_sweep_explorer_renders_in_chromium(pages: dict[str, Any], tmp_path: Path) -> None:
    dom, charts, img = _render(pages["dir"] / "sweep.html", tmp_path)
    assert set(charts) == {"sweep-chart", "sweep-gpus"}
    rows = pages["rows"]
    unfit = sum(1 for r in rows if r["fits"] is False)
    # every point drawn once, the two that do not fit crossed out as well; the per-GPU panels hold the same points
    assert charts["sweep-chart"]["marks"] == charts["sweep-gpus"]["marks"] == len(rows) + unfit == 10
    scatter = dom.split('id="sweep-chart"', 1)[1].split('id="sweep-gpus"', 1)[0]
    marks = re.findall(r'<path class="point"[^>]*d="([^"]*)"', scatter)
    # a marker per execution: circles for eager, squares for fused
    assert sum(_CIRCLE in d for d in marks) == sum(1 for r in rows if r["execution"] == "eager")
    assert sum(d.endswith(_SQUARE) for d in marks) == sum(1 for r in rows if r["execution"] == "fused")
    panels = dom.split('id="sweep-gpus"', 1)[1]
    assert 'class="subplot xy"' in panels and 'class="subplot x2y2"' in panels  # one panel per GPU
    trust = len({r["confidence"] for r in rows})
    # tiny, 2 devices, 2 executions, 1 implementation, 2 batches, 1 token count, trust values, "only points that fit"
    assert dom.count('type="checkbox"') == 1 + 2 + 2 + 1 + 2 + 1 + trust + 1
    body = dom.split('id="sweep-table"', 1)[1].split("</table>", 1)[0]
    assert body.count("<tr") == 1 + len(rows) and body.count('class="unfit"') == 2
    # points that do not fit are listed last
    classes = re.findall(r'<tr class="([^"]*)"', body)
    assert classes[-unfit:] == ["unfit"] * unfit and "unfit" not in classes[:-unfit]
    share, colours, saturated = _drawn(img, charts["sweep-chart"]["box"])
    assert share > 0.005 and colours >= 4 and saturated > 50
