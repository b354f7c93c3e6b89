"""What-if sweep: modes x devices x batch x output tokens x execution, re-costing cached traces.

Each distinct (mode, batch) is traced once (prefill + the decode fit points); each (trace, device, execution)
is costed and replayed once; output-token counts then only integrate the fitted decode step.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from dsocr_trace.analyze import run_analysis
from dsocr_trace.errors import UserError
from dsocr_trace.hardware.profile import default_profile
from dsocr_trace.hardware.spec import load_device
from dsocr_trace.plan import plan, run_plan
from dsocr_trace.request import SECONDS_PER_DAY, fit_decode
from dsocr_trace.workload import MAX_POSITIONS, make_workload

_COMBOS: dict[tuple[Any, ...], dict[str, Any]] = {}


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


def _combo(model: str, mode: str, crops: str | None, batch: int, device: str, execution: str) -> dict[str, Any]:
    key = (model, mode, crops, batch, device, execution)
    hit = _COMBOS.get(key)
    if hit is not None:
        return hit
    wl = make_workload(mode, crops=crops, batch=batch, output_tokens=1)
    a = run_analysis(model, wl)
    spec = load_device(device)
    prof = default_profile(spec)
    items = plan(a.traces["prefill"], a.costs["prefill"], spec, prof, execution)
    prefill, _ = run_plan(items, a.traces["prefill"], execution, prof)
    p = wl.prefill_tokens
    kvs = sorted({p, (p + MAX_POSITIONS) // 2, MAX_POSITIONS - 1})
    fit = fit_decode(a, spec, prof, execution, kvs)
    grid = np.unique(np.linspace(p, MAX_POSITIONS - 1, 17).astype(int))
    walls = np.array([fit.step(int(kv), execution == "fused", prof).wall_s for kv in grid])
    out = {"wl": wl, "ttft_s": prefill.wall_s, "grid": grid, "walls": walls, "spec": spec}
    _COMBOS[key] = out
    return out


def run_sweep(model: str, modes: str, devices: str, batch: str, output_tokens: str,
              execution: str = "eager") -> list[dict[str, Any]]:
    mode_list = [_mode(m) for m in modes.split(",") if m.strip()]
    dev_list = [d.strip() for d in devices.split(",") if d.strip()]
    ex_list = [e.strip() for e in execution.split(",") if e.strip()]
    if not mode_list or not dev_list:
        raise UserError("--modes and --devices must each list at least one entry")
    for e in ex_list:
        if e not in ("eager", "fused"):
            raise UserError(f"unknown execution {e!r}: use eager and/or fused")
    batches, tokens = _ints(batch, "--batch"), _ints(output_tokens, "--output-tokens")
    rows = []
    for mode, crops in mode_list:
        for b in batches:
            for dev in dev_list:
                for ex in ex_list:
                    c = _combo(model, mode, crops, b, dev, ex)
                    wl = c["wl"]
                    for n in tokens:
                        rows.append(point(c, wl, dev, ex, n))
    return rows


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
