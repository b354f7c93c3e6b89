"""Planner answers built on the sweep's pricing (`sweep.run_sweep`) and the memory check (`capacity.annotate`).

* `sweep_summary`: the best points of a sweep (pages per GPU-day, TTFT, per-token latency) as a table, points
  that do not fit in GPU memory marked.
* `plan_search`: the inverse question: which GPUs, executions and batch sizes meet a TTFT and a per-token
  latency target (and fit in memory) for one workload. Batches searched: powers of two up to `max_batch`
  (and `max_batch`), then, per GPU and execution, bisection between the largest power that meets the targets
  and the next one that does not, for the largest batch that meets them. TTFT, per-token latency and memory
  all grow with the batch, so meeting the targets is monotone in it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import frozen

from dsocr_trace.capacity import annotate
from dsocr_trace.costs.routing import Routing
from dsocr_trace.errors import UserError
from dsocr_trace.hardware.profile import Profile, profile_from_document, profile_kind, read_document
from dsocr_trace.hardware.spec import DeviceSpec, catalog, load_device
from dsocr_trace.hardware.validated import measured_executions
from dsocr_trace.report.console import console, is_narrow, summary_table
from dsocr_trace.sweep import run_sweep
from dsocr_trace.workload import DEFAULT_PROMPT_TOKENS

GIB = 2**30
MAX_PLAN_BATCH = 1024  # beyond this a single GPU holds no DeepSeek-OCR batch of any mode


def _gib(x: float) -> str:
    return f"{x / GIB:,.1f}"


RANKS = ("measured", "throughput", "cost")
RANK_ORDER = {"measured": "measured executions first, then pages per GPU-day",
              "throughput": "pages per GPU-day",
              "cost": "measured executions first, then USD per page"}


def rank_key(r: Mapping[str, Any], rank: str = "measured") -> tuple[Any, ...]:
    """Fitting points first; unless rank is 'throughput', executions measured on a GPU before those never
    measured (fused); then by pages per GPU-day (highest first) or, with rank 'cost', USD per page (lowest first,
    unpriced last); ties in a fixed order."""
    unmeasured = rank != "throughput" and str(r["execution"]) not in measured_executions()
    usd = r.get("usd_per_page")
    cost = (usd is None, float(usd or 0.0)) if rank == "cost" else (False, 0.0)
    return (not r.get("fits", True), unmeasured, *cost, -float(r["pages_per_gpu_day"]), str(r["device"]),
            str(r["execution"]), str(r["mode"]), int(r["batch"]), int(r["output_tokens"]))


def check_rank(rank: str) -> str:
    if rank not in RANKS:
        raise UserError(f"--rank {rank!r}: use " + ", ".join(f"{k} ({v})" for k, v in RANK_ORDER.items()))
    return rank


def _fit_cell(r: Mapping[str, Any], short: bool = False) -> str:
    if "fits" not in r:
        return "?"
    if short:
        used = f"{_gib(r['memory_total_bytes'])}/{_gib(r['device_memory_bytes'])}"
        return used if r["fits"] else f"[bold red]{used}[/]"
    used = f"{_gib(r['memory_total_bytes'])} / {_gib(r['device_memory_bytes'])}"
    return f"yes {used}" if r["fits"] else f"[bold red]NO {used}[/]"


# the narrow tables' trust words (report.console.is_narrow), spelled out in their caption
TRUST_SHORT = {"validated": "valid", "modelled": "model", "extrapolated": "extrap", "transferred": "xfer",
               "datasheet": "sheet", "calibrated": "calib"}
NARROW_CAPTION = ("trust: valid = validated, model = modelled, extrap = extrapolated, xfer = transferred, sheet = "
                  "datasheet; B = batch; pages per GPU-day; GiB used / on the GPU (red: does not fit)")


def _trust(r: Mapping[str, Any], narrow: bool) -> str:
    word = str(r.get("confidence") or profile_kind(str(r.get("profile", ""))))
    return TRUST_SHORT.get(word, word) if narrow else word


def _short_count(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    return f"{x / 1e3:.1f}k" if x >= 1e4 else f"{x:,.0f}"


def sweep_table(rows: Sequence[Mapping[str, Any]], limit: int = 12, rank: str = "measured",
                narrow: bool = False) -> Any:
    """A rich Table of the best `limit` points (ranked by `rank_key`), then the best that do not fit; `narrow`:
    the compact layout of a narrow terminal (report.console.is_narrow)."""
    ranked = sorted(rows, key=lambda r: rank_key(r, rank))
    fit = [r for r in ranked if r.get("fits", True)]
    unfit = [r for r in ranked if not r.get("fits", True)]
    shown = fit[:limit]
    shown += unfit[: max(3, limit - len(shown))] if unfit else []
    order = RANK_ORDER[rank]
    t = summary_table(f"Best of {len(rows)} points by {order} ({len(unfit)} do not fit in GPU memory)", narrow,
                      NARROW_CAPTION if narrow else None, tight=True)
    cols = ((("mode", "left"), ("device", "left"), ("trust", "left"), ("exec", "left"), ("B", "right"),
             ("out", "right"), ("TTFT ms", "right"), ("ms/tok", "right"), ("pages", "right"), ("GiB", "left"))
            if narrow else
            (("#", "right"), ("mode", "left"), ("device", "left"), ("trust", "left"), ("execution", "left"),
             ("batch", "right"), ("out tok", "right"), ("TTFT ms", "right"), ("ms/token", "right"),
             ("pages/GPU-day", "right"), ("fits: GiB used / GPU", "left")))
    for col, just in cols:
        t.add_column(col, justify=just, no_wrap=narrow or col in ("mode", "device", "fits: GiB used / GPU"))  # type: ignore[arg-type]
    for i, r in enumerate(shown, 1):
        style = None if r.get("fits", True) else "dim"
        cells = [str(r["mode"]), str(r["device"]), _trust(r, narrow), str(r["execution"]), str(r["batch"]),
                 str(r["output_tokens"]), f"{r['ttft_s'] * 1e3:,.1f}", f"{r['tpot_mean_s'] * 1e3:,.2f}"]
        if narrow:
            t.add_row(*cells, _short_count(r["pages_per_gpu_day"]), _fit_cell(r, short=True), style=style)
        else:
            t.add_row(str(i), *cells, f"{r['pages_per_gpu_day']:,.0f}", _fit_cell(r), style=style)
    return t


def _point(r: Mapping[str, Any]) -> str:
    return f"{r['mode']} on {r['device']} {r['execution']} B{r['batch']} ({r['output_tokens']} out)"


def sweep_notes(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line each: lowest TTFT and lowest per-token latency among fitting points; which profiles priced the
    rows and the routing assumed (with a warning for datasheet-only pricing)."""
    lines = []
    fit = [r for r in rows if r.get("fits", True)]
    if fit:
        t = min(fit, key=lambda r: (r["ttft_s"], rank_key(r)))
        p = min(fit, key=lambda r: (r["tpot_mean_s"], rank_key(r)))
        lines.append(f"lowest TTFT: {t['ttft_s'] * 1e3:,.1f} ms ({_point(t)}); lowest per-token latency: "
                     f"{p['tpot_mean_s'] * 1e3:,.2f} ms ({_point(p)})")
    elif rows:
        lines.append("warning: no point fits in GPU memory: lower the batch, the output tokens or the mode")
    by_dev: dict[str, str] = {}
    for r in rows:
        by_dev.setdefault(str(r["device"]), str(r.get("profile", "?")))
    if by_dev:
        lines.append("profiles: " + "; ".join(f"{d}: {s}" for d, s in by_dev.items()))
        routing = sorted({str(r.get("routing", "?")) for r in rows})
        dtypes = sorted({str(r.get("weight_dtype", "?")) for r in rows})
        lines.append(f"MoE routing: {', '.join(routing)}; weights {', '.join(dtypes)} (memory)")
    datasheet = sorted(d for d, s in by_dev.items() if profile_kind(s) == "datasheet")
    moved = sorted(d for d, s in by_dev.items() if profile_kind(s) == "transferred")
    if moved:
        lines.append(f"warning: {', '.join(moved)} priced from another GPU's calibration by the cross-GPU model "
                     "(not calibrated on that GPU): run `dsocr-trace calibrate` there for measured numbers")
    if datasheet:
        lines.append(f"warning: {', '.join(datasheet)} priced from datasheet figures only (not calibrated on that "
                     "GPU): run `dsocr-trace calibrate` there for measured numbers")
    outside = {lvl: sum(1 for r in rows if r.get("confidence") == lvl) for lvl in ("modelled", "extrapolated")}
    parts = [text for n, text in (
        (outside["modelled"], f"{outside['modelled']} use an execution never measured on their GPU (modelled)"),
        (outside["extrapolated"], f"{outside['extrapolated']} lie outside the measured batch or KV range "
                                  "(extrapolated)")) if n]
    if parts:
        lines.append(f"warning: of {len(rows)} points, {' and '.join(parts)}: see the confidence and "
                     "confidence_note columns")
    return lines


