#!/usr/bin/env bash
# Issue 13 item 4 on a GPU: does the host-only probe (CPU tensors, no GPU) predict the host cost of eager
# decode? One GPU, several host speeds made on its own machine: the process pinned to one core, alone, with a
# busy loop on that core's SMT sibling, and sharing its core with one and two busy loops (time-sliced). At each
# setting: the CPU probe and calibrate's CUDA host probe (validate.hostprobe --cuda), then eager decode steps
# measured by the harness (tiny, KV 300/1000/3000, batch 1 and 4; wall and kernel time per step).
# Then `dsocr-trace calibrate --quick` timed end to end (unpinned, no load).
# From the repo root on the GPU machine with the transformers 5.24 and orjson wheels in .whl/:
#   OUT=/path bash benchmarks/validation/run_h200_host.sh     (everything packed into $OUT/host-run.tar.gz)
set -uo pipefail
DEST="${OUT:-./runs/gpu}"
OUT=/tmp/host-run
mkdir -p "$OUT" "$DEST"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false DSOCR_TRACE_CACHE=/tmp/dsocr-cache
export OMP_NUM_THREADS=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > "$OUT/nvidia-smi.csv"
grep -m1 "model name" /proc/cpuinfo > "$OUT/cpu.txt"; nproc >> "$OUT/cpu.txt"
CORE="${CORE:-3}"
SIB=$(tr ',-' '\n\n' < /sys/devices/system/cpu/cpu$CORE/topology/thread_siblings_list | grep -vx "$CORE" | head -1)
echo "core $CORE, SMT sibling ${SIB:-none}" >> "$OUT/cpu.txt"
start=$(date +%s)
busy() { taskset -c "$1" python3 -c "while True: pass" > /dev/null 2>&1 & echo $!; }
for setting in alone smt share1 share2; do
  pids=()
  case $setting in
    smt) [ -n "$SIB" ] && pids+=("$(busy "$SIB")") ;;
    share1) pids+=("$(busy "$CORE")") ;;
    share2) pids+=("$(busy "$CORE")" "$(busy "$CORE")") ;;
  esac
  sleep 1
  d="$OUT/$setting"; mkdir -p "$d"
  taskset -c "$CORE" python3 -m dsocr_trace.validate.hostprobe --cuda --label "$setting" --out "$d/probe.json" \
    2>&1 | grep -v USDT
  timeout "${RUN_LIMIT:-150}" taskset -c "$CORE" python3 -m dsocr_trace.validate.harness --out "$d" --modes "" \
    --decode "1:300,1000,3000;4:1000" --no-graph --trace none 2>&1 | grep -v USDT > "$d/harness.log"
  echo "$setting: harness rc=${PIPESTATUS[0]} at $(( $(date +%s) - start )) s"
  for p in "${pids[@]}"; do kill "$p"; done
  wait 2>/dev/null
done
s2=$(date +%s)
timeout "${CAL_LIMIT:-200}" python3 -m dsocr_trace calibrate --quick --out "$OUT/quick/profile.json" 2>&1 \
  | grep -v USDT > "$OUT/quick-calibrate.log"
echo "calibrate --quick: rc=${PIPESTATUS[0]} $(( $(date +%s) - s2 )) s"; tail -3 "$OUT/quick-calibrate.log"
ls -la "$OUT"/*
tar -C "$OUT" -czf "$DEST/host-run.tar.gz" .
