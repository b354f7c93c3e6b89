"""What-if sweep: modes x devices x batch x output tokens x execution.

Every point is priced by the same code as `analyze` (request.request_walls: the plan of each phase through
predict.kernel_time, the decode step's affine fit, the two-lane replay) with the same profile resolution
(commands.common.resolve_device: the packaged calibration of a catalog GPU, else its datasheet), so a sweep row and an
analyze report of the same point agree. Each distinct (mode, batch) is traced once; each (trace, device,
execution) is priced once; output-token counts only integrate the fitted decode step. Every row names the
profile and the routing that priced it.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from dsocr_trace.analyze import run_analysis
from dsocr_trace.costs import CostOptions
from dsocr_trace.costs.routing import Routing
from dsocr_trace.errors import UserError
from dsocr_trace.hardware.profile import Profile, packaged_profile, profile_kind
from dsocr_trace.hardware.spec import DeviceSpec, load_device
from dsocr_trace.hardware.validated import point_confidence
from dsocr_trace.plan import EXECUTIONS
from dsocr_trace.request import integrate_decode, per_step, request_walls, throughput_of
from dsocr_trace.trace.remote import check_implementation
from dsocr_trace.workload import DEFAULT_PROMPT_TOKENS, MAX_POSITIONS, make_workload

MAX_SWEEP_POINTS = 50_000  # rows per sweep: beyond it a sweep is refused, not left running for hours
_COMBOS: dict[tuple[Any, ...], dict[str, Any]] = {}  # (model, mode, crops, batch, device, execution) -> priced


def clear_pricing() -> None:
    """Forget the per-device pricing (traces stay cached in analyze)."""
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


def _device(device: str) -> tuple[DeviceSpec, Profile]:
    spec = load_device(device)
    return spec, packaged_profile(spec)


def _combo(model: str, mode: str, crops: str | None, batch: int, device: str, execution: str,
           loaded: tuple[DeviceSpec, Profile] | None = None, routing: Routing | None = None,
           implementation: str = "native", prompt_tokens: int = DEFAULT_PROMPT_TOKENS) -> dict[str, Any]:
    """The prefill wall and the fitted decode step of one (mode, batch, device, execution, implementation)."""
    routing = routing or Routing()
    prof_key = None if loaded is None else loaded[1].source
    key = (model, mode, crops, batch, device, execution, routing, implementation, prompt_tokens, prof_key)
    hit = _COMBOS.get(key)
    if hit is not None:
        return hit
    spec, prof = loaded if loaded is not None else _device(device)
    wl = make_workload(mode, crops=crops, batch=batch, output_tokens=1, prompt_tokens=prompt_tokens)
    a = run_analysis(model, wl, opts=CostOptions(routing=routing), implementation=implementation)
    result, _, fit = request_walls(a, spec, prof, execution)
    wl = a.workload  # a generic model's own image-token count replaces the DeepSeek arithmetic
    out = {"wl": wl, "ttft_s": result.wall_s, "fit": fit, "spec": spec, "profile": prof, "routing": routing,
           "implementation": implementation}
    _COMBOS[key] = out
    return out


def run_sweep(model: str, modes: str, devices: str, batch: str, output_tokens: str,
              execution: str = "eager", routing: Routing | None = None,
              loaded: Mapping[str, tuple[DeviceSpec, Profile]] | None = None,
              progress: Callable[[int, int, str], None] | None = None,
              implementation: str = "native", prompt_tokens: int = DEFAULT_PROMPT_TOKENS) -> list[dict[str, Any]]:
    """One row per point; `progress(done, total, what)` before each (mode, batch, device, execution) is priced.
    `loaded`: device labels already resolved to (spec, profile), e.g. a catalog GPU with
    a calibrated profile file under its own label; other labels are loaded as catalog keys or device files."""
    # a repeated entry is one point, not a duplicate row
    mode_list = list(dict.fromkeys(_mode(m) for m in modes.split(",") if m.strip()))
    dev_list = list(dict.fromkeys(d.strip() for d in devices.split(",") if d.strip()))
    ex_list = list(dict.fromkeys(e.strip() for e in execution.split(",") if e.strip()))
    if not mode_list or not dev_list or not ex_list:
        raise UserError("--modes, --devices and --executions must each list at least one entry "
                        f"(executions: {', '.join(EXECUTIONS)})")
    for e in ex_list:
        if e not in EXECUTIONS:
            raise UserError(f"unknown execution {e!r}: use {', '.join(EXECUTIONS)} (one or more)")
        check_implementation(implementation, e)
    batches = list(dict.fromkeys(_ints(batch, "--batch")))
    tokens = list(dict.fromkeys(_ints(output_tokens, "--output-tokens")))
    n_points = len(mode_list) * len(batches) * len(dev_list) * len(ex_list) * len(tokens)
    if n_points > MAX_SWEEP_POINTS:
        raise UserError(f"this sweep has {n_points:,} points, more than {MAX_SWEEP_POINTS:,}: split it into several "
                        "sweeps or list fewer values")
    given = loaded or {}
    devs = {d: given[d] if d in given else _device(d) for d in dev_list}  # each device file read once per sweep
    rows = []
    total = len(mode_list) * len(batches) * len(dev_list) * len(ex_list)
    done = 0
    for mode, crops in mode_list:
        for b in batches:
            for dev in dev_list:
                for ex in ex_list:
                    if progress is not None:
                        progress(done, total, f"{mode}{':' + crops if crops else ''} B{b} {dev} {ex}")
                    done += 1
                    c = _combo(model, mode, crops, b, dev, ex, devs[dev], routing, implementation, prompt_tokens)
                    wl = c["wl"]
                    for n in tokens:
                        rows.append(point(c, wl, dev, ex, n))
    if progress is not None:
        progress(total, total, "done")
    return rows


def point(c: dict[str, Any], wl: Any, device: str, execution: str, n: int) -> dict[str, Any]:
    if wl.prefill_tokens + n > MAX_POSITIONS:
        raise UserError(f"{wl.label}: {wl.prefill_tokens} prefill + {n} output tokens exceed {MAX_POSITIONS} positions")
    prof: Profile = c["profile"]
    probe, walls, _ = integrate_decode(c["fit"], wl.prefill_tokens, n, prof)
    step_walls = per_step(wl.prefill_tokens, n, probe, walls)
    decode = float(step_walls.sum())
    e2e = c["ttft_s"] + decode
    return {
        "mode": wl.label, "device": device, "execution": execution, "implementation": c["implementation"],
        "batch": wl.batch, "output_tokens": n,
        "profile": prof.source, "profile_label": prof.label, "routing": c["routing"].label,
        "vision_tokens": wl.vision_tokens, "prefill_tokens": wl.prefill_tokens, "ttft_s": c["ttft_s"],
        "tpot_mean_s": float(step_walls.mean()), "tpot_last_s": float(step_walls[-1]), "e2e_s": e2e,
        "tokens_per_s": wl.batch * n / e2e, **throughput_of(wl.batch, e2e, c["spec"]),
        **dict(zip(("confidence", "confidence_note"),
                   point_confidence(device, profile_kind(prof.source), execution, wl.batch, wl.prefill_tokens, n),
                   strict=True)),
    }


def write_sweep(rows: list[dict[str, Any]], path: Path, suffix: str) -> None:
    """CSV or JSON with the columns of report.tables.sweep_records (Parquet: planner.write_rows)."""
    from dsocr_trace.report.tables import sweep_records

    recs = sweep_records(rows)
    if suffix == ".json":
        path.write_bytes(orjson.dumps(recs, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))
        return
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        keys = list(recs[0]) if recs else []
        w.writerow(keys)
        for r in recs:
            w.writerow(["" if r[k] is None else r[k] for k in keys])
