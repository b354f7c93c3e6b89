"""Predicted time of one training step: the training trace goes through the same latency path as a prefill
(`plan.plan` -> `plan.run_plan` -> `plan.stage_predictions`), then its items are summed per pass.

Host time follows the eager plan's rule (one host cost per Python-level call). The backward pass runs no
Python: its ops are issued by the autograd engine, and each autograd node's ops count as one call, which
overstates the host side of a backward pass (C++ dispatch is cheaper than a Python call); device time does not
depend on it.
"""

from __future__ import annotations

from typing import Any

from dsocr_trace.hardware.profile import Profile, profile_kind
from dsocr_trace.hardware.spec import DeviceSpec
from dsocr_trace.hardware.validated import phase_confidence
from dsocr_trace.plan import Item, add_item, new_totals, plan, run_plan, stage_predictions
from dsocr_trace.trace.ir import PASSES, self_and_ancestors
from dsocr_trace.train.analysis import TrainAnalysis


def _by_pass(items: list[Item], pass_of: dict[int, str]) -> dict[str, dict[str, Any]]:
    out = {p: new_totals() for p in PASSES}
    for it in items:
        add_item(out[pass_of[it.node]], it)
    return out


def predict_train(ta: TrainAnalysis, spec: DeviceSpec, profile: Profile, execution: str = "eager") -> dict[str, Any]:
    tr = ta.trace
    items = plan(tr, ta.costs, spec, profile, execution)
    result, _ = run_plan(items, tr, execution, profile)
    pass_of = {n.id: n.pass_kind for n in tr.nodes}
    stages = stage_predictions(items, result)
    for name in stages:
        stages[name]["passes"] = _by_pass([it for it in items if it.stage == name], pass_of)
    modules: dict[str, dict[str, Any]] = {}
    types: dict[str, dict[str, Any]] = {}
    for it in items:
        p = pass_of[it.node]
        for path in self_and_ancestors(it.module_path):
            m = modules.setdefault(path, {q: {"device_s": 0.0, "kernels": 0} for q in PASSES})
            m[p]["device_s"] += it.device_s
            m[p]["kernels"] += (it.cost.kernels if it.cost else 1) if it.device_s > 0 else 0
        add_item(types.setdefault(it.module_type or "Root", {q: new_totals() for q in PASSES})[p], it)
    level, why = phase_confidence(spec.key, profile_kind(profile.source), "train", execution, ta.workload.batch)
    return {
        "device": {"key": spec.key, "name": spec.name, "mem_bytes": spec.mem_bytes},
        "profile": {"source": profile.source, "launch_s": profile.launch_s, "host_op_s": profile.host_op_s},
        "execution": execution,
        "confidence": level,
        "confidence_note": why,
        "step": {"wall_s": result.wall_s, "device_s": result.device_busy_s, "host_s": result.host_s,
                 "host_wait_s": result.host_wait_s, "device_idle_s": result.device_idle_s},
        "passes": _by_pass(items, pass_of),
        "stages": dict(sorted(stages.items())),
        "modules": dict(sorted(modules.items())),
        "module_types": dict(sorted(types.items())),
    }
