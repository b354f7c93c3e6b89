#!/usr/bin/env bash
# Issue 10 on a GPU: one fine-tuning step per workload (validate/train_harness.py: per-stage, per-pass device
# time, step wall, peak memory) and torch.compile beside eager (validate/compile_harness.py). From the repo root
# on the GPU machine with the transformers 5.24 and orjson wheels in .whl/:
#   OUT=/path bash benchmarks/validation/run_h200_train_compile.sh
set -uo pipefail
OUT="${OUT:-./runs/gpu}"
mkdir -p "$OUT/train" "$OUT/compile"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)
timeout "${TRAIN_LIMIT:-250}" python3 -m dsocr_trace.validate.train_harness --out "$OUT/train" \
  --modes "${TRAIN_MODES:-tiny,base}" --batches "${TRAIN_BATCHES:-1,2,4}" --trainable "${TRAIN_WHAT:-decoder,lora,full}" \
  2>&1 | grep -v USDT > "$OUT/train/train.log"
echo "train: rc=${PIPESTATUS[0]} $(( $(date +%s) - start )) s"; tail -3 "$OUT/train/train.log"
left=$(( ${TOTAL_LIMIT:-560} - ($(date +%s) - start) ))
timeout "$left" python3 -m dsocr_trace.validate.compile_harness --out "$OUT/compile" \
  2>&1 | grep -v USDT > "$OUT/compile/compile.log"
echo "compile: rc=${PIPESTATUS[0]} total $(( $(date +%s) - start )) s"; tail -5 "$OUT/compile/compile.log"
ls -la "$OUT"/*
