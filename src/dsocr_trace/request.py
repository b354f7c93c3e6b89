"""A whole request: vision + prefill + N decode steps, on one device, under one execution profile.

Decode cost is affine in the KV length for every node (attention and the cache concatenation grow with it;
everything else is fixed), so we trace a few KV lengths, fit each item's device time as a + b*L, and replay
the fitted step at any L instead of tracing N steps.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import numpy as np
from attrs import evolve

from dsocr_trace.analyze import Analysis, implementation_trace, load_model, trace_phase
from dsocr_trace.costs import cost_trace
from dsocr_trace.errors import UserError
from dsocr_trace.hardware.profile import HOST_BAND, HOST_US_PER_CALL_SEEN, Profile, host_scaled, profile_kind
from dsocr_trace.hardware.spec import DeviceSpec
from dsocr_trace.hardware.validated import phase_confidence, point_confidence
from dsocr_trace.memory import kv_per_token_of, logits_bytes_of, memory_needs, memory_plan
from dsocr_trace.plan import (
    EXECUTIONS,
    Item,
    add_item,
    new_totals,
    plan,
    replay_steps,
    run_plan,
    stage_predictions,
)
from dsocr_trace.trace.ir import Trace, self_and_ancestors
from dsocr_trace.workload import MAX_POSITIONS, Workload

SECONDS_PER_DAY = 86_400


def _agg_items(items: list[Item], key: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for it in items:
        k = getattr(it, key) or ("Root" if key == "module_type" else "")
        add_item(out.setdefault(k, new_totals()), it)
    return dict(sorted(out.items()))


def _modules_inclusive(items: list[Item]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for it in items:
        for path in self_and_ancestors(it.module_path):
            a = out.setdefault(path, {"device_s": 0.0, "host_s": 0.0, "kernels": 0})
            a["device_s"] += it.device_s
            a["host_s"] += it.host_s
            a["kernels"] += (it.cost.kernels if it.cost else 1) if it.device_s > 0 else 0
    return dict(sorted(out.items()))


def _node_rows(items: list[Item], result: Any) -> list[dict[str, Any]]:
    rows = []
    for i, it in enumerate(items):
        c, t = it.cost, it.time
        rows.append({
            "id": it.node, "op": it.op, "module_path": it.module_path, "module_type": it.module_type,
            "stage": it.stage, "kind": c.kind if c else "uncosted", "fused_ops": it.fused_from,
            "tc_flops": c.tc_flops if c else 0.0, "cc_flops": c.cc_flops if c else 0.0,
            "bytes": c.bytes if c else 0.0, "device_s": it.device_s, "host_s": it.host_s,
            "start_s": result.start[i], "end_s": result.end[i], "issue_s": result.issue[i],
            "bound": t.bound if t else "uncosted", "efficiency": t.efficiency if t else 0.0,
            "source": t.source if t else "", "sync": it.sync,
        })
    return rows


class DecodeFit:
    """Per-item device time a + b*L over KV length L, from steps traced at a few lengths."""

    def __init__(self, kvs: list[int], plans: list[list[Item]], host: list[float], syncs: list[bool],
                 execution: str = "eager") -> None:
        ops = [tuple(it.op for it in p) for p in plans]
        if len(set(ops)) != 1:
            raise UserError("decode steps at different KV lengths traced different op sequences: cannot fit")
        x = np.array(kvs, dtype=float)
        y = np.array([[it.device_s for it in p] for p in plans])  # (n_kv, n_items)
        design = np.stack([np.ones_like(x), x], axis=1)
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        self.a, self.b = coef[0], coef[1]
        # host work that grows with the sequence (the remote code's n-gram processor) gets its own line; for
        # every other item the slope is 0 and the host time is the traced one
        hy = np.array([[it.host_s for it in p] for p in plans])
        hcoef, *_ = np.linalg.lstsq(design, hy, rcond=None)
        self.host_b = np.where(np.ptp(hy, axis=0) > 0, hcoef[1], 0.0)
        self.kvs = kvs
        self.host = host
        self.syncs = syncs
        self.execution = execution

    def host_scaled(self, factor: float) -> DecodeFit:
        """The same step behind a host `factor` times as slow per call (device times unchanged)."""
        out = copy.copy(self)
        out.host = [h * factor for h in self.host]
        out.host_b = self.host_b * factor
        return out

    def host_times(self, kv: int) -> np.ndarray:
        """Host seconds per item at KV length kv (the first fit point's, plus any growth with the sequence)."""
        return np.maximum(np.asarray(self.host) + self.host_b * (kv - self.kvs[0]), 0.0)

    def device_times(self, kv: int) -> np.ndarray:
        return np.maximum(self.a + self.b * kv, 0.0)

    def step(self, kv: int, profile: Profile) -> Any:
        """The replay of one decode step at KV length kv (plan.replay_steps)."""
        dev = self.device_times(kv)
        seq = [(float(h), float(d), s) for h, d, s in zip(self.host_times(kv), dev, self.syncs, strict=True)]
        return replay_steps(seq, "decode", self.execution, profile)


def fit_decode(analysis: Analysis, spec: DeviceSpec, profile: Profile, execution: str,
               kvs: list[int]) -> DecodeFit:
    lm = load_model(analysis.model_id)
    plans = []
    for kv in kvs:
        tr = trace_phase(lm, analysis.model_id, analysis.workload, "decode", kv_len=kv)
        if analysis.implementation != "native":
            tr = implementation_trace(tr, analysis.implementation, analysis.options)
        plans.append(plan(tr, cost_trace(tr, analysis.options), spec, profile, execution))
    host = [it.host_s for it in plans[0]]
    syncs = [it.sync for it in plans[0]]
    return DecodeFit(kvs, plans, host, syncs, execution)


def fit_points(wl: Workload) -> list[int]:
    """KV lengths (cached positions before the step) the decode step is traced at: the prefill length, the
    model's last position and half way. Fixed per prefill length, so `analyze` and `sweep` fit the same line
    and give the same answer for the same point whatever the output length."""
    first = wl.prefill_tokens
    last = MAX_POSITIONS - 1
    return sorted({first, (first + last) // 2, last}) if last > first + 1 else [first, first + 1]


def request_walls(analysis: Analysis, spec: DeviceSpec, profile: Profile, execution: str
                  ) -> tuple[Any, list[Item], DecodeFit]:
    """The prefill's replay and plan, and the decode step's affine fit: what every request-level answer
    (analyze, sweep, plan) integrates."""
    tr = analysis.traces["prefill"]
    items = plan(tr, analysis.costs["prefill"], spec, profile, execution)
    result, _ = run_plan(items, tr, execution, profile)
    fit = fit_decode(analysis, spec, profile, execution, fit_points(analysis.workload))
    return result, items, fit


def integrate_decode(fit: DecodeFit, first_kv: int, output_tokens: int, profile: Profile
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(KV lengths probed, step walls there, step device times there) over a request's decode, and the step
    walls of every step interpolated from them (wall is piecewise linear in L)."""
    steps = np.arange(first_kv, first_kv + output_tokens)
    probe = np.unique(np.linspace(steps[0], steps[-1], num=min(len(steps), 9)).astype(int))
    walls = np.array([fit.step(int(kv), profile).wall_s for kv in probe])
    devs = np.array([float(fit.device_times(int(kv)).sum()) for kv in probe])
    return probe, walls, devs


def per_step(first_kv: int, output_tokens: int, probe: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values at the probed KV lengths (integrate_decode) interpolated to every step of the decode."""
    return np.interp(np.arange(first_kv, first_kv + output_tokens), probe, values)


def predict_phases(analysis: Analysis, spec: DeviceSpec, profile: Profile, execution: str = "eager",
                   prefill: tuple[Any, list[Item]] | None = None) -> dict[str, Any]:
    """Each traced phase planned and replayed as traced: per stage, node, module and module type, and the
    phase totals. `prefill`: the prefill's (replay, plan) when the caller has them already."""
    if execution not in EXECUTIONS:
        raise UserError(f"unknown execution {execution!r}: use {', '.join(EXECUTIONS)}")
    phases: dict[str, Any] = {}
    out: dict[str, Any] = {"stages": {}, "nodes": {}, "modules": {}, "module_types": {}}
    for phase, tr in analysis.traces.items():
        if phase == "prefill" and prefill is not None:
            result, items = prefill
        else:
            items = plan(tr, analysis.costs[phase], spec, profile, execution)
            result, _ = run_plan(items, tr, execution, profile)
        phases[phase] = result
        out["stages"].update(stage_predictions(items, result))
        out["nodes"][phase] = _node_rows(items, result)
        out["modules"][phase] = _modules_inclusive(items)
        out["module_types"][phase] = _agg_items(items, "module_type")
    out["phases"] = {ph: {"wall_s": r.wall_s, "device_s": r.device_busy_s, "host_s": r.host_s,
                          "host_wait_s": r.host_wait_s, "device_idle_s": r.device_idle_s}
                     for ph, r in phases.items()}
    out["execution"] = execution
    out["profile"] = {"source": profile.source, "label": profile.label, "provenance": profile.provenance(),
                      "launch_s": profile.launch_s, "host_op_s": profile.host_op_s,
                      "host_module_s": profile.host_module_s, "graph_kernel_s": profile.graph_kernel_s}
    out["routing"] = analysis.options.routing.label
    return out


def throughput_of(batch: int, e2e_s: float, spec: DeviceSpec) -> dict[str, Any]:
    """Pages per second and per GPU-day of a request of `batch` pages taking `e2e_s`, and with a price for the GPU
    (--price-per-hour, else its device file) what a page costs: the one place sweep, plan and analyze get them."""
    pages_per_s = batch / e2e_s
    out: dict[str, Any] = {"pages_per_s": pages_per_s, "pages_per_gpu_day": pages_per_s * SECONDS_PER_DAY,
                           "price_per_hour_usd": None, "usd_per_page": None, "usd_per_million_pages": None,
                           "price_source": None}
    price = spec.price_per_hour
    if price is not None:
        per_page = price[0] / 3600.0 / pages_per_s
        out.update(price_per_hour_usd=price[0], usd_per_page=per_page, usd_per_million_pages=per_page * 1e6,
                   price_source=price[1])
    return out


def phase_wall_band(items: list[Item], trace: Trace, execution: str, profile: Profile) -> list[float]:
    """One phase's wall with the host costs at each end of HOST_BAND: its plan replayed with every item's host
    time x f (each is a sum of the profile's host costs, so that equals planning with a host-scaled profile)."""
    return [run_plan([evolve(it, host_s=it.host_s * f) for it in items], trace, execution,
                     host_scaled(profile, f))[0].wall_s for f in HOST_BAND]


def host_band(analysis: Analysis, spec: DeviceSpec, profile: Profile, execution: str,
              walls: tuple[Any, list[Item], DecodeFit] | None = None) -> dict[str, Any]:
    """TTFT, mean step and end-to-end walls with the host costs at either end of HOST_BAND: what the same GPU
    gives behind a faster or a slower host CPU (the kernels stay; host work and its overlap move). Every host
    time of a plan is a sum of the profile's host costs, so scaling them by f scales each item's host time by f:
    the plans of `walls` (request_walls' answer) are replayed with scaled host times, not planned again."""
    wl = analysis.workload
    _, items, fit = walls if walls is not None else request_walls(analysis, spec, profile, execution)
    tr = analysis.traces["prefill"]
    out: dict[str, Any] = {"host_factor": list(HOST_BAND), "ttft_s": phase_wall_band(items, tr, execution, profile),
                           "tpot_mean_s": [], "e2e_s": []}
    for f, ttft in zip(HOST_BAND, out["ttft_s"], strict=True):
        probe, step_at, _ = integrate_decode(fit.host_scaled(f), wl.prefill_tokens, wl.output_tokens,
                                             host_scaled(profile, f))
        step_walls = per_step(wl.prefill_tokens, wl.output_tokens, probe, step_at)
        out["tpot_mean_s"].append(float(step_walls.mean()))
        out["e2e_s"].append(ttft + float(step_walls.sum()))
    lo, hi = HOST_US_PER_CALL_SEEN
    out["why"] = (f"the host CPU decides eager walls: {lo:g} to {hi:g} us per Python-level call on three H200 "
                  f"machines; the band is the prediction with this profile's host costs x {HOST_BAND[0]:.2f} and "
                  f"x {HOST_BAND[1]:.2f}")
    return out


def _memory_inputs(analysis: Analysis, dtype: str) -> tuple[Trace, dict[str, Any], int, int, str, int]:
    wl = analysis.workload
    kv_tok = kv_per_token_of(load_model(analysis.model_id).text_config)
    return (analysis.traces["prefill"], analysis.params, wl.batch, wl.prefill_tokens + wl.output_tokens, dtype,
            kv_tok)


def memory_needs_of(analysis: Analysis, dtype: str = "bf16") -> dict[str, Any]:
    """The request's memory on any GPU (no device needed): weights, KV cache, activation peak, reserve."""
    tr, params, batch, context, dt, kv_tok = _memory_inputs(analysis, dtype)
    return memory_needs(tr, params, batch, context, dt, kv_tok, logits_bytes_of(tr))


def predict_request(analysis: Analysis, spec: DeviceSpec, profile: Profile, execution: str = "eager",
                    weight_dtype: str = "bf16") -> dict[str, Any]:
    """The phases as traced (predict_phases) and the whole request: TTFT, the decode steps integrated over the
    output from the fitted step, throughput, memory."""
    if execution not in EXECUTIONS:
        raise UserError(f"unknown execution {execution!r}: use {', '.join(EXECUTIONS)}")
    wl = analysis.workload
    pre_result, pre_items, fit = request_walls(analysis, spec, profile, execution)
    ph = predict_phases(analysis, spec, profile, execution, (pre_result, pre_items))
    nodes = ph["nodes"]
    probe, walls, devs = integrate_decode(fit, wl.prefill_tokens, wl.output_tokens, profile)
    step_walls = per_step(wl.prefill_tokens, wl.output_tokens, probe, walls)
    device_mean = float(per_step(wl.prefill_tokens, wl.output_tokens, probe, devs).mean())
    ttft = pre_result.wall_s
    decode_total = float(step_walls.sum())
    e2e = ttft + decode_total
    tc = analysis.traces["decode"].meta
    tr, params, batch, context, dt, kv_tok = _memory_inputs(analysis, weight_dtype)
    mem = memory_plan(tr, params, batch, context, dt, kv_tok, spec.capacity_bytes, logits_bytes_of(tr))
    kind = profile_kind(profile.source)
    request = {
        "batch": wl.batch,
        "output_tokens": wl.output_tokens,
        "ttft_s": ttft,
        "tpot_mean_s": float(step_walls.mean()),
        "tpot_first_s": float(step_walls[0]),
        "tpot_last_s": float(step_walls[-1]),
        "decode_device_mean_s": device_mean,
        "decode_s": decode_total,
        "e2e_s": e2e,
        "tokens_per_s": wl.batch * wl.output_tokens / e2e,
        **throughput_of(wl.batch, e2e, spec),
        "decode_host_share": max(0.0, 1.0 - device_mean / float(step_walls.mean())),
        "wall_band": host_band(analysis, spec, profile, execution, (pre_result, pre_items, fit)),
        **dict(zip(("confidence", "confidence_note"),
                   point_confidence(spec.key, kind, execution, wl.batch, wl.prefill_tokens, wl.output_tokens),
                   strict=True)),
    }
    # a stage is as trustworthy as its phase: the decode step at the request's longest KV, the rest prefill
    by_phase = {phase: phase_confidence(spec.key, kind, phase, execution, wl.batch, kv)
                for phase, kv in (("prefill", None), ("decode", wl.prefill_tokens + wl.output_tokens))}
    for name, st in ph["stages"].items():
        st["confidence"], st["confidence_note"] = by_phase["decode" if name == "decode.step" else "prefill"]
    bounds = Counter(r["bound"] for r in nodes["decode"])
    return {
        "device": {"key": spec.key, "name": spec.name, "tc_flops": spec.tc_flops, "cc_flops": spec.cc_flops,
                   "mem_bw": spec.mem_bw, "mem_bytes": spec.mem_bytes, "usable_bytes": spec.usable_bytes,
                   "capacity_bytes": spec.capacity_bytes, "sm_count": spec.sm_count},
        **ph,
        "weight_dtype": weight_dtype,
        "decode_fit": {"kv_points": fit.kvs,
                       "step_device_s_at": {str(int(k)): float(d) for k, d in zip(probe, devs, strict=True)},
                       "step_wall_s_at": {str(int(k)): float(w) for k, w in zip(probe, walls, strict=True)},
                       "traced_kv_len": tc.get("kv_len")},
        "decode_bounds": dict(sorted(bounds.items())),
        "memory": mem,
        "request": request,
    }
