"""Where a profile's numbers come from, in one place: calibrated on a card, transferred from one, or datasheet only.

Everything that shows a user which profile produced a number (console summary, report, diff and compare
headers) goes through `profile_provenance` (a Profile at hand) or `provenance_of_report` (a report.json's
predictions), so what counts as calibrated is decided here once.
"""

from __future__ import annotations

from typing import Any

from dsocr_trace.hardware.profile import Profile

CALIBRATED, TRANSFERRED, DATASHEET = "calibrated", "transferred", "datasheet"


def kind_of_source(source: str) -> str:
    """calibrated | transferred | datasheet, from a profile's `source` string."""
    if "transferred" in source:
        return TRANSFERRED
    return CALIBRATED if source.startswith("calibrated") else DATASHEET


def _describe(kind: str, source: str, gpu: str | None, date: str | None) -> str:
    if kind == DATASHEET:
        return "datasheet only (spec-default profile: not measured on this GPU)"
    on = f" on {gpu}" if gpu else ""
    when = f", {date[:10]}" if date else ""
    if kind == TRANSFERRED:
        return f"calibrated{on}{when}, carried to this GPU by the cross-GPU model ({source})"
    return f"calibrated{on}{when} ({source})"


def profile_provenance(profile: Profile) -> dict[str, Any]:
    """{kind, source, gpu, date, calibrated, text, ...} for a profile object (Profile.provenance)."""
    return profile.provenance()


def provenance_of_report(report: dict[str, Any]) -> dict[str, Any] | None:
    """The same for a report.json (None without predictions); older reports hold only the source string."""
    prof = (report.get("predictions") or {}).get("profile") or {}
    if not isinstance(prof, dict) or not isinstance(prof.get("source"), str):
        return None
    stored = prof.get("provenance")
    if isinstance(stored, dict) and isinstance(stored.get("text"), str) and stored.get("kind") in (
            CALIBRATED, TRANSFERRED, DATASHEET):
        return stored
    kind = kind_of_source(prof["source"])
    return {"kind": kind, "source": prof["source"], "gpu": None, "date": None, "calibrated": kind != DATASHEET,
            "text": _describe(kind, prof["source"], None, None)}
