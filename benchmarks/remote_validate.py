"""Predicted (`--implementation remote`) vs measured (the real remote code on a lent H200) for every committed
run; writes benchmarks/results/remote/validation.json and the tables of README.md's results section.

Run: `python benchmarks/remote_validate.py [--measured benchmarks/results/remote/measured.json.gz]`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dsocr_trace.validate.remote_check import compare, load, partition_target

HERE = Path(__file__).resolve().parent / "results" / "remote"
# the full card's figures, taken by the same probe as the partitions' (benchmarks/results/h200-partitions)
FULL_CARD_FIGURES = HERE.parent / "h200-partitions" / "full-card-session1" / "figures.json"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}%"


def tables(res: dict[str, Any]) -> str:
    lines = ["| run | stage | routing | predicted ms | measured ms | error | kernels pred/meas |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in res["rows"]:
        run = f"{r['phase']} {r['workload']} B{r['batch']}" + (f" KV{r['kv_len']}" if r["kv_len"] else "")
        lines.append(f"| {run} | {r['stage']} | {r['routing']} | {r['pred_device_s'] * 1e3:.3f} | "
                     f"{r['meas_device_s'] * 1e3:.3f} | {_pct(r['err'])} | {r['pred_kernels']}/{r['meas_kernels']} |")
    lines += ["", "| generate() B | KV mean | measured ms/token | predicted | host band | inside | kernels pred/meas | "
                  "syncs pred/meas |", "| ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |"]
    for lp in res["loops"]:
        lo, hi = lp["band_s"]
        lines.append(f"| {lp['batch']} | {lp['kv_mean']:.0f} | {lp['meas_wall_s'] * 1e3:.1f} | "
                     f"{lp['pred_wall_s'] * 1e3:.1f} | {lo * 1e3:.1f}-{hi * 1e3:.1f} | {lp['inside_band']} | "
                     f"{lp['pred_kernels']}/{lp['meas_kernels']:.0f} | {lp['pred_syncs']}/{lp['meas_syncs']:.0f} |")
    lines += ["", "| routing | stage | runs | median abs error | worst | median abs kernel-count error |",
              "| --- | --- | ---: | ---: | ---: | ---: |"]
    for routing, s in res["summary"].items():
        for st, v in s["stages"].items():
            lines.append(f"| {routing} | {st} | {v['n']} | {100 * v['median_abs_err']:.1f}% | "
                         f"{100 * v['max_abs_err']:.1f}% | {_pct(v['median_abs_kernel_err'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--measured", type=Path, default=HERE / "measured.json.gz")
    args = ap.parse_args()
    res = compare(load(args.measured))
    (HERE / "validation.json").write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    text = "# Full card (calibrated)\n\n" + tables(res)
    src = json.loads(FULL_CARD_FIGURES.read_text())
    for part in ("p32", "p66"):  # GPUs nobody calibrated: predicted from the full card's profile
        doc = load(HERE / part / "measured.json.gz")
        pres = compare(doc, partition_target(doc, src))
        (HERE / part / "validation.json").write_text(json.dumps(pres, indent=1, sort_keys=True) + "\n")
        text += f"\n# {part[1:]} SMs (not calibrated: the full card's profile transferred)\n\n" + tables(pres)
    (HERE / "tables.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
