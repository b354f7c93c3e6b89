"""Cross-GPU accuracy: GPUs nobody calibrated, predicted from another card's calibration (any CPU, minutes).

    python scripts/cross_gpu.py [OUT_DIR]        # default benchmarks/results/cross-gpu

* H200 SM partitions (CUDA green contexts of 16, 32, 66 and 100 SMs, benchmarks/results/h200-partitions): each
  predicted from the full card's packaged calibration (hardware/profiles/h200.json.gz, another session) plus the
  partition's spec (partition_of) and its measured figures (large matmul, copy, kernel floor: figures.json), never
  from its own calibration (partition_of keeps the card's 132 SMs as the count the device reports, which
  persistent and split-KV kernels size their grids to); the harness's per-stage device times measured inside
  the partition are the truth.
  The full card's figures come from the same probe in the same session (full-card-session1/figures.json), so each
  ratio is of two figures taken one way.
* Leave one partition out: the transfer constants (kernels.transfer: GRID below) chosen on the op-level errors
  of three partitions only (their quick sweeps and the families sweep, ../h200-partition-families: every
  decode-attention, grouped-GEMM and convolution op of the fixed sweep timed inside each partition), then the
  fourth predicted with them, per op and per stage.
* H100 <-> H200 with the target uncalibrated: the packaged profile of one moved to the other from the spec's
  measured figures.
* Spec plus public measured figures only: the same, with the figures from the catalog file (device YAML).
* Datasheet figures only: the target's measured figures removed from its spec (what an unknown GPU gets).
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from accuracy import load, stage_points  # scripts/accuracy.py, beside this one
from attrs import evolve

import dsocr_trace.kernels.transfer as T
from dsocr_trace.hardware.profile import Profile, packaged_profile, transfer_profile
from dsocr_trace.hardware.spec import DeviceSpec, GpuFigures, load_device, partition_of
from dsocr_trace.kernels.model import perf_model, points_of
from dsocr_trace.validate.offline import validate_measured
from dsocr_trace.validate.partition import gpu_figures_of

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PARTS = RESULTS / "h200-partitions"
MODEL = "deepseek-ai/DeepSeek-OCR"
PARTITIONS = ("p16", "p32", "p66", "p100")
# stages the target names ("every SAM, CLIP, decoder-prefill, lm_head and decode-step point")
KEY_STAGES = ("vision.sam", "vision.clip", "decoder.prefill", "lm_head.prefill", "decode.step")
# the grid the leave-one-partition-out choice searches
GRID = {"RATE_LONG_S": (30e-6, 100e-6, 300e-6), "BLOCK_BYTES": (4096, 16384, 65536),
        "MEMORY_BYTES_PER_SM_CYCLE": (14.0, 20.0, 28.0), "TENSOR_BYTES_PER_SM_CYCLE": (32.0, 48.0, 64.0),
        "COPY_BYTES_PER_SM_CYCLE": (20.0, 40.0, 64.0), "ROWWISE_SM_EXPONENT": (0.5, 0.7, 0.9),
        "GROUPED_FULL_ROWS": (2.0, 4.0, 8.0)}


def stats(errors: Iterable[float]) -> dict[str, Any]:
    a = sorted(abs(e) for e in errors)
    if not a:
        return {"n": 0}
    return {"n": len(a), "median_abs": statistics.median(a), "mean_abs": statistics.mean(a), "max_abs": a[-1],
            "within_5pct": sum(1 for e in a if e <= 0.05), "within_10pct": sum(1 for e in a if e <= 0.10)}


def partitions() -> dict[str, tuple[DeviceSpec, GpuFigures]]:
    card = load_device("h200")
    out = {}
    for p in PARTITIONS:
        doc = load(PARTS / p / "figures.json")
        spec = partition_of(card, int(doc["sms"]))
        out[p] = (spec, gpu_figures_of(doc, spec))
    return out


def source_figures() -> GpuFigures:
    return gpu_figures_of(load(PARTS / "full-card-session1" / "figures.json"), load_device("h200"))


FAMILIES = RESULTS / "h200-partition-families"
_OPS: dict[str, list[tuple[str, Any, float | None]]] = {}


def _session_points(folder: Path, part: str) -> tuple[dict[str, Any], dict[str, float]]:
    """(key -> fitted Point of each op timed in the partition, key -> the full card's time of the op, same
    session) for the partitions session (quick sweep) or the families session (decode attention, grouped GEMM,
    convolution of the fixed sweep: benchmarks/validation/partition_families.py)."""
    if folder == PARTS:
        part_doc, full_doc = load(PARTS / part / "calibration.json"), load(PARTS / "full-card-session1" /
                                                                          "calibration.json")
        sweep, full_pts = part_doc["sweep"]["points"], full_doc["sweep"]["points"]
        return ({k: p for k, spec in sweep.items() for p in points_of({k: spec})},
                {k: float(v["seconds"]) for k, v in full_pts.items()})
    ops = load(folder / "ops.json")["ops"]
    pdoc, fdoc = load(folder / f"{part}.json"), load(folder / "pfull.json")
    pts = {k: {**ops[k], "seconds": t, "kernels": pdoc["kernels"].get(k, [])} for k, t in pdoc["times"].items()}
    return ({k: p for k, spec in pts.items() for p in points_of({k: spec})},
            {k: float(t) for k, t in fdoc["times"].items()})


def part_ops(part: str) -> list[tuple[str, Any, float | None]]:
    """(sweep key, fitted Point measured inside the partition, the full card's time of it in the same session)
    of every op timed in a partition: its quick sweep and the families sweep."""
    if part not in _OPS:
        rows: list[tuple[str, Any, float | None]] = []
        for folder in (PARTS, FAMILIES):
            if folder == FAMILIES and not (folder / f"{part}.json").exists():
                continue
            pts, full = _session_points(folder, part)
            rows += [(k, p, full.get(k)) for k, p in sorted(pts.items())]
        _OPS[part] = rows
    return _OPS[part]


def op_errors(profile: Profile, dst: GpuFigures, src: GpuFigures, part: str, measured_source: bool = False
              ) -> dict[str, list[float]]:
    """Every op timed inside the partition carried from the full card to it, against the time measured inside
    it. The source time: the full card's fitted family estimate (what a prediction uses), or with
    `measured_source` the op's own time on the full card in the same session (the transfer rule alone)."""
    model = perf_model(profile)
    errs: dict[str, list[float]] = {}
    for _key, p, full_s in part_ops(part):
        e = model.standalone(p.q)
        if e is None or (measured_source and full_s is None):
            continue
        if measured_source:
            e = evolve(e, seconds=full_s)
        sec = T.carry(e, p.q, src, dst, e.tile).seconds
        errs.setdefault(p.q.family, []).append((sec - p.seconds) / p.seconds)
    return errs


def stage_check(name: str, measured: Mapping[str, Any], profile: Profile, spec: DeviceSpec) -> dict[str, Any]:
    res = validate_measured(measured, profile, spec, MODEL)
    pts = stage_points(res)
    key = [p for p in pts if p["stage"] in KEY_STAGES]
    walls = [{"run": r.get("label"), **r["wall"]} for r in res["runs"] if r["wall"]["error"] is not None]
    mods = {f"{r['label']}@{r['workload']['batch']}": {f: v["error"] for f, v in sorted(r["module_types"].items())
                                                       if v["error"] is not None and v["measured_s"] > 2e-4}
            for r in res["runs"]}
    out = {"name": name, "profile": profile.label, "provenance": profile.provenance(), "stages": pts,
           "module_types": mods,
           "stage_stats": stats(p["error"] for p in pts), "key_stage_stats": stats(p["error"] for p in key),
           "walls": walls}
    print(f"{name}: {out['stage_stats']} key {out['key_stage_stats']}", flush=True)
    return out


def set_constants(c: Mapping[str, float]) -> None:
    for k, v in c.items():
        setattr(T, k, v)


def lopo(h200: Profile, parts: Mapping[str, tuple[DeviceSpec, GpuFigures]], src: GpuFigures) -> dict[str, Any]:
    """Constants chosen on three partitions' op errors (median |error| over all ops), the fourth predicted."""
    names = list(GRID)
    combos = [dict(zip(names, vals, strict=True)) for vals in itertools.product(*GRID.values())]
    default = {k: getattr(T, k) for k in names}
    scores: dict[str, dict[int, float]] = {}
    for i, c in enumerate(combos):
        set_constants(c)
        for p, (_spec, dst) in parts.items():
            e = [abs(x) for v in op_errors(h200, dst, src, p).values() for x in v]
            scores.setdefault(p, {})[i] = statistics.median(e)
    set_constants(default)
    out: dict[str, Any] = {}
    for held in parts:
        fit = [p for p in parts if p != held]
        best = min(scores[fit[0]], key=lambda i: sum(scores[p][i] for p in fit))
        out[held] = {"constants": combos[best], "fitted_on": fit,
                     "op_median_abs_fit": statistics.mean(scores[p][best] for p in fit),
                     "op_median_abs_held_out": scores[held][best]}
    return out


def main(out_dir: str = str(RESULTS / "cross-gpu")) -> None:
    h200, h100 = packaged_profile(load_device("h200")), packaged_profile(load_device("h100"))
    src = source_figures()
    parts = partitions()
    res: dict[str, Any] = {"source": {"profile": h200.label, "figures": src.__dict__ if hasattr(src, "__dict__")
                                      else None}, "partitions": {}, "checks": []}
    default = {k: getattr(T, k) for k in GRID}
    res["constants"] = default
    for p, (spec, dst) in parts.items():
        errs = op_errors(h200, dst, src, p)
        prof = transfer_profile(h200, spec, figures=dst, source=src)
        chk = stage_check(f"{spec.name}, uncalibrated (from the full card's calibration)",
                          load(PARTS / p / "measured.json"), prof, spec)
        res["partitions"][p] = {"sms": spec.sm_count, "figures": {"tc_flops": dst.tc_flops, "mem_bw": dst.mem_bw,
                                                                   "floor_s": dst.floor_s},
                                "ops": {f: stats(v) for f, v in sorted(errs.items())},
                                "ops_all": stats(x for v in errs.values() for x in v), "stages": chk}
    res["lopo"] = lopo(h200, parts, src)
    for p, r in res["lopo"].items():
        set_constants(r["constants"])
        spec, dst = parts[p]
        prof = transfer_profile(h200, spec, figures=dst, source=src)
        r["stages"] = stage_check(f"{spec.name}, leave one partition out", load(PARTS / p / "measured.json"), prof,
                                  spec)
    set_constants(default)
    h100_meas = load(RESULTS / "h100" / "measured.json")
    h200_held = load(RESULTS / "h200-cli" / "val" / "measured.json")
    s100, s200 = load_device("h100"), load_device("h200")
    res["checks"] += [
        stage_check("H100 profile -> H200, spec + measured figures", h200_held, transfer_profile(h100, s200), s200),
        stage_check("H200 profile -> H100, spec + measured figures", h100_meas, transfer_profile(h200, s100), s100),
    ]
    for s, prof, meas in ((s200, h100, h200_held), (s100, h200, h100_meas)):
        bare = evolve(s, figures={k: v for k, v in s.figures.items() if not k.startswith(("measured", "kernel"))})
        res["checks"].append(stage_check(f"{prof.device} profile -> {s.key}, datasheet figures only", meas,
                                         transfer_profile(prof, bare), s))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cross-gpu.json").write_text(json.dumps(res, indent=1, sort_keys=True, default=str))
    (out / "cross-gpu.md").write_text(markdown(res))
    print(f"wrote {out}/cross-gpu.md")


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def markdown(res: Mapping[str, Any]) -> str:
    lines = ["# Cross-GPU accuracy (GPUs predicted without their own calibration)", "",
             "Made by `python scripts/cross_gpu.py` from committed measurements; see the script's docstring.", "",
             f"Source calibration: {res['source']['profile']}. Constants: {res['constants']}.", "",
             "## H200 partitions, per stage (eager, harness device time)", "",
             "| partition | stage points | median | max | within 10% | key stages max | ops median |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in res["partitions"].values():
        s, k = r["stages"]["stage_stats"], r["stages"]["key_stage_stats"]
        lines.append(f"| {r['sms']} SMs | {s['n']} | {pct(s['median_abs'])} | {pct(s['max_abs'])} | "
                     f"{s['within_10pct']}/{s['n']} | {pct(k.get('max_abs'))} | {pct(r['ops_all']['median_abs'])} |")
    lines += ["", "## Per kernel family (ops timed inside each partition: its quick sweep and the families sweep "
              "of ../h200-partition-families; median |error|, n)", "",
              "| partition | " + " | ".join(("gemm", "conv", "grouped_gemm", "attention", "memory")) + " |",
              "|---|" + "---:|" * 5]
    for r in res["partitions"].values():
        cells = [f"{pct(r['ops'][f]['median_abs'])} ({r['ops'][f]['n']})" if f in r["ops"] else "-"
                 for f in ("gemm", "conv", "grouped_gemm", "attention", "memory")]
        lines.append(f"| {r['sms']} SMs | " + " | ".join(cells) + " |")
    lines += ["", "## Leave one partition out (constants chosen on the other three)", "",
              "| held out | constants | ops median (fit / held out) | stage median | stage max |",
              "|---|---|---:|---:|---:|"]
    for p, r in res["lopo"].items():
        s = r["stages"]["stage_stats"]
        lines.append(f"| {p} | {r['constants']} | {pct(r['op_median_abs_fit'])} / {pct(r['op_median_abs_held_out'])} "
                     f"| {pct(s['median_abs'])} | {pct(s['max_abs'])} |")
    lines += ["", "## Between catalog cards (target uncalibrated)", "", "| check | stage points | median | max |",
              "|---|---:|---:|---:|"]
    for c in res["checks"]:
        s = c["stage_stats"]
        lines.append(f"| {c['name']} | {s['n']} | {pct(s['median_abs'])} | {pct(s['max_abs'])} |")
    lines += ["", "## Per module type (device time error, module types over 0.2 ms)", ""]
    for r in res["partitions"].values():
        runs = r["stages"]["module_types"]
        fams = sorted({f for v in runs.values() for f in v})
        lines += [f"### {r['sms']} SMs", "", "| module type | " + " | ".join(runs) + " |",
                  "|---|" + "---:|" * len(runs)]
        for f in fams:
            lines.append(f"| {f} | " + " | ".join(f"{v[f] * 100:+.1f}%" if f in v else "-" for v in runs.values())
                         + " |")
        lines.append("")
    lines += ["## Every stage point", ""]
    for r in res["partitions"].values():
        lines += [f"### {r['sms']} SMs", "", "| run | stage | predicted ms | measured ms | error |",
                  "|---|---|---:|---:|---:|"]
        for x in sorted(r["stages"]["stages"], key=lambda x: (x["run"], x["stage"])):
            lines.append(f"| {x['run']} | {x['stage']} | {x['predicted_s'] * 1e3:.3f} | {x['measured_s'] * 1e3:.3f} | "
                         f"{x['error'] * 100:+.1f}% |")
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main(*sys.argv[1:])
