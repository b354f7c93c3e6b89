"""Helpers every command body shares: warnings on stderr, device and host resolution, output checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dsocr_trace.errors import UserError
from dsocr_trace.report.output import check_target


def _si(x: float) -> tuple[float, str]:
    """x in the largest SI prefix (k to T) it reaches: (value, prefix)."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return x / scale, prefix
    return x, ""


def _fmt(x: float, unit: str) -> str:
    v, prefix = _si(x)
    return f"{v:,.2f} {prefix}{unit}" if prefix else f"{x:,.0f} {unit}"


def _short(x: float, unit: str) -> str:
    """A quantity in at most ~6 characters, for narrow tables: 976.4G -> '976G', 11.2e9 -> '11.2G'."""
    v, prefix = _si(x)
    if not prefix:
        return f"{x:.0f}{unit}"
    return f"{v:.0f}{prefix}{unit}" if abs(v) >= 100 else f"{v:.3g}{prefix}{unit}"


def warn(message: str) -> None:
    """One warning line on stderr (stdout stays clean for --json)."""
    import sys

    print(f"warning: {message}", file=sys.stderr)


GIB = 2**30

def resolve_device(device: str | None, device_file: Path | None, profile: Path | None,
                   notes: list[str] | None = None) -> tuple[Any, Any] | None:
    """(spec, profile) for --device / --device-file / --profile, or None without a device (prediction.py)."""
    from dsocr_trace.prediction import resolve_hardware

    return resolve_hardware(device, device_file, profile, notes)


HOST_US_RANGE = (0.5, 1000.0)  # per Python-level torch call: a fast desktop ~5 us, a loaded server ~50


def with_host(profile: Any, host_us: float, notes: list[str]) -> Any:
    """The profile driven by a host that spends `host_us` per Python-level torch call (what `calibrate`'s host
    probe measures as host_op_s): every host cost scaled by the same factor."""
    import math

    from dsocr_trace.hardware.profile import host_scaled

    lo, hi = HOST_US_RANGE
    if not (math.isfinite(host_us) and lo <= host_us <= hi):
        raise UserError(f"--host-us-per-call {host_us} is outside {lo:g}..{hi:g} us: give the host cost per "
                        "Python-level torch call of the machine that drives the GPU (calibrate's host_op_s)")
    factor = host_us * 1e-6 / profile.host_op_s
    notes.append(f"host: {host_us:g} us per Python-level call (--host-us-per-call), the profile's host "
                 f"{profile.host_op_s * 1e6:.1f} us: every host cost x {factor:.2f}")
    return host_scaled(profile, factor)


def check_html_target(html: Path, force: bool, *others: Path | None) -> None:
    if html.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--html {str(html)!r} should end in .html")
    if any(o is not None and html.resolve() == o.resolve() for o in others):
        raise UserError(f"--html {str(html)!r} names another output too: give it its own path")
    check_target(html, force, "HTML file")


def _load_json(path: Path, what: str) -> Any:
    from dsocr_trace.validate.inputs import read_json

    return read_json(path, what)


def orjson_dumps(doc: Any) -> bytes:
    import orjson

    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) + b"\n"
