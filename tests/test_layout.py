"""The package's layout, checked from its imports (every one, including those inside functions): data flows one
way, so the top-level units (sub-packages and modules of dsocr_trace) import each other without a cycle, the
counting half knows nothing of devices, predictions or outputs, hardware/ is plain data, and only the commands
drive the GPU measurement library."""

from __future__ import annotations

import ast
import graphlib
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "dsocr_trace"
COUNTING = ("models", "workload", "trace", "costs", "graph", "errors", "cache")
ABOVE_COUNTING = ("hardware", "kernels", "predict", "plan", "request", "prediction", "memory", "train", "report",
                  "validate", "commands", "cli", "api", "service", "sweep", "planner", "capacity", "analyze")


def unit_imports() -> dict[str, dict[str, list[str]]]:
    """{unit: {imported unit: [file:line, ...]}} over every import statement of the package."""
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for f in sorted(SRC.rglob("*.py")):
        rel = f.relative_to(SRC)
        unit = rel.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods = [node.module]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            else:
                continue
            for m in mods:
                parts = m.split(".")
                if parts[0] == "dsocr_trace" and len(parts) > 1 and parts[1] != unit:
                    out[unit][parts[1]].append(f"{rel}:{node.lineno}")
    return out


def test_no_import_cycle_between_units() -> None:
    graph = unit_imports()
    graphlib.TopologicalSorter({u: set(d) for u, d in graph.items()}).prepare()  # raises CycleError on a cycle


def test_the_counting_half_knows_no_device_prediction_or_output() -> None:
    graph = unit_imports()
    bad = {(u, v): graph[u][v] for u in COUNTING for v in graph.get(u, {}) if v in ABOVE_COUNTING}
    assert not bad, bad


def test_hardware_is_data() -> None:
    # specs, profiles and the catalog: read and checked there, models fitted elsewhere (kernels.model.perf_model)
    assert set(unit_imports()["hardware"]) <= {"costs", "errors"}


def test_only_commands_drive_the_measurement_library() -> None:
    graph = unit_imports()
    users = sorted(u for u, deps in graph.items() if "validate" in deps)
    assert users == ["commands"], users


def test_writers_sit_at_the_end() -> None:
    graph = unit_imports()
    readers_of_report = {u for u, deps in graph.items() if "report" in deps}
    # the report is read by the commands, the API and the sweep and plan front ends that print tables; never by
    # the prediction wing or the model below it
    assert not readers_of_report & {"plan", "predict", "request", "prediction", "kernels", "costs", "trace",
                                    "hardware", "memory", "train", "analyze"}, readers_of_report
