"""Kernel families of the fixed calibration sweep timed inside H200 SM partitions (issue 13's transfer rule).

The partitions' quick sweeps (benchmarks/results/h200-partitions) keep every 4th op of the fixed sweep: four
decode-attention shapes at KV <= 700 and no grouped GEMM at all, so the cross-GPU rule for those families had
no op-level evidence. This times every decode-attention, grouped-GEMM and convolution op of the fixed sweep
(`validate.calsweep.build_sweep`, the same ladders the full card is calibrated on; none is a validation
workload's shape) on the full card and inside each partition, in one session, for the leave-one-partition-out
check in scripts/cross_gpu.py.

On the GPU machine, from the repo root, with the wheels in /tmp/site:
    PYTHONPATH=/tmp/site:src python benchmarks/validation/partition_families.py --out DIR [--parts full,16,32,66,100]
writes DIR/ops.json (the specs timed) and DIR/p<N>.json (opbench times, kernel names, the probe's matmul rate
that shows the partition took).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

FAMILY_OPS = ("aten._grouped_mm.default", "aten.convolution.default")


def is_selected(spec: dict[str, Any]) -> bool:
    """Decode attention (one query row), grouped GEMMs and convolutions."""
    if spec["op"] == "attention":
        return int(spec["inputs"][0]["shape"][-2]) == 1
    return spec["op"] in FAMILY_OPS


def family_ops() -> dict[str, Any]:
    from dsocr_trace.validate.calsweep import build_sweep

    sweep = build_sweep()
    return {"schema": sweep["schema"], "model": sweep["model"],
            "ops": {k: v for k, v in sorted(sweep["ops"].items()) if is_selected(v)}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--parts", default="full,16,32,66,100", help="SM counts ('full': the whole card)")
    args = ap.parse_args(argv)
    import torch

    from dsocr_trace.validate import opbench, partition

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = family_ops()
    (out / "ops.json").write_text(json.dumps(doc, sort_keys=True))
    print(f"{len(doc['ops'])} ops", flush=True)
    for p in [x for x in args.parts.split(",") if x]:
        sms = None if p == "full" else int(p)

        def work(sms: int | None = sms) -> dict[str, Any]:
            dev = torch.device("cuda", 0)
            t0 = time.perf_counter()
            probe = partition.probe(sms)
            res = opbench.run(doc["ops"], dev, log_every=0)
            return {"schema": "dsocr-trace/partition-ops/1", "sms": sms, "probe": probe,
                    "device": torch.cuda.get_device_name(0), "wall_s": time.perf_counter() - t0, **res}

        res = partition.run_in_partition(sms, work)
        (out / f"p{p}.json").write_text(json.dumps(res, sort_keys=True, indent=1))
        print(f"partition {p}: probe {res['probe']['matmul_4096_tflops']:.0f} TFLOP/s, {len(res['times'])} ops "
              f"({len(res['errors'])} failed) in {res['wall_s']:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
