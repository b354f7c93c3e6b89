#!/usr/bin/env bash
# GPUs nobody calibrated, carved out of the lent H200 with CUDA green contexts (issue 13): for each SM count,
# the figures a spec needs (large BF16 matmul, large copy, kernel floor, host cost), the quick operator sweep
# timed inside the partition (for the leave-one-partition-out fits) and the held-out workloads run per module
# with random weights inside the partition. "full" is the whole card through the same path.
# From the repo root on the GPU machine, with the wheels in .whl/:
#   OUT=/path PARTS="full 32 66" bash benchmarks/validation/run_h200_partitions.sh
set -uo pipefail
OUT="${OUT:-./runs/partitions}"
PARTS="${PARTS:-full 16 32 66 100}"
WORK="${WORK:-base@2,gundam:1x3,small@4,base+p600}"
DECODE="${DECODE:-1:2000;4:8000}"
mkdir -p "$OUT/res"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false DSOCR_TRACE_CACHE=/tmp/dsocr-cache
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,clocks.max.sm,temperature.gpu,power.draw,power.limit \
  --format=csv > "$OUT/res/nvidia-smi.csv"
start=$(date +%s)
for p in $PARTS; do
  d="$OUT/res/p$p"; mkdir -p "$d"
  sms=(); [ "$p" = full ] || sms=(--sms "$p")
  t=$(date +%s)
  timeout "${PART_LIMIT:-280}" python3 -m dsocr_trace.validate.partition "${sms[@]}" --out "$d" --sweep \
    --workloads "$WORK" --decode "$DECODE" 2>&1 | grep -v USDT > "$d/log.txt"
  echo "partition $p: rc=${PIPESTATUS[0]} $(( $(date +%s) - t )) s (total $(( $(date +%s) - start )) s)"
  grep -E "figures|wrote|FAILED|Error" "$d/log.txt" | head -5
done
tar -C "$OUT/res" -czf "$OUT/partitions.tar.gz" .
ls -la "$OUT"
