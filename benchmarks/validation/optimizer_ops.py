"""Diagnostic specs: the optimizer-pass ops of the committed training validation steps (decoder, LoRA r16 and
full fine-tuning; the optimizer lists depend only on the trainable set), written for `validate.opbench run`.

These are the validation runs' own shapes: timed only to explain the optimizer pass's miss
(benchmarks/results/h200-optimizer-ops), never merged into a profile.

    python benchmarks/validation/optimizer_ops.py OUT.json        (any CPU, about a minute)
"""

from __future__ import annotations

import json
import sys

from dsocr_trace.costs import cost_of
from dsocr_trace.models.training import TrainConfig
from dsocr_trace.train.analysis import run_train_analysis
from dsocr_trace.validate.opbench import spec_key, spec_of
from dsocr_trace.workload import make_workload

MODEL = "deepseek-ai/DeepSeek-OCR"


def main(out: str) -> None:
    ops: dict[str, dict[str, object]] = {}
    for trainable in ("decoder", "lora", "full"):
        cfg = TrainConfig(optimizer="adamw", trainable=trainable, lora_rank=16, checkpointing=False,
                          precision="bf16")
        ta = run_train_analysis(MODEL, make_workload("tiny", batch=1, output_tokens=1), cfg)
        for n in ta.trace.nodes:
            c = cost_of(n)
            if n.pass_kind != "optimizer" or c is None or c.kernels == 0:
                continue
            s = spec_of(n) | {"sources": [f"optimizer:{trainable}"]}
            ops.setdefault(spec_key(s), s)
    with open(out, "w") as f:
        json.dump({"schema": "dsocr-trace/opbench-ops/1", "model": MODEL, "ops": ops}, f, sort_keys=True)
    print(f"{len(ops)} specs -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