def print_sweep_summary(rows: Sequence[Mapping[str, Any]], con: Any = None, rank: str = "measured") -> None:
    con = con or console()
    con.print(sweep_table(rows, rank=rank, narrow=is_narrow(con)))
    for line in sweep_notes(rows):
        con.print(line, highlight=False)


# -- the inverse question ----------------------------------------------------------------------------------------


@frozen
class Targets:
    ttft_s: float | None = None  # time to first token, at most
    tpot_s: float | None = None  # mean time per output token, at most

    def misses(self, r: Mapping[str, Any]) -> list[str]:
        """What a point misses: 'memory', 'ttft', 'tpot' (empty: it meets every target)."""
        out = []
        if not r["fits"]:
            out.append("memory")
        if self.ttft_s is not None and r["ttft_s"] > self.ttft_s:
            out.append("ttft")
        if self.tpot_s is not None and r["tpot_mean_s"] > self.tpot_s:
            out.append("tpot")
        return out

    def describe(self) -> str:
        parts = []
        if self.ttft_s is not None:
            parts.append(f"TTFT <= {self.ttft_s * 1e3:g} ms")
        if self.tpot_s is not None:
            parts.append(f"<= {self.tpot_s * 1e3:g} ms per output token")
        return " and ".join([*parts, "fits in GPU memory"])


