"""Shared fixtures: the meta model and traces are built once per test session (a few seconds)."""

from __future__ import annotations

import pytest

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
