"""Build a packaged profile (gzipped dsocr-trace/profile/2) from committed measurements, on any CPU.

    # the profile `dsocr-trace calibrate` wrote on the lent H200, as it is (the packaged one)
    python scripts/build_profile.py as-is benchmarks/results/h200-cli/profile.json \
        src/dsocr_trace/hardware/profiles/h200.json.gz

    # a profile written by `dsocr-trace calibrate` (H200): refit the in-model factors from its in-model runs
    python scripts/build_profile.py calibrated benchmarks/results/h200/profile.json \\
        benchmarks/results/h200/profile.inmodel.json src/dsocr_trace/hardware/profiles/h200.json.gz

    # the H100 measurements of the first calibration format (microbenchmarks + operator benchmarks of the
    # calibration workloads' ops + harness runs of those workloads), re-derived into profile/2
    python scripts/build_profile.py legacy benchmarks/results/h100 src/dsocr_trace/hardware/profiles/h100.json.gz

    # the packaged H200 profile (its factors refitted by `calibrated` on the day) + the training-step sweep
    python scripts/build_profile.py as-is src/dsocr_trace/hardware/profiles/h200.json.gz \
        src/dsocr_trace/hardware/profiles/h200.json.gz --train-sweep benchmarks/results/h200-train-sweep

Any of these + `--train-sweep benchmarks/results/h200-train-sweep`: add the timed training-step sweep
(validate.calsweep.build_train_sweep: backward, recompute and optimizer kernels; timed with
benchmarks/validation/run_h200_train_sweep.sh) to the profile's sweep points, the same way a fresh
`dsocr-trace calibrate` now times them.

Refitting the factors traces every in-model run (a minute on a laptop CPU).
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

from dsocr_trace.hardware.calibration import profile_document
from dsocr_trace.hardware.profile import document_bytes, profile_from_document
from dsocr_trace.kernels.inmodel import fit_factors
from dsocr_trace.kernels.model import perf_model
from dsocr_trace.validate.offline import device_for, graph_rows, host_rows, in_calibration, inmodel_observations

MODEL = "deepseek-ai/DeepSeek-OCR"


def with_factors(doc: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """doc with in-model factors fitted on the calibration workloads among `runs` (others are ignored)."""
    spec = device_for(str(doc.get("gpu") or doc.get("device") or ""))
    prof = profile_from_document(doc, spec, "profile")
    cal = [r for r in runs if in_calibration(r["workload"]) or r["workload"].get("calibration")]
    doc = dict(doc)
    doc["factors"] = fit_factors(inmodel_observations(perf_model(prof), cal, MODEL))
    return doc


def legacy_points(folder: Path) -> dict[str, Any]:
    """Sweep points from the first calibration format: the operator benchmarks of the old calibration workloads
    (keys re-derived by tracing them here) and the microbenchmark GEMMs as x @ W^T specs."""
    from dsocr_trace.validate.opbench import emit_sources, spec_key
    from dsocr_trace.workload import make_workload

    times = json.loads((folder / "optimes.json").read_text())["times"]
    wls: list[tuple[str, Any, list[int]]] = []
    for mode, crops, batch in (("tiny", None, 1), ("small", None, 1), ("base", None, 1), ("large", None, 1),
                               ("gundam", "2x3", 1), ("gundam", "3x3", 1), ("base", None, 8)):
        label = mode + (f":{crops}" if crops else "") + (f"@{batch}" if batch != 1 else "")
        wls.append((label, make_workload(mode, crops=crops, batch=batch, output_tokens=1), []))
    for b in (1, 8):
        wls.append((f"decode@{b}", make_workload("base", batch=b, output_tokens=1), [300, 1000, 4000]))
    specs = emit_sources(MODEL, wls)
    points = {k: {**s, "seconds": times[k], "kernels": []} for k, s in specs.items() if times.get(k)}
    cal = json.loads((folder / "calibration.json").read_text())
    for g in cal.get("gemm", []):
        if not g.get("seconds"):
            continue
        m, n, k = int(g["m"]), int(g["n"]), int(g["k"])
        spec = {"op": "aten.mm.default", "attrs": {}, "sources": ["sweep:gemm"],
                "inputs": [{"shape": [m, k], "strides": [k, 1], "dtype": "bfloat16", "offset": 0, "param": False},
                           {"shape": [k, n], "strides": [1, k], "dtype": "bfloat16", "offset": 0, "param": True}],
                "call": {"args": [{"t": 0}, {"t": 1}], "kwargs": {}}}
        points.setdefault(spec_key(spec), {**spec, "seconds": float(g["seconds"]), "kernels": []})
    return dict(sorted(points.items()))


def legacy_document(folder: Path) -> dict[str, Any]:
    cal = json.loads((folder / "calibration.json").read_text())
    measured = json.loads((folder / "measured.json").read_text())
    cal["sweep"] = {"schema": "dsocr-trace/calsweep/1", "points": legacy_points(folder), "errors": {},
                    "workloads": ["tiny", "small", "base", "large", "gundam:2x3", "gundam:3x3", "base@8", "decode@1",
                                  "decode@8"]}
    spec = device_for(str(cal.get("device", {}).get("name", "")))
    runs = measured["runs"]
    doc = profile_document(cal, spec.key, host_rows(MODEL, runs), graph_rows(runs),
                           command=f"python scripts/build_profile.py legacy {folder}", elapsed_s=0.0)
    # every run of that session was a calibration workload of its day
    return with_factors(doc, [dict(r, workload={**r["workload"], "calibration": True}) for r in runs])


def with_train_sweep(doc: dict[str, Any], folder: Path) -> dict[str, Any]:
    """doc with the training sweep's timed ops (folder/ops.json specs, folder/times.json seconds and kernels)
    added to sweep.points (the main sweep's points kept; ones an earlier merge of this supplement added are
    re-timed) and its workloads to sweep.workloads."""
    ops = json.loads((folder / "ops.json").read_text())
    res = json.loads((folder / "times.json").read_text())
    sweep = dict(doc["sweep"])
    points = dict(sweep["points"])
    for key, sec in res["times"].items():
        spec = ops["ops"][key]
        # a point this supplement added before (same sources) takes the new time; the main sweep's own stay
        if key not in points or points[key].get("sources") == spec.get("sources"):
            points[key] = {**spec, "seconds": sec, "kernels": res["kernels"].get(key, [])}
    sweep["points"] = dict(sorted(points.items()))
    sweep["workloads"] = list(sweep["workloads"]) + [w for w in ops["workloads"] if w not in sweep["workloads"]]
    sweep["supplements"] = [{"folder": folder.as_posix(), "points": len(res["times"]), "errors": res["errors"],
                             "workloads": ops["workloads"],
                             "command": "OUT=... bash benchmarks/validation/run_h200_train_sweep.sh"}]
    return {**doc, "sweep": sweep}


def main(kind: str, *args: str) -> None:
    train: Path | None = None
    if "--train-sweep" in args:
        i = args.index("--train-sweep")
        train, args = Path(args[i + 1]), args[:i] + args[i + 2:]
    if kind == "as-is":  # a profile `dsocr-trace calibrate` wrote, factors and all
        src, out = args
        raw = Path(src).read_bytes()
        doc = json.loads(gzip.decompress(raw) if src.endswith(".gz") else raw)
    elif kind == "calibrated":
        src, inmodel, out = args
        doc = json.loads(Path(src).read_text())
        runs = json.loads(Path(inmodel).read_text())["runs"]
        doc = with_factors(doc, runs)
    elif kind == "legacy":
        folder, out = args
        doc = legacy_document(Path(folder))
    else:
        raise SystemExit("usage: build_profile.py as-is PROFILE OUT | calibrated PROFILE INMODEL OUT | "
                         "legacy FOLDER OUT")
    if train is not None:
        doc = with_train_sweep(doc, train)
    # the microbenchmark lists and fit inputs stay in the results folder; the package keeps what predicts
    packaged = {k: v for k, v in doc.items() if k != "microbench"}
    Path(out).write_bytes(gzip.compress(document_bytes(packaged), mtime=0))
    print(f"{out}: {len(doc['sweep']['points'])} points, factors {doc['factors']}")


if __name__ == "__main__":
    main(*sys.argv[1:])
