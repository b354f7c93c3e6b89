"""`dsocr-trace serve`: the planning service (FastAPI + uvicorn), or its OpenAPI description."""

from __future__ import annotations

from pathlib import Path

from dsocr_trace.errors import UserError


def serve_command(host: str, port: int, workers: int, openapi: Path | None, force: bool = False) -> None:
    """Serve the planning service with uvicorn, or write its OpenAPI description."""
    if openapi is not None:
        import orjson

        from dsocr_trace.report.output import atomic_file
        from dsocr_trace.service import openapi_document

        with atomic_file(openapi, force, "OpenAPI file") as tmp:
            tmp.write_bytes(orjson.dumps(openapi_document(), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
                            + b"\n")
        return
    import uvicorn

    try:
        uvicorn.run("dsocr_trace.service:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level="info")
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): pick another --port") from None
