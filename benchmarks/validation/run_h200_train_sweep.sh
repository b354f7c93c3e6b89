#!/usr/bin/env bash
# Issue 14 item 3 on a GPU: time the training-step calibration sweep (backward and recompute ops of the
# CALIBRATION_TRAIN steps, optimizer kernels on synthetic tensor lists; built on meta here with
#   python -c "from dsocr_trace.validate.calsweep import build_train_sweep; ..." -> ops.json)
# then measure held-out training steps none of which is in the sweep (checkpointing on, LoRA rank 64, batch 2).
# From the repo root on the GPU machine with the transformers 5.24 and orjson wheels in .whl/:
#   OUT=/path bash benchmarks/validation/run_h200_train_sweep.sh
set -uo pipefail
OUT="${OUT:-./runs/gpu}"
mkdir -p "$OUT/sweep" "$OUT/train"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,memory.total --format=csv > "$OUT/sweep/gpu.csv"
# in 8 parts, each its own process: a kernel that faults (device-side assert) loses only its part
python3 - <<'PY'
import json, os
d = json.load(open("benchmarks/results/h200-train-sweep/ops.json")); keys = list(d["ops"]); n = 8
for i in range(n):
    part = dict(d, ops={k: d["ops"][k] for k in keys[i * len(keys) // n:(i + 1) * len(keys) // n]})
    json.dump(part, open(f"/tmp/part{i}.json", "w"))
PY
for i in 0 1 2 3 4 5 6 7; do
  timeout "${PART_LIMIT:-60}" python3 -m dsocr_trace.validate.opbench run --ops /tmp/part$i.json \
    --out "$OUT/sweep/times-$i.json" 2>&1 | grep -v USDT >> "$OUT/sweep/sweep.log"
  echo "part $i: rc=${PIPESTATUS[0]}"
done
python3 - "$OUT/sweep" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1]); parts = sorted(out.glob("times-*.json"))
merged = {"times": {}, "kernels": {}, "errors": {}, "elapsed_s": 0.0}
for p in parts:
    d = json.loads(p.read_text())
    for k in ("times", "kernels", "errors"):
        merged[k].update(d.get(k) or {})
    merged["elapsed_s"] += d["elapsed_s"]; merged["method"] = d["method"]; merged["schema"] = d["schema"]; p.unlink()
(out / "times.json").write_text(json.dumps(merged, sort_keys=True))
print(f"merged {len(parts)} parts: {len(merged['times'])} timed, {len(merged['errors'])} failed")
PY
echo "sweep: rc=${PIPESTATUS[0]} $(( $(date +%s) - start )) s"; tail -3 "$OUT/sweep/sweep.log"
left=$(( ${TOTAL_LIMIT:-560} - ($(date +%s) - start) ))
[ "$left" -gt 10 ] || { echo "train: skipped (no time left)"; exit 0; }
timeout "$left" python3 -m dsocr_trace.validate.train_harness --out "$OUT/train" \
  --modes "${TRAIN_MODES:-tiny,base}" --batches "${TRAIN_BATCHES:-2}" --trainable "${TRAIN_WHAT:-decoder,lora,full}" \
  --checkpointing on --lora-rank "${TRAIN_RANK:-64}" 2>&1 | grep -v USDT > "$OUT/train/train.log"
echo "train: rc=${PIPESTATUS[0]} total $(( $(date +%s) - start )) s"; tail -3 "$OUT/train/train.log"
ls -la "$OUT"/*
