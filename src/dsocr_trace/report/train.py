"""report.json's `train` section: one training step's counts per pass, stage, module and module type, its
memory and (with a device) its predicted time; plus the run-folder files of a training analysis."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from dsocr_trace.report.aggregate import _add, _zero, coverage
from dsocr_trace.report.units import si
from dsocr_trace.trace.ir import PASSES, self_and_ancestors
from dsocr_trace.train.analysis import TrainAnalysis


def _by_pass() -> dict[str, dict[str, float]]:
    return {p: _zero() for p in PASSES}


def _finish(acc: dict[str, dict[str, float]]) -> dict[str, Any]:
    total = _zero()
    for p in PASSES:
        for k in total:
            total[k] += acc[p][k]
    return dict(acc) | {"total": total}


def pass_counts(ta: TrainAnalysis) -> dict[str, Any]:
    """Counts per pass, per (stage, pass), per (module, pass) inclusive and per (module class, pass)."""
    tr, nc = ta.trace, ta.costs
    passes = _by_pass()
    stages: dict[str, dict[str, dict[str, float]]] = {}
    modules: dict[str, dict[str, dict[str, float]]] = {}
    types: dict[str, dict[str, dict[str, float]]] = {}
    for n, c in zip(tr.nodes, nc.eager, strict=True):
        if n.members:
            continue  # semantic group nodes: their members carry the counts
        p = n.pass_kind
        _add(passes[p], c)
        _add(stages.setdefault(n.stage, _by_pass())[p], c)
        _add(types.setdefault(n.module_type or "Root", _by_pass())[p], c)
        for path in self_and_ancestors(n.module_path):
            _add(modules.setdefault(path, _by_pass())[p], c)
    mods = {}
    for path, acc in sorted(modules.items()):
        mods[path] = _finish(acc) | {"module_type": tr.module_types.get(path, "Root" if path == "" else "")}
    return {
        "passes": _finish(passes),
        "stages": {s: _finish(a) for s, a in sorted(stages.items())},
        "modules": mods,
        "module_types": {t: _finish(a) for t, a in sorted(types.items())},
    }


def train_section(ta: TrainAnalysis, memory: dict[str, Any], predictions: dict[str, Any] | None) -> dict[str, Any]:
    tr = ta.trace
    meta = tr.meta
    counts = pass_counts(ta)
    section: dict[str, Any] = {
        "config": ta.config.to_dict(),
        "trace": {"tracer": tr.tracer, "nodes": len(tr.nodes), "batch": meta["batch"], "tokens": meta["tokens"],
                  "node_ranges": meta["marks"], "checkpointed_layers": len(meta["checkpointed"]),
                  "attention_kernels": _attention_kernels(ta)},
        "params": {"total": meta["params"]["total"], "trainable": meta["params"]["trainable"],
                   "with_gradient": len(meta["grads"])},
        **counts,
        "coverage": coverage({"train": tr}, {"train": ta.costs}),
        "memory": memory,
    }
    if predictions is not None:
        section["predictions"] = predictions
    return section


def _attention_kernels(ta: TrainAnalysis) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in ta.trace.nodes:
        if n.op == "attention":
            k = f"{n.pass_kind}:{n.attrs.get('kernel', '')}"
            out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items()))


# -- run-folder files -------------------------------------------------------------------------------------------

NODE_FIELDS = ("id", "pass", "stage", "module_path", "module_type", "op", "kind", "tc_flops", "cc_flops",
               "bytes_read", "bytes_written", "kernels", "fwd_node")


def write_train_nodes(ta: TrainAnalysis, path: Path) -> None:
    """train_nodes.csv: one row per traced op of the step (semantic group nodes skipped, as in the totals)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(NODE_FIELDS)
        for n, c in zip(ta.trace.nodes, ta.costs.eager, strict=True):
            if n.members:
                continue
            w.writerow([n.id, n.pass_kind, n.stage, n.module_path, n.module_type, n.op,
                        c.kind if c else "uncosted", c.tc_flops if c else 0.0, c.cc_flops if c else 0.0,
                        c.bytes_read if c else 0.0, c.bytes_written if c else 0.0, c.kernels if c else 0,
                        n.attrs.get("fwd_node", "")])


def train_markdown(report: dict[str, Any]) -> str:
    """train.md: the step per stage and pass, memory, and predicted time when present."""
    t = report["train"]
    cfg = t["config"]
    wl = report["workload"]
    lines = [f"# Training step: {report['model']['id']}, {wl['label']} batch {wl['batch']}", "",
             f"optimizer {cfg['optimizer']}, trainable {cfg['trainable']}"
             + (f" (LoRA rank {cfg['lora_rank']})" if cfg["lora_rank"] else "")
             + f", precision {cfg['precision']}, activation checkpointing {'on' if cfg['checkpointing'] else 'off'};"
             f" trainable parameters {t['params']['trainable']:,} of {t['params']['total']:,}", "",
             "| stage | pass | tensor-core FLOP | CUDA-core FLOP | bytes | kernels | predicted device ms |",
             "|---|---|---:|---:|---:|---:|---:|"]
    preds = (t.get("predictions") or {}).get("stages", {})
    for stage, acc in t["stages"].items():
        for p in (*[q for q in acc if q != "total"], "total"):
            a = acc[p]
            if not a["ops"]:
                continue
            dev = preds.get(stage, {}).get("passes", {}).get(p, {}).get("device_s") if p != "total" else \
                preds.get(stage, {}).get("device_s")
            lines.append(f"| {stage} | {p} | {si(a['tc_flops'], 'FLOP')} | {si(a['cc_flops'], 'FLOP')} | "
                         f"{si(a['bytes'], 'B')} | {int(a['kernels'])} | "
                         f"{'-' if dev is None else f'{dev * 1e3:.3f}'} |")
    m = t["memory"]
    pk = m["peak"]
    lines += ["", "| memory | bytes |", "|---|---:|",
              f"| weights | {si(m['weights_bytes'], 'B')} |",
              f"| gradients (all trainable) | {si(m['gradients_bytes'], 'B')} |",
              f"| optimizer states | {si(m['optimizer_state_bytes'], 'B')} |",
              f"| saved activations (end of forward) | {si(m['saved_activations_bytes'], 'B')} |",
              f"| peak: saved activations live | {si(pk['saved_activations_bytes'], 'B')} |",
              f"| peak: gradients live | {si(pk['gradients_bytes'], 'B')} |",
              f"| peak: transient | {si(pk['transient_bytes'], 'B')} |",
              f"| peak allocated (weights + states + live) | {si(pk['allocated_bytes'], 'B')} |",
              f"| peak total (+ runtime reserve) | {si(pk['total_bytes'], 'B')} |"]
    if "fits" in m:
        lines.append(f"| fits on the device | {'yes' if m['fits'] else 'no'} "
                     f"(headroom {si(m['headroom_bytes'], 'B')}) |")
    pr = t.get("predictions")
    if pr:
        s = pr["step"]
        lines += ["", f"Predicted on {pr['device']['name']} ({pr['execution']}): step wall {s['wall_s'] * 1e3:.2f} ms, "
                  f"device {s['device_s'] * 1e3:.2f} ms (forward {pr['passes']['forward']['device_s'] * 1e3:.2f}, "
                  f"backward {pr['passes']['backward']['device_s'] * 1e3:.2f}, recompute "
                  f"{pr['passes']['recompute']['device_s'] * 1e3:.2f}, optimizer "
                  f"{pr['passes']['optimizer']['device_s'] * 1e3:.2f})."]
    return "\n".join(lines) + "\n"
