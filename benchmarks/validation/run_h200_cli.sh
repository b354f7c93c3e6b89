#!/usr/bin/env bash
# The committed H200 run of the latency model (issue 8), made with the CLI as a user would:
#   1. dsocr-trace calibrate: probes, microbenchmarks, the fixed operator sweep (validate/calsweep.py) and the
#      calibration workloads run in the model (host costs, in-model factors) -> profile.json + profile.inmodel.json
#   2. dsocr-trace validate: the held-out workloads (shapes in no calibration data) measured per module with
#      random weights, predicted with that profile, compared -> val/{measured,validation}.json, validation.md
# From the repo root on the GPU machine, with the transformers 5.24 and orjson wheels in .whl/:
#   OUT=/path bash benchmarks/validation/run_h200_cli.sh
set -uo pipefail
OUT="${OUT:-./runs/gpu}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false DSOCR_TRACE_CACHE=/tmp/dsocr-cache
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,clocks.max.sm,temperature.gpu,power.draw,power.limit \
  --format=csv | tee "$OUT/nvidia-smi.csv"
start=$(date +%s)
timeout "${CAL_LIMIT:-330}" python3 -m dsocr_trace calibrate --out "$OUT/profile.json" 2>&1 | grep -v USDT \
  > "$OUT/calibrate.log"
echo "calibrate: rc=${PIPESTATUS[0]} $(( $(date +%s) - start )) s"; tail -2 "$OUT/calibrate.log"
HELD_OUT="${HELD_OUT:-gundam:1x3,gundam:2x2,gundam:2x4,base@2,base@4,base@16,base+p600}"
HELD_DECODE="${HELD_DECODE:-1:2000,8000;2:2000;4:8000;16:2000,8000}"
left=$(( ${TOTAL_LIMIT:-560} - ($(date +%s) - start) ))
timeout "$left" python3 -m dsocr_trace validate --profile "$OUT/profile.json" --workloads "$HELD_OUT" \
  --decode "$HELD_DECODE" --out "$OUT/val" 2>&1 | grep -v USDT > "$OUT/validate.log"
echo "validate: rc=${PIPESTATUS[0]} total $(( $(date +%s) - start )) s"; grep -i "within" "$OUT/validate.log" | head -3
ls -la "$OUT" "$OUT/val"
