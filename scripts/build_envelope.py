"""The validated envelope: what the committed GPU measurements cover, per catalog GPU, as packaged data.

    python scripts/build_envelope.py      # writes src/dsocr_trace/hardware/validated.json

Reads every benchmarks/results/**/measured*.json (validate, train and compile harness runs on full cards; SM
partitions are other GPUs and the host-probe runs, made
under deliberately loaded CPUs, are left out) and records, per GPU and phase (prefill, decode, train), the
executions measured and the batch and KV-length range. tests/test_confidence.py rebuilds it and compares, so the
package cannot claim a range the committed measurements do not hold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "dsocr_trace" / "hardware" / "validated.json"
GPU_KEYS = {"NVIDIA H200": "h200", "NVIDIA H100 80GB HBM3": "h100"}


def envelope(root: Path = ROOT) -> dict[str, Any]:
    gpus: dict[str, dict[str, dict[str, Any]]] = {}
    for f in sorted((root / "benchmarks" / "results").rglob("measured*.json")):
        rel = f.relative_to(root).as_posix()
        if "partitions" in rel or "h200-host" in rel:  # other GPUs; walls under deliberately loaded hosts
            continue
        doc = json.loads(f.read_text())
        dev = doc.get("device")
        key = GPU_KEYS.get(dev.get("name", "") if isinstance(dev, dict) else str(dev or ""))
        if key is None:
            continue
        for r in doc.get("runs", []):
            if "error" in r:
                continue
            w = r["workload"]
            phase = "train" if "train" in r else str(w["phase"])
            e = gpus.setdefault(key, {}).setdefault(phase, {"executions": [], "batch": [w["batch"], w["batch"]],
                                                             "kv_len": None, "sources": []})
            ex = str(r.get("execution") or "eager")
            if ex not in e["executions"]:
                e["executions"].append(ex)
            e["batch"] = [min(e["batch"][0], w["batch"]), max(e["batch"][1], w["batch"])]
            if w.get("kv_len"):
                kv = int(w["kv_len"])
                e["kv_len"] = [kv, kv] if e["kv_len"] is None else [min(e["kv_len"][0], kv), max(e["kv_len"][1], kv)]
            if rel not in e["sources"]:
                e["sources"].append(rel)
    for phases in gpus.values():
        for e in phases.values():
            e["executions"].sort()
    return {"schema": "dsocr-trace/validated/1", "gpus": dict(sorted(gpus.items()))}


def main() -> None:
    OUT.write_text(json.dumps(envelope(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
