"""Bounded load test of `dsocr-trace serve` on localhost: N requests, C at a time, a mix of analyze (several
modes, batches, GPUs, executions), sweep and catalog requests; p50/p99 latency per endpoint, errors, and the
server's resident memory before and after.

    python benchmarks/service_load.py --requests 500 --concurrency 16 --out benchmarks/results/service

The server runs as its own process (`dsocr-trace serve`), started and stopped here; the first pass over the
request mix warms its caches and is not timed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

MIX: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/analyze", {"mode": "tiny", "device": "h100"}),
    ("POST", "/analyze", {"mode": "base", "device": "h200", "batch": 4}),
    ("GET", "/devices", None),
    ("POST", "/analyze", {"mode": "small", "device": "rtx5090", "execution": "graph"}),
    ("POST", "/analyze", {"mode": "gundam", "crops": "2x3", "device": "h100", "output_tokens": 1000}),
    ("GET", "/health", None),
    ("POST", "/analyze", {"mode": "base"}),
    ("POST", "/sweep", {"modes": ["tiny", "base"], "devices": ["h100", "rtx5090"], "batches": [1, 4],
                        "output_tokens": [500]}),
    ("GET", "/devices", None),
    ("POST", "/analyze", {"mode": "large", "device": "h200", "execution": "fused", "batch": 2}),
]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _run(base: str, n: int, concurrency: int) -> list[tuple[str, int, float]]:
    results: list[tuple[str, int, float]] = []
    todo = itertools.islice(itertools.cycle(MIX), n)
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=600) as client:
        async def one(method: str, path: str, body: dict[str, Any] | None) -> None:
            async with sem:
                t0 = time.perf_counter()
                r = await client.request(method, path, json=body)
                results.append((path, r.status_code, time.perf_counter() - t0))

        await asyncio.gather(*(one(*req) for req in todo))
    return results


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/service"))
    args = ap.parse_args()
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "dsocr_trace", "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        t0 = time.perf_counter()
        warm = asyncio.run(_run(base, len(MIX), 1))
        warm_s = time.perf_counter() - t0
        rss_before = _rss_kib(server.pid)
        t0 = time.perf_counter()
        res = asyncio.run(_run(base, args.requests, args.concurrency))
        total_s = time.perf_counter() - t0
        rss_after = _rss_kib(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    by_path: dict[str, list[float]] = {}
    for path, _, sec in res:
        by_path.setdefault(path, []).append(sec)
    errors = [(p, c) for p, c, _ in res if c != 200]
    doc = {
        "command": f"python benchmarks/service_load.py --requests {args.requests} --concurrency {args.concurrency}",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "requests": len(res), "concurrency": args.concurrency, "errors": len(errors),
        "error_codes": sorted({c for _, c in errors}), "warm_up_s": round(warm_s, 3),
        "warm_up_errors": sum(1 for _, c, _ in warm if c != 200),
        "total_s": round(total_s, 3), "requests_per_s": round(len(res) / total_s, 2),
        "latency_ms": {"all": {"p50": round(_pct([s for _, _, s in res], 0.5) * 1e3, 2),
                               "p99": round(_pct([s for _, _, s in res], 0.99) * 1e3, 2)},
                       **{p: {"n": len(v), "p50": round(_pct(v, 0.5) * 1e3, 2), "p99": round(_pct(v, 0.99) * 1e3, 2),
                              "mean": round(statistics.fmean(v) * 1e3, 2)} for p, v in sorted(by_path.items())}},
        "server_rss_mib": {"after_warm_up": round(rss_before / 1024, 1), "after_load": round(rss_after / 1024, 1)},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(json.dumps(doc, indent=2, sort_keys=True))
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
