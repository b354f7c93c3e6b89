#!/usr/bin/env bash
# `dsocr-trace calibrate --quick` timed end to end on the GPU machine (issue 13: <= 90 s), unpinned, no load.
# From the repo root with the wheels in .whl/:  OUT=/path bash benchmarks/validation/run_h200_quick.sh
set -uo pipefail
DEST="${OUT:-./runs/gpu}"
mkdir -p "$DEST/quick"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false DSOCR_TRACE_CACHE=/tmp/dsocr-cache
nvidia-smi --query-gpu=name,driver_version --format=csv > "$DEST/nvidia-smi.csv"
s=$(date +%s.%N)
timeout "${CAL_LIMIT:-300}" python3 -m dsocr_trace calibrate --quick --out "$DEST/quick/profile.json" 2>&1 \
  | grep -v USDT > "$DEST/quick-calibrate.log"
rc=${PIPESTATUS[0]}
echo "calibrate --quick: rc=$rc wall $(python3 -c "import time; print(round(time.time() - $s, 1))") s" \
  | tee "$DEST/quick-time.txt"
tail -3 "$DEST/quick-calibrate.log"