@frozen
class Candidate:
    label: str  # the row's `device`: a catalog key, a device file path, or key+profile file
    spec: DeviceSpec
    profile: Profile | None  # None: the sweep's own choice for the device


def batch_ladder(max_batch: int) -> list[int]:
    """1, 2, 4, ... up to max_batch, and max_batch itself."""
    out = [1 << i for i in range(max_batch.bit_length()) if 1 << i <= max_batch]
    return sorted({*out, max_batch})


def candidates(devices: str | None, profiles: Sequence[Path]) -> list[Candidate]:
    """The GPUs to search: `devices` (comma list of catalog keys or device files; default the whole catalog),
    plus one candidate per profile file, priced on the GPU the profile names (its `device` field)."""
    out: list[Candidate] = []
    if devices is None:
        out = [Candidate(d.key, d, None) for d in catalog()]
    else:
        labels = [d.strip() for d in devices.split(",") if d.strip()]
        if not labels:
            raise UserError("--devices must list at least one GPU (catalog key or device file)")
        for lab in dict.fromkeys(labels):
            out.append(Candidate(lab, load_device(lab), None))
    taken = {c.label for c in out}
    for path in profiles:
        doc = read_document(path)
        device = doc.get("device")
        if not isinstance(device, str) or not device:
            raise UserError(f"profile {path} does not say which GPU it was measured on (field 'device'): set it to "
                            "a catalog key (see `dsocr-trace devices`) or the stem of your --devices file")
        spec = next((c.spec for c in out if c.spec.key == device), None) or load_device(device)
        prof = profile_from_document(doc, spec, f"profile {path}", file=Path(path).name)
        label = f"{spec.key}+{Path(path).name}"
        k = 2
        while label in taken:
            label, k = f"{spec.key}+{Path(path).name}#{k}", k + 1
        taken.add(label)
        out.append(Candidate(label, spec, prof))
    return out


def price_candidates(model: str, modes: str, batches: str, output_tokens: str, cands: Sequence[Candidate],
                     executions: str, dtype: str, implementation: str = "native", routing: Routing | None = None,
                     prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
                     progress: Callable[[int, int, str], None] | None = None) -> list[dict[str, Any]]:
    """Sweep rows (comma lists, as run_sweep takes them) on resolved candidates, each with its own profile,
    annotated with memory, fit and cost: what `sweep` writes and `plan` searches over."""
    loaded = {c.label: (c.spec, c.profile) for c in cands if c.profile is not None}
    rows = run_sweep(model, modes, ",".join(c.label for c in cands), batches, output_tokens, executions,
                     routing=routing, loaded=loaded, progress=progress, implementation=implementation,
                     prompt_tokens=prompt_tokens)
    return annotate(rows, model, {c.label: c.spec for c in cands}, dtype)


