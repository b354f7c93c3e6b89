"""Shared fixtures: the meta model and traces are built once per test session (a few seconds)."""

from __future__ import annotations

import os
import tempfile

import pytest

# the disk cache of traces lives in a folder of this test session (subprocess CLI tests inherit it), never in the
# user's ~/.cache
os.environ["DSOCR_TRACE_CACHE"] = tempfile.mkdtemp(prefix="dsocr-trace-test-cache-")

from dsocr_trace.analyze import Analysis, load_model, run_analysis
from dsocr_trace.models.source import DEFAULT_MODEL
from dsocr_trace.workload import make_workload


@pytest.fixture(scope="session")
def loaded():  # type: ignore[no-untyped-def]
    return load_model(DEFAULT_MODEL)


@pytest.fixture(scope="session")
def base_analysis() -> Analysis:
    return run_analysis(DEFAULT_MODEL, make_workload("base"))


@pytest.fixture(scope="session")
def gundam_analysis() -> Analysis:
    return run_analysis(DEFAULT_MODEL, make_workload("gundam", crops="2x3", output_tokens=200))


@pytest.fixture(scope="session")
def h100_report(base_analysis: Analysis) -> dict:
    """A base-mode report with eager predictions on the catalog H100 (packaged calibrated profile)."""
    from dsocr_trace.hardware.profile import packaged_profile
    from dsocr_trace.hardware.spec import load_device
    from dsocr_trace.report.build import build_report
    from dsocr_trace.request import predict_request

    spec = load_device("h100")
    return build_report(base_analysis, predict_request(base_analysis, spec, packaged_profile(spec)))


@pytest.fixture(scope="session")
def counts_report(base_analysis: Analysis) -> dict:
    """The same workload without a device: counts only."""
    from dsocr_trace.report.build import build_report

    return build_report(base_analysis)
