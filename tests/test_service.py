"""The planning service over real HTTP: a uvicorn server started on a free port, an httpx client, the contracts,
4xx answers that say what to change, concurrent requests, and the committed OpenAPI description."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn

from dsocr_trace.service import MAX_BODY_BYTES, MAX_POINTS, create_app, openapi_document

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the service did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_health_and_devices(base_url: str) -> None:
    assert httpx.get(f"{base_url}/health").json()["status"] == "ok"
    devs = httpx.get(f"{base_url}/devices").json()
    by_key = {d["key"]: d for d in devs}
    assert {"rtx5090", "h100", "h200"} <= set(by_key)
    assert by_key["h100"]["profile"] == "calibrated" and by_key["rtx5090"]["profile"] == "transferred"


def test_analyze_equals_the_api(base_url: str) -> None:
    from dsocr_trace import api

    r = httpx.post(f"{base_url}/analyze", json={"mode": "tiny", "device": "h100", "batch": 2}, timeout=120)
    assert r.status_code == 200, r.text
    doc = r.json()
    direct = api.analyze("tiny", device="h100", batch=2)
    assert direct.prediction is not None
    assert doc["request"]["ttft_ms"] == pytest.approx(direct.prediction.request.ttft_s * 1e3, rel=1e-12)
    assert [s["stage"] for s in doc["stages"]] == [s["stage"] for s in direct.stage_rows()]
    assert doc["request"]["profile"] == "calibrated" and doc["device"] == "h100"
    counts = httpx.post(f"{base_url}/analyze", json={"mode": "tiny"}, timeout=120).json()
    assert counts["request"] is None and counts["stages"][0]["device_ms"] is None


@pytest.mark.parametrize(("body", "says"), [
    ({"mode": "huge"}, "unknown mode"),
    ({"mode": "tiny", "batch": 0}, "greater than or equal to 1"),
    ({"mode": "tiny", "batch": 100000}, "less than or equal to"),
    ({"mode": "tiny", "device": "a100x"}, "a100x"),
    ({"mode": "tiny", "bogus": 1}, "bogus"),
    ({"mode": "gundam", "crops": "9x9"}, "9x9"),
    ({"mode": "tiny", "device": "h100", "execution": "fused", "implementation": "remote"}, "eager only"),
    ({"mode": "tiny", "implementation": "hub"}, "remote-flash"),
    ({"mode": "tiny", "routing": "histogram:/etc/passwd"}, "pattern"),  # no server file read on request
])
def test_bad_analyze_input_is_a_4xx_that_says_what_to_change(base_url: str, body: dict[str, object],
                                                             says: str) -> None:
    r = httpx.post(f"{base_url}/analyze", json=body, timeout=60)
    assert r.status_code == 422, r.text
    assert says in r.text


def test_limits(base_url: str) -> None:
    big = {"modes": ["tiny"] * 16, "devices": ["h100"] * 16, "batches": [1] * 32, "output_tokens": [10]}
    r = httpx.post(f"{base_url}/sweep", json=big, timeout=30)
    assert r.status_code == 422 and str(MAX_POINTS) in r.json()["error"]
    r = httpx.post(f"{base_url}/analyze", content=b"{" + b" " * (MAX_BODY_BYTES + 10) + b"}",
                   headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 413 and "smaller" in r.json()["error"]
    r = httpx.post(f"{base_url}/analyze", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_sweep_and_plan(base_url: str) -> None:
    body = {"modes": ["tiny"], "devices": ["h100", "h200"], "batches": [1, 2], "output_tokens": [100, 200]}
    rows = httpx.post(f"{base_url}/sweep", json=body, timeout=300).json()["rows"]
    assert len(rows) == 8 and all(r["fits"] for r in rows)
    plan = httpx.post(f"{base_url}/plan", json={"mode": "tiny", "devices": ["h100"], "max_batch": 4,
                                                 "output_tokens": 100, "tpot_ms": 1000}, timeout=300).json()
    assert plan["best"] is not None and plan["best"]["device"] == "h100"
    assert "fits in GPU memory" in plan["targets"]
    both = {"mode": "tiny", "devices": ["h100"], "max_batch": 2, "output_tokens": 100, "tpot_ms": 1000,
            "executions": ["fused", "eager"], "prompt_tokens": 40}
    measured = httpx.post(f"{base_url}/plan", json=both, timeout=300).json()
    fastest = httpx.post(f"{base_url}/plan", json=both | {"rank": "throughput"}, timeout=300).json()
    assert measured["best"]["execution"] == "eager" and fastest["best"]["execution"] == "fused"
    assert measured["best"]["prefill_tokens"] == fastest["best"]["prefill_tokens"] > rows[0]["prefill_tokens"]
    two = {"mode": "tiny", "devices": ["h100", "rtx5090"], "max_batch": 2, "output_tokens": 100, "tpot_ms": 1000,
           "rank": "cost"}
    cheapest = httpx.post(f"{base_url}/plan", json=two, timeout=300).json()
    fitting = [r for r in cheapest["rows"] if r["fits"] and r["meets"]]
    assert len(fitting) >= 2 and cheapest["best"]["usd_per_page"] == min(r["usd_per_page"] for r in fitting)
    bad = httpx.post(f"{base_url}/plan", json=two | {"rank": "cheapest"}, timeout=30)
    assert bad.status_code == 422 and "cost" in bad.text


def test_concurrent_requests_all_answer_and_the_catalog_is_not_blocked(base_url: str) -> None:
    def analyze(batch: int) -> int:
        return httpx.post(f"{base_url}/analyze", json={"mode": "tiny", "device": "h200", "batch": batch},
                          timeout=300).status_code

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(analyze, b) for b in (1, 2, 1, 2, 1, 2)]
        t0 = time.monotonic()
        assert httpx.get(f"{base_url}/devices", timeout=30).status_code == 200
        catalog_s = time.monotonic() - t0
        codes = [f.result() for f in futures]
    assert codes == [200] * 6
    assert catalog_s < 5.0  # answered while the analyses were still queued


def test_openapi_is_generated_from_the_contracts_and_committed() -> None:
    committed = json.loads((ROOT / "specs" / "openapi.json").read_text())
    assert committed == json.loads(json.dumps(openapi_document()))
    paths = committed["paths"]
    assert {"/analyze", "/sweep", "/plan", "/devices", "/health"} <= set(paths)
    assert "AnalyzeRequest" in committed["components"]["schemas"]
