#!/usr/bin/env bash
# GPU validation run: calibration microbenchmarks, operator benchmarks, then the per-module harness (every mode,
# decode at KV 300/1000/4000, batch 1 and 8, eager and CUDA-graph decode). Run from the repo root. Then, on any
# CPU: python scripts/build_profile.py $OUT src/dsocr_trace/hardware/profiles/<gpu>.json
#       python scripts/validate_h100.py $OUT
#   OUT=/path bash benchmarks/validation/run_gpu.sh [extra harness args, e.g. --quick or --modes base]
# Needs torch with CUDA; transformers (and deps) come from the carried wheels in .whl/.
set -euo pipefail
OUT="${OUT:-./runs/gpu}"
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi || true
python3 -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__)"
start=$(date +%s)
python3 -m dsocr_trace.validate.calibrate --out "$OUT/calibration.json" 2>&1 | tee "$OUT/calibrate.log" || echo "calibrate failed: rc=$?"
echo "calibrate: $(( $(date +%s) - start )) s"
# operator benchmarks: every distinct op of the traced workloads (ops file emitted on any machine with
#   python -m dsocr_trace.validate.opbench emit --out benchmarks/validation/ops-h100.json)
python3 -m dsocr_trace.validate.opbench run --ops benchmarks/validation/ops-h100.json --out "$OUT/optimes.json" \
  2>&1 | grep -v USDT | tee "$OUT/opbench.log" || echo "opbench failed: rc=$?"
echo "opbench: $(( $(date +%s) - start )) s"
python3 -m dsocr_trace.validate.harness --out "$OUT" "$@" 2>&1 | tee "$OUT/harness.log" || echo "harness finished with rc=$? (see runs with an error field)"
echo "total: $(( $(date +%s) - start )) s"
ls -la "$OUT"
