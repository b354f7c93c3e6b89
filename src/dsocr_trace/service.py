"""The planning service: `dsocr-trace serve` exposes analyze, sweep, plan and the device catalog over HTTP/JSON.

Contracts are pydantic models defined once here; the OpenAPI description (specs/openapi.json) is generated from
them (`dsocr-trace serve --openapi PATH`). Endpoints are plain `def`s, so FastAPI runs them on its worker threads:
a slow sweep does not block a catalog lookup. Traced graphs are shared between requests through the process and
disk caches of dsocr_trace.analyze; tracing itself is serialized (one meta model per process). Limits answer 4xx
with what to change: batch, points per sweep, body size.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from dsocr_trace import __version__
from dsocr_trace.errors import UserError

MAX_BATCH = 256
MAX_POINTS = 2000  # sweep rows per request
MAX_BODY_BYTES = 64 * 1024
Execution = Literal["eager", "graph", "fused", "compiled"]
Dtype = Literal["bf16", "fp16", "fp8"]

# One request prices at a time per process: tracing drives torch's dispatch stack on one meta model, and the
# process-wide memos it fills (traces, costs, kernel times, decode fits) are plain dicts, not thread-safe.
# Parallelism comes from processes: `dsocr-trace serve --workers N`.
_TRACE_LOCK = threading.Lock()
Implementation = Literal["native", "remote", "remote-flash"]
# no histogram:FILE over HTTP: a client must not make the server read its files
ROUTING_FIELD: Any = Field(None, pattern=r"^(uniform|skew:[0-9]+(\.[0-9]+)?)$",
                           description="MoE routing: uniform or skew:S")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnalyzeRequest(_Strict):
    mode: str = Field("base", description="tiny, small, base, large or gundam", examples=["base"])
    crops: str | None = Field(None, description="Gundam tile grid WxH, e.g. 2x3")
    batch: int = Field(1, ge=1, le=MAX_BATCH)
    prompt_tokens: int | None = Field(None, ge=0, le=4096)
    output_tokens: int = Field(500, ge=1, le=8000)
    device: str | None = Field(None, description="catalog key (GET /devices); none: counts only",
                               examples=["h100"])
    execution: Execution = "eager"
    implementation: Implementation = "native"
    weight_dtype: Dtype = "bf16"
    routing: str | None = ROUTING_FIELD


class StageSummary(BaseModel):
    stage: str
    tc_flops: float
    cc_flops: float
    bytes: float
    ops: int
    kernels: int
    device_ms: float | None = None
    host_ms: float | None = None
    wall_ms: float | None = None
    bound: str | None = None
    confidence: str | None = Field(None, description="validated, modelled, extrapolated, transferred or datasheet: "
                                                     "the stage's phase against what was measured on this GPU")


class RequestSummary(BaseModel):
    ttft_ms: float
    tpot_mean_ms: float
    e2e_ms: float
    tokens_per_s: float
    pages_per_s: float
    usd_per_million_pages: float | None
    memory_total_gib: float
    fits: bool
    profile: str = Field(description="calibrated, transferred or datasheet: how far to trust the times")
    confidence: str | None = Field(None, description="validated, modelled, extrapolated, transferred or "
                                                     "datasheet: the weaker of the prefill's and the decode's")
    confidence_note: str | None = None


class AnalyzeSummary(BaseModel):
    model: str
    workload: str
    vision_tokens: int
    prefill_tokens: int
    device: str | None
    execution: str | None
    stages: list[StageSummary]
    request: RequestSummary | None
    warnings: list[str]


class SweepRequest(_Strict):
    modes: list[str] = Field(["base"], min_length=1, max_length=16)
    devices: list[str] = Field(["h100"], min_length=1, max_length=16)
    batches: list[int] = Field([1], min_length=1, max_length=32)
    output_tokens: list[int] = Field([500], min_length=1, max_length=16)
    executions: list[Execution] = Field(["eager"], min_length=1, max_length=4)
    implementation: Implementation = "native"
    weight_dtype: Dtype = "bf16"
    prompt_tokens: int | None = Field(None, ge=0, le=4096)
    routing: str | None = ROUTING_FIELD


class SweepRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    mode: str
    device: str
    execution: str
    batch: int
    output_tokens: int
    ttft_s: float
    tpot_mean_s: float
    e2e_s: float
    pages_per_s: float
    fits: bool


class SweepAnswer(BaseModel):
    rows: list[SweepRow]


class PlanRequest(_Strict):
    mode: str = "base"
    devices: list[str] = Field(["h100"], min_length=1, max_length=16)
    output_tokens: int = Field(500, ge=1, le=8000)
    ttft_ms: float | None = Field(None, gt=0)
    tpot_ms: float | None = Field(None, gt=0)
    executions: list[Execution] = Field(["eager"], min_length=1, max_length=4)
    implementation: Implementation = "native"
    max_batch: int = Field(64, ge=1, le=MAX_BATCH)
    weight_dtype: Dtype = "bf16"
    prompt_tokens: int | None = Field(None, ge=0, le=4096)
    routing: str | None = ROUTING_FIELD
    rank: Literal["measured", "throughput", "cost"] = Field(
        "measured", description="measured: executions measured on a GPU before modelled ones, then pages; "
                                "throughput: pages only; cost: measured first, then USD per page")


class PlanAnswer(BaseModel):
    targets: str
    best: SweepRow | None
    rows: list[SweepRow]


class Device(BaseModel):
    key: str
    name: str
    tc_tflops: float
    mem_bw_gbs: float
    mem_gib: float
    profile: str


class Problem(BaseModel):
    error: str


def _summary(r: Any) -> AnalyzeSummary:
    rep = r.report
    wl = rep["workload"]
    req = None
    p = r.prediction
    if p is not None:
        from dsocr_trace.hardware.profile import profile_kind

        req = RequestSummary(ttft_ms=p.request.ttft_s * 1e3, tpot_mean_ms=p.request.tpot_mean_s * 1e3,
                             e2e_ms=p.request.e2e_s * 1e3, tokens_per_s=p.request.tokens_per_s,
                             pages_per_s=p.request.pages_per_s, usd_per_million_pages=p.request.usd_per_million_pages,
                             memory_total_gib=p.memory.total_bytes / 2**30, fits=p.memory.fits,
                             profile=profile_kind(p.target.profile.source), confidence=p.request.confidence,
                             confidence_note=p.request.confidence_note)
    return AnalyzeSummary(model=rep["model"]["id"], workload=str(wl.get("label") or wl.get("mode")),
                          vision_tokens=int(wl["vision_tokens"]), prefill_tokens=int(wl["prefill_tokens"]),
                          device=None if p is None else p.target.spec.key,
                          execution=None if p is None else p.target.execution,
                          stages=[StageSummary(**row) for row in r.stage_rows()], request=req, warnings=r.warnings)


def create_app() -> FastAPI:
    """The ASGI app (uvicorn serves it; tests start it on a free port)."""
    from dsocr_trace import api

    app = FastAPI(title="dsocr-trace", version=__version__,
                  description="What DeepSeek-OCR costs per stage and request on a GPU, from a meta-device trace: "
                              "analyze one request, sweep a grid, plan the batch that meets latency targets.")

    @app.middleware("http")
    async def body_limit(request: Request, call_next: Any) -> Any:
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_BODY_BYTES):
            return JSONResponse({"error": f"request body over {MAX_BODY_BYTES} bytes: send a smaller request"},
                                status_code=413)
        return await call_next(request)

    @app.exception_handler(UserError)
    async def user_error(_request: Request, exc: UserError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=422)

    errors: dict[int | str, dict[str, Any]] = {422: {"model": Problem, "description": "bad input: what to change"}}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @functools.cache
    def catalog() -> list[Device]:  # the catalog and its profiles do not change while the server runs
        return [Device(key=d.key, name=d.name, tc_tflops=d.tc_flops / 1e12, mem_bw_gbs=d.mem_bw / 1e9,
                       mem_gib=d.mem_bytes / 2**30, profile=d.profile) for d in api.devices()]

    @app.get("/devices", response_model=list[Device])
    def devices() -> list[Device]:
        return catalog()

    @app.post("/analyze", response_model=AnalyzeSummary, responses=errors)
    def analyze(body: AnalyzeRequest) -> AnalyzeSummary:
        with _TRACE_LOCK:
            r = api.analyze(body.mode, crops=body.crops, batch=body.batch, prompt_tokens=body.prompt_tokens,
                            output_tokens=body.output_tokens, device=body.device, execution=body.execution,
                            weight_dtype=body.weight_dtype, routing=body.routing,
                            implementation=body.implementation)
        return _summary(r)

    @app.post("/sweep", response_model=SweepAnswer, responses=errors)
    def sweep(body: SweepRequest) -> SweepAnswer:
        n = len(body.modes) * len(body.devices) * len(body.batches) * len(body.output_tokens) * len(body.executions)
        if n > MAX_POINTS:
            raise UserError(f"{n} sweep points requested, at most {MAX_POINTS} per request: split the sweep")
        if max(body.batches) > MAX_BATCH or min(body.batches) < 1:
            raise UserError(f"batches must lie in 1..{MAX_BATCH}")
        with _TRACE_LOCK:
            r = api.sweep(body.modes, body.devices, batches=body.batches, output_tokens=body.output_tokens,
                          executions=list(body.executions), weight_dtype=body.weight_dtype,
                          implementation=body.implementation, prompt_tokens=body.prompt_tokens,
                          routing=body.routing)
        return SweepAnswer(rows=[SweepRow(**row) for row in r.rows])

    @app.post("/plan", response_model=PlanAnswer, responses=errors)
    def plan(body: PlanRequest) -> PlanAnswer:
        with _TRACE_LOCK:
            r = api.plan(body.mode, devices=body.devices, output_tokens=body.output_tokens, ttft_ms=body.ttft_ms,
                         tpot_ms=body.tpot_ms, executions=list(body.executions), max_batch=body.max_batch,
                         weight_dtype=body.weight_dtype, implementation=body.implementation,
                         prompt_tokens=body.prompt_tokens, routing=body.routing, rank=body.rank)
        best = r.best
        return PlanAnswer(targets=r.targets, best=None if best is None else SweepRow(**best),
                          rows=[SweepRow(**row) for row in r.rows])

    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI description generated from the contracts above (committed as specs/openapi.json)."""
    return create_app().openapi()
