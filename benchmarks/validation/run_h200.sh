#!/usr/bin/env bash
# GPU run for the latency model (issue 8): the fixed calibration (`dsocr-trace calibrate`: probes,
# microbenchmarks, the operator sweep of validate/calsweep.py, host probe on calibration decode steps), then the
# per-module harness on the validation set: held-out workloads first (Gundam grids 1x3/2x2/2x4, batch 2/4/16,
# a 600-token prompt, decode at KV 2000/8000 and batch 2/4/16), then the calibration workloads (for the
# leave-one-out figures). Run from the repo root on the GPU machine with the transformers 5.24 and orjson wheels
# in .whl/:   OUT=/path bash benchmarks/validation/run_h200.sh
set -uo pipefail
OUT="${OUT:-./runs/gpu}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,clocks.max.sm,temperature.gpu,power.draw,power.limit \
  --format=csv | tee "$OUT/nvidia-smi.csv"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)"
start=$(date +%s)
CAL_LIMIT="${CAL_LIMIT:-260}"
timeout "$CAL_LIMIT" python3 -m dsocr_trace calibrate --out "$OUT/profile.json" 2>&1 | grep -v USDT > "$OUT/calibrate.log"
echo "calibrate: rc=${PIPESTATUS[0]} $(( $(date +%s) - start )) s"; tail -3 "$OUT/calibrate.log"
VAL_MODES="${VAL_MODES:-gundam:1x3,gundam:2x2,gundam:2x4,base@2,base@4,base@16,base+p600,tiny,small,base,large,gundam:2x3,gundam:3x3,base@8,base@32}"
VAL_DECODE="${VAL_DECODE:-1:2000,8000;2:2000;4:8000;16:2000,8000;1:300,1000,4000,7000;8:300,1000,4000,7000;32:1000,7000}"
left=$(( ${TOTAL_LIMIT:-550} - ($(date +%s) - start) ))
timeout "$left" python3 -m dsocr_trace.validate.harness --out "$OUT/val" --modes "$VAL_MODES" --decode "$VAL_DECODE" \
  --trace all 2>&1 | grep -v USDT > "$OUT/harness.log"
echo "harness: rc=${PIPESTATUS[0]} total $(( $(date +%s) - start )) s"; tail -2 "$OUT/harness.log"
cp "$OUT/val/measured.json" "$OUT/measured.json"
tar czf "$OUT/traces.tar.gz" -C "$OUT/val" traces && split -b 15m "$OUT/traces.tar.gz" "$OUT/traces.tar.gz."
rm -rf "$OUT/val" "$OUT/traces.tar.gz"
ls -la "$OUT"
