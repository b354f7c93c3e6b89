#!/usr/bin/env bash
# Issue 14.4 on a GPU: torch.compile per stage on workloads no compiled constant was fitted on (tiny, large and
# gundam 2x3 prefills; decode at batch 4, KV 500 and 2500), each stage's kernels by name (what inductor made).
# From the repo root on the GPU machine with the transformers 5.24 and orjson wheels in .whl/ (~6 min):
#   OUT=/path bash benchmarks/validation/run_h200_compile_heldout.sh
set -uo pipefail
OUT="${OUT:-./runs/gpu}"
mkdir -p "$OUT/prefill" "$OUT/decode"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)
timeout "${PREFILL_LIMIT:-330}" python3 -m dsocr_trace.validate.compile_harness --out "$OUT/prefill" \
  --modes "${MODES:-tiny,large,gundam:2x3}" --decode-kv '' 2>&1 | grep -v USDT > "$OUT/prefill/compile.log"
echo "prefill: rc=${PIPESTATUS[0]} $(( $(date +%s) - start )) s"; tail -8 "$OUT/prefill/compile.log"
left=$(( ${TOTAL_LIMIT:-560} - ($(date +%s) - start) ))
timeout "$left" python3 -m dsocr_trace.validate.compile_harness --out "$OUT/decode" --modes '' \
  --decode-kv "${KVS:-500,2500}" --batches "${BATCHES:-4}" 2>&1 | grep -v USDT > "$OUT/decode/compile.log"
echo "decode: rc=${PIPESTATUS[0]} total $(( $(date +%s) - start )) s"; tail -6 "$OUT/decode/compile.log"
ls -la "$OUT"/*