def plan_search(model: str, mode: str, output_tokens: int, targets: Targets, cands: Sequence[Candidate],
                executions: Sequence[str], max_batch: int, dtype: str = "bf16",
                progress: Callable[[str], None] | None = None, implementation: str = "native",
                routing: Routing | None = None, prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
                rank: str = "measured") -> list[dict[str, Any]]:
    """Every evaluated point with `meets` (bool) and `misses` ('memory', 'ttft', 'tpot'; ';'-joined), ranked:
    points that meet the targets first, then by `rank_key`."""
    if not 1 <= max_batch <= MAX_PLAN_BATCH:
        raise UserError(f"--max-batch {max_batch} is out of range: use 1..{MAX_PLAN_BATCH}")
    say = progress or (lambda _msg: None)
    ladder = batch_ladder(max_batch)
    say(f"pricing batches {', '.join(map(str, ladder))} on {len(cands)} GPUs x {len(executions)} executions")
    points: dict[tuple[str, str, int], dict[str, Any]] = {}

    def add(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            miss = targets.misses(r)
            points[(r["device"], r["execution"], int(r["batch"]))] = r | {"meets": not miss, "misses": ";".join(miss)}

    for b in ladder:  # one batch at a time: each is one trace, priced on every GPU
        add(price_candidates(model, mode, str(b), str(output_tokens), cands, ",".join(executions), dtype,
                             implementation, routing, prompt_tokens))
    # bisection per (GPU, execution) between the largest meeting batch and the next evaluated one
    brackets: dict[tuple[str, str], tuple[int, int]] = {}
    for c in cands:
        for ex in executions:
            ok = [b for b in ladder if points[(c.label, ex, b)]["meets"]]
            if not ok or ok[-1] == ladder[-1]:
                continue
            lo = ok[-1]
            hi = min(b for b in ladder if b > lo)
            if hi - lo > 1:
                brackets[(c.label, ex)] = (lo, hi)
    by_label = {c.label: c for c in cands}
    while brackets:
        mids: dict[int, list[tuple[str, str]]] = {}
        for key, (lo, hi) in brackets.items():
            mids.setdefault((lo + hi) // 2, []).append(key)
        for mid, keys in sorted(mids.items()):
            say(f"bisecting: batch {mid} for {', '.join(f'{d} {e}' for d, e in keys)}")
            labels = sorted({d for d, _ in keys})
            exs = sorted({e for _, e in keys})
            add(price_candidates(model, mode, str(mid), str(output_tokens), [by_label[d] for d in labels],
                                 ",".join(exs), dtype, implementation, routing, prompt_tokens))
            for key in keys:
                lo, hi = brackets.pop(key)
                if points[(*key, mid)]["meets"]:
                    lo = mid
                else:
                    hi = mid
                if hi - lo > 1:
                    brackets[key] = (lo, hi)
    order = sorted(points.values(), key=lambda r: (not r["meets"], *rank_key(r, rank)))
    return order


def best_per_gpu(rows: Sequence[Mapping[str, Any]], rank: str = "measured") -> list[Mapping[str, Any]]:
    """The best meeting point of each (GPU, execution) and the order among them, both by `rank_key`."""
    best: dict[tuple[str, str], Mapping[str, Any]] = {}
    for r in rows:
        if r["meets"]:
            k = (str(r["device"]), str(r["execution"]))
            if k not in best or rank_key(r, rank) < rank_key(best[k], rank):
                best[k] = r
    return sorted(best.values(), key=lambda r: rank_key(r, rank))


def plan_table(rows: Sequence[Mapping[str, Any]], title: str, narrow: bool = False) -> Any:
    t = summary_table(title, narrow, NARROW_CAPTION.replace("pages per GPU-day", "pages per GPU-day; USD per 1M pages")
                      if narrow else None, tight=True)
    cols = ((("device", "left"), ("trust", "left"), ("exec", "left"), ("B", "right"), ("TTFT ms", "right"),
             ("ms/tok", "right"), ("pages", "right"), ("USD/1M", "right"), ("GiB", "left")) if narrow else
            (("#", "right"), ("device", "left"), ("trust", "left"), ("execution", "left"), ("batch", "right"),
             ("TTFT ms", "right"), ("ms/token", "right"), ("pages/GPU-day", "right"), ("USD/1M pages", "right"),
             ("GiB used / GPU", "left")))
    for col, just in cols:
        t.add_column(col, justify=just, no_wrap=narrow)  # type: ignore[arg-type]
    for i, r in enumerate(rows, 1):
        usd = r.get("usd_per_million_pages")
        cells = [str(r["device"]), _trust(r, narrow), str(r["execution"]), str(r["batch"]),
                 f"{r['ttft_s'] * 1e3:,.1f}", f"{r['tpot_mean_s'] * 1e3:,.2f}"]
        if narrow:
            t.add_row(*cells, _short_count(r["pages_per_gpu_day"]), "-" if usd is None else f"{usd:,.0f}",
                      f"{_gib(r['memory_total_bytes'])}/{_gib(r['device_memory_bytes'])}")
        else:
            t.add_row(str(i), *cells, f"{r['pages_per_gpu_day']:,.0f}", "-" if usd is None else f"{usd:,.0f}",
                      f"{_gib(r['memory_total_bytes'])} / {_gib(r['device_memory_bytes'])}")
    return t


def closest(rows: Sequence[Mapping[str, Any]], targets: Targets) -> Mapping[str, Any] | None:
    """The point that misses its targets by the smallest factor (memory misses count by their overshoot)."""
    def worst_ratio(r: Mapping[str, Any]) -> float:
        ratios = [r["memory_total_bytes"] / r["device_memory_bytes"]]
        if targets.ttft_s is not None:
            ratios.append(r["ttft_s"] / targets.ttft_s)
        if targets.tpot_s is not None:
            ratios.append(r["tpot_mean_s"] / targets.tpot_s)
        return max(ratios)

    return min(rows, key=lambda r: (worst_ratio(r), rank_key(r))) if rows else None


def no_answer_message(rows: Sequence[Mapping[str, Any]], targets: Targets, workload: str,
                      executions: Sequence[str] = ("eager", "fused")) -> str:
    msg = (f"no GPU, execution and batch meets {targets.describe()} for {workload} "
           f"({len(rows)} points evaluated)")
    c = closest(rows, targets)
    if c is not None:
        msg += (f"; closest: {c['device']} {c['execution']} B{c['batch']} with TTFT {c['ttft_s'] * 1e3:,.1f} ms, "
                f"{c['tpot_mean_s'] * 1e3:,.2f} ms/token, {_gib(c['memory_total_bytes'])} of "
                f"{_gib(c['device_memory_bytes'])} GiB (misses {c['misses'].replace(';', ', ')})")
    hint = "relax a target" + (", add fused execution" if "fused" not in executions else "")
    return msg + f": {hint}, or try a smaller mode or fewer output tokens"


def write_rows(rows: Sequence[Mapping[str, Any]], path: Path, suffix: str) -> None:
    """Sweep or plan rows as CSV or JSON (sweep.write_sweep's formats) or Parquet (report.tables)."""
    if suffix == ".parquet":
        from dsocr_trace.report.tables import sweep_records, write_parquet

        write_parquet(sweep_records(rows), path)
        return
    from dsocr_trace.sweep import write_sweep

    write_sweep([dict(r) for r in rows], path, suffix)


PLAN_SCHEMA = "dsocr-trace/plan/1"


PLAN_EXECUTIONS = "eager,fused"  # plan's default executions


def plan_command(*, model: str, mode: str, crops: str | None = None, image_size: str | None = None,
                 ttft_ms: float | None = None, tpot_ms: float | None = None, output_tokens: int = 500,
                 devices: str | None = None, profiles: Sequence[Path] = (), executions: str = PLAN_EXECUTIONS,
                 max_batch: int = 64, out: Path | None = None, force: bool = False,
                 quiet: bool = False, implementation: str = "native", routing: str | None = None,
                 dtype: str = "bf16", prompt_tokens: int = DEFAULT_PROMPT_TOKENS, rank: str = "measured"
                 ) -> dict[str, Any]:
    """Which GPUs, executions and batch sizes meet the targets for one workload; prints the best point of each
    GPU and execution; with `out`, writes every evaluated point (.csv, .parquet) or the whole answer (.json)."""
    import math
    import sys

    from dsocr_trace.report.build import dumps
    from dsocr_trace.report.output import atomic_file, check_target
    from dsocr_trace.workload import make_workload

    for name, v in (("--ttft-ms", ttft_ms), ("--tpot-ms", tpot_ms)):
        if v is not None and not (math.isfinite(v) and v > 0):
            raise UserError(f"{name} must be a positive number of milliseconds (got {v})")
    from dsocr_trace.plan import EXECUTIONS
    from dsocr_trace.trace.remote import check_implementation

    if implementation != "native" and executions == PLAN_EXECUTIONS:
        executions = "eager"  # the remote code runs eager only: the default plans what it can run
    exs = list(dict.fromkeys(e.strip() for e in executions.split(",") if e.strip()))
    bad = [e for e in exs if e not in EXECUTIONS]
    if bad or not exs:
        raise UserError(f"--executions {executions!r}: list one or more of {', '.join(EXECUTIONS)}")
    for e in exs:
        check_implementation(implementation, e)
    from dsocr_trace.costs.routing import parse_routing

    check_rank(rank)
    route = parse_routing(routing)
    wl = make_workload(mode, crops=crops, image_size=image_size, output_tokens=output_tokens,
                       prompt_tokens=prompt_tokens)
    if out is not None:
        if out.suffix.lower() not in (".csv", ".json", ".parquet"):
            raise UserError(f"--out {str(out)!r} must end in .csv, .json or .parquet")
        check_target(out, force, "plan file")
    if not 1 <= max_batch <= MAX_PLAN_BATCH:
        raise UserError(f"--max-batch {max_batch} is out of range: use 1..{MAX_PLAN_BATCH}")
    cands = candidates(devices, profiles)
    targets = Targets(None if ttft_ms is None else ttft_ms / 1e3, None if tpot_ms is None else tpot_ms / 1e3)

    def progress(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr)

    rows = plan_search(model, wl.label, output_tokens, targets, cands, exs, max_batch, dtype, progress=progress,
                       implementation=implementation, routing=route, prompt_tokens=prompt_tokens, rank=rank)
    best = best_per_gpu(rows, rank)
    query = {"model": model, "mode": wl.label, "output_tokens": output_tokens, "prompt_tokens": wl.prompt_tokens,
             "ttft_ms": ttft_ms, "tpot_ms": tpot_ms, "tpot_statistic": "mean over the output tokens",
             "devices": [c.label for c in cands], "profiles": [str(p) for p in profiles], "executions": exs,
             "implementation": implementation,
             "max_batch": max_batch, "batches": sorted({int(r["batch"]) for r in rows}), "weight_dtype": dtype,
             "routing": route.label, "rank": rank}
    result = {"schema": PLAN_SCHEMA, "query": query, "targets": targets.describe(), "best": best, "points": rows}
    con = console()
    workload = f"{wl.label} with {output_tokens} output tokens"
    if best:
        order = RANK_ORDER[rank] + (" (--rank throughput to drop measured-first)" if rank != "throughput" else "")
        con.print(plan_table(best, f"Meets {targets.describe()} for {workload}: the best batch of each GPU and "
                                   f"execution, by {order}", narrow=is_narrow(con)))
        met = sum(1 for r in rows if r["meets"])
        con.print(f"{met} of {len(rows)} evaluated points meet the targets"
                  + (f"; every point in {out}" if out is not None else "; --out FILE writes every point"),
                  highlight=False)
        missed = sorted({(str(r["device"]), str(r["execution"])) for r in rows}
                        - {(str(r["device"]), str(r["execution"])) for r in best})
        if missed:
            con.print("no batch meets them on: " + ", ".join(f"{d} {e}" for d, e in missed), highlight=False)
    else:
        con.print(no_answer_message(rows, targets, workload, exs), highlight=False)
    for line in sweep_notes(rows)[1:]:  # profiles, routing, datasheet warning
        con.print(line, highlight=False)
    if out is not None:
        with atomic_file(out, force, "plan file") as tmp:
            if out.suffix.lower() == ".json":
                tmp.write_bytes(dumps(result))
            else:
                write_rows(rows, tmp, out.suffix.lower())
    return result
