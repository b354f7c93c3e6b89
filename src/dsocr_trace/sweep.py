"""What-if sweep: modes x devices x batch x output tokens x execution, re-costing cached traces.

Each distinct (mode, batch) is traced once (prefill + the decode fit points) and, per execution, its plans are
turned into device-independent arrays once (`vectorized.plan_arrays`); each (trace, device, execution) is then
priced and replayed with numpy (`vectorized.device_times`, `replay_wall(s)`); output-token counts only
integrate the fitted decode step.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from attrs import define, field

from dsocr_trace.analyze import Analysis, load_model, run_analysis, trace_phase
from dsocr_trace.costs import DEFAULT_OPTIONS, cost_trace
from dsocr_trace.errors import UserError
from dsocr_trace.hardware.profile import Profile, default_profile
from dsocr_trace.hardware.spec import DeviceSpec, load_device
from dsocr_trace.plan import plan
from dsocr_trace.request import SECONDS_PER_DAY
from dsocr_trace.vectorized import PlanArrays, PricedArrays, device_times, plan_arrays, replay_wall, replay_walls
from dsocr_trace.workload import MAX_POSITIONS, Workload, make_workload

GRID_POINTS = 17  # KV lengths the decode step is replayed at, prefill length to the last position


@define
class _Plans:
    """One execution's plans of a (mode, batch): the prefill and the decode step at each fit KV length."""

    prefill: PlanArrays
    decode: list[PlanArrays]
    joint: PricedArrays  # prefill then each decode plan, concatenated: priced in one call


@define
class _Shape:
    """What a (model, mode, batch) contributes independently of the device: traces, fit points, plans."""

    wl: Workload
    analysis: Analysis
    kvs: list[int]
    grid: np.ndarray
    plans: dict[str, _Plans] = field(factory=dict)


_SHAPES: dict[tuple[Any, ...], _Shape] = {}  # (model, mode, crops, batch) -> traces and device-free arrays
_COMBOS: dict[tuple[Any, ...], dict[str, Any]] = {}  # (model, mode, crops, batch, device, execution) -> priced


def clear_pricing() -> None:
    """Forget the per-device pricing, keeping traces and their arrays (the next sweep re-costs every combo)."""
    _COMBOS.clear()


