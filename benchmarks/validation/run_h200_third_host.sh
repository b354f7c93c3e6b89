#!/usr/bin/env bash
# A third H200 host (issue 13.5): held-out workloads measured with `dsocr-trace validate` and predicted with the
# packaged H200 profile (calibrated on another machine), so the eager walls test the host band on a host no
# figure came from; then the host-only probe of that machine. From the repo root on the GPU machine with the
# transformers 5.24 and orjson wheels in .whl/ (~5 min):
#   OUT=/path bash benchmarks/validation/run_h200_third_host.sh
set -uo pipefail
OUT="${OUT:-./runs/gpu}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false DSOCR_TRACE_CACHE=/tmp/dsocr-cache
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv \
  | tee "$OUT/nvidia-smi.csv"
lscpu | grep -E "Model name|^CPU\(s\)|MHz" | tee "$OUT/lscpu.txt"
start=$(date +%s)
timeout "${VAL_LIMIT:-420}" python3 -m dsocr_trace validate --workloads "${HELD_OUT:-gundam:3x2,small@4,large@2,tiny@16,base+p300}" \
  --decode "${HELD_DECODE:-1:1500;4:3000,6000;12:2500}" --out "$OUT/val" 2>&1 | grep -v USDT > "$OUT/validate.log"
echo "validate: rc=${PIPESTATUS[0]} $(( $(date +%s) - start )) s"; tail -4 "$OUT/validate.log"
timeout 120 python3 -m dsocr_trace host --out "$OUT/host.json" 2>&1 | grep -v USDT | tail -3
echo "total $(( $(date +%s) - start )) s"; ls -la "$OUT" "$OUT/val"