def _ints(text: str, what: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{what} {text!r} must be a comma list of whole numbers") from None
    if not vals or min(vals) < 1:
        raise UserError(f"{what} {text!r} must list whole numbers >= 1")
    return vals


def _mode(spec: str) -> tuple[str, str | None]:
    mode, _, crops = spec.partition(":")
    return mode.strip(), (crops.strip() or None)


def _shape(model: str, mode: str, crops: str | None, batch: int) -> _Shape:
    key = (model, mode, crops, batch)
    hit = _SHAPES.get(key)
    if hit is not None:
        return hit
    wl = make_workload(mode, crops=crops, batch=batch, output_tokens=1)
    a = run_analysis(model, wl)
    p = wl.prefill_tokens
    kvs = sorted({p, (p + MAX_POSITIONS) // 2, MAX_POSITIONS - 1})
    grid = np.unique(np.linspace(p, MAX_POSITIONS - 1, GRID_POINTS).astype(int))
    out = _Shape(wl=wl, analysis=a, kvs=kvs, grid=grid)
    _SHAPES[key] = out
    return out


def _plans(sh: _Shape, execution: str, spec: DeviceSpec, prof: Profile) -> _Plans:
    """The execution's plans as arrays; built with whichever device asks first (plan items do not depend on
    the device, only their times do, and those are re-priced per device)."""
    hit = sh.plans.get(execution)
    if hit is not None:
        return hit
    a = sh.analysis
    tr, costs = a.traces["prefill"], a.costs["prefill"]
    prefill = plan_arrays(plan(tr, costs, spec, prof, execution), tr, costs, execution)
    lm = load_model(a.model_id)
    decode = []
    for kv in sh.kvs:  # as request.fit_decode traces them
        dtr = trace_phase(lm, a.model_id, a.workload, "decode", kv_len=kv)
        dcosts = cost_trace(dtr, a.options)
        decode.append(plan_arrays(plan(dtr, dcosts, spec, prof, execution), dtr, dcosts, execution))
    if len({d.ops for d in decode}) != 1:
        raise UserError("decode steps at different KV lengths traced different op sequences: cannot fit")
    parts = [prefill.arrays, *(d.arrays for d in decode)]
    joint = PricedArrays([c for pa in parts for c in pa.costs], [nd for pa in parts for nd in pa.key_nodes])
    out = _Plans(prefill=prefill, decode=decode, joint=joint)
    sh.plans[execution] = out
    return out


def _device(device: str) -> tuple[DeviceSpec, Profile]:
    spec = load_device(device)
    return spec, default_profile(spec)


def _combo(model: str, mode: str, crops: str | None, batch: int, device: str, execution: str,
           loaded: tuple[DeviceSpec, Profile] | None = None) -> dict[str, Any]:
    """Prefill wall and decode step walls on the KV grid of one (mode, batch, device, execution); `loaded` is
    the device's (spec, profile) when the caller has read them already."""
    key = (model, mode, crops, batch, device, execution)
    hit = _COMBOS.get(key)
    if hit is not None:
        return hit
    sh = _shape(model, mode, crops, batch)
    spec, prof = loaded if loaded is not None else _device(device)
    pl = _plans(sh, execution, spec, prof)
    times = device_times(pl.joint, spec, prof)
    n_pre = pl.prefill.arrays.n
    # prefill: never a CUDA graph, no forced stop check (plan.run_plan)
    ttft = replay_wall(pl.prefill.hosts.host(prof), times[:n_pre], pl.prefill.sync)
    # decode: per-item affine fit a + b*L over the traced KV lengths (request.DecodeFit), replayed on the grid
    y = times[n_pre:].reshape(len(sh.kvs), -1)
    x = np.array(sh.kvs, dtype=float)
    coef, *_ = np.linalg.lstsq(np.stack([np.ones_like(x), x], axis=1), y, rcond=None)
    step_dev = np.maximum(coef[0][None, :] + coef[1][None, :] * sh.grid[:, None], 0.0)
    first = pl.decode[0]
    sync = first.sync.copy()
    if sync.size:
        sync[-1] = True  # the generation loop's stop check ends every step
    walls = replay_walls(first.hosts.host(prof), step_dev, sync, execution == "fused",
                         prof.graph_launch_s, prof.graph_kernel_s)
    out = {"wl": sh.wl, "ttft_s": ttft, "grid": sh.grid, "walls": walls, "spec": spec}
    _COMBOS[key] = out
    return out


def run_sweep(model: str, modes: str, devices: str, batch: str, output_tokens: str,
              execution: str = "eager",
              loaded: Mapping[str, tuple[DeviceSpec, Profile]] | None = None) -> list[dict[str, Any]]:
    """One row per point. `loaded`: device labels already resolved to (spec, profile), e.g. a catalog GPU with
    a calibrated profile file under its own label; other labels are loaded as catalog keys or device files."""
    mode_list = [_mode(m) for m in modes.split(",") if m.strip()]
    dev_list = [d.strip() for d in devices.split(",") if d.strip()]
    ex_list = [e.strip() for e in execution.split(",") if e.strip()]
    if not mode_list or not dev_list:
        raise UserError("--modes and --devices must each list at least one entry")
    for e in ex_list:
        if e not in ("eager", "fused"):
            raise UserError(f"unknown execution {e!r}: use eager and/or fused")
    batches, tokens = _ints(batch, "--batch"), _ints(output_tokens, "--output-tokens")
    given = loaded or {}
    devs = {d: given[d] if d in given else _device(d) for d in dev_list}  # each device file read once per sweep
    rows = []
    for mode, crops in mode_list:
        for b in batches:
            for dev in dev_list:
                for ex in ex_list:
                    c = _combo(model, mode, crops, b, dev, ex, devs[dev])
                    wl = c["wl"]
                    for n in tokens:
                        rows.append(point(c, wl, dev, ex, n) | provenance(devs[dev][1]))
    return rows


# -- provenance (issue 9): every row names the profile that priced it and the MoE routing the trace assumed --


def routing_label(options: Any) -> str:
    """The routing the cost options assume, as the report names it: 'uniform', 'skew:S' (or a Routing's own
    label where the options carry one)."""
    routing = getattr(options, "routing", None)
    if routing is not None:
        return str(routing.label)
    skew = float(getattr(options, "moe_skew", 0.0))
    return "uniform" if skew == 0 else f"skew:{skew:g}"


def provenance(prof: Profile) -> dict[str, str]:
    # the sweep traces with the default cost options
    return {"profile": prof.source, "routing": routing_label(DEFAULT_OPTIONS)}


def point(c: dict[str, Any], wl: Any, device: str, execution: str, n: int) -> dict[str, Any]:
    if wl.prefill_tokens + n > MAX_POSITIONS:
        raise UserError(f"{wl.label}: {wl.prefill_tokens} prefill + {n} output tokens exceed {MAX_POSITIONS} positions")
    steps = np.arange(wl.prefill_tokens, wl.prefill_tokens + n)
    step_walls = np.interp(steps, c["grid"], c["walls"])
    decode = float(step_walls.sum())
    e2e = c["ttft_s"] + decode
    return {
        "mode": wl.label, "device": device, "execution": execution, "batch": wl.batch, "output_tokens": n,
        "vision_tokens": wl.vision_tokens, "prefill_tokens": wl.prefill_tokens, "ttft_s": c["ttft_s"],
        "tpot_mean_s": float(step_walls.mean()), "tpot_last_s": float(step_walls[-1]), "e2e_s": e2e,
        "tokens_per_s": wl.batch * n / e2e, "pages_per_s": wl.batch / e2e,
        "pages_per_gpu_day": wl.batch / e2e * SECONDS_PER_DAY,
    }


def write_sweep(rows: list[dict[str, Any]], path: Path, suffix: str) -> None:
    if suffix == ".json":
        path.write_bytes(orjson.dumps(rows, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))
        return
    units = {"ttft_s": "ttft [s]", "tpot_mean_s": "tpot_mean [s]", "tpot_last_s": "tpot_last [s]",
             "e2e_s": "e2e [s]", "tokens_per_s": "tokens [1/s]", "pages_per_s": "pages [1/s]",
             "pages_per_gpu_day": "pages [1/GPU-day]"}
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        keys = list(rows[0]) if rows else []
        w.writerow([units.get(k, k) for k in keys])
        for r in rows:
            w.writerow([r[k] for k in keys])
