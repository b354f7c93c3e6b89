"""GPU-side measurements that validate the trace-based latency model.

* `harness`: runs DeepSeek-OCR (random bf16 weights) per workload and phase, records per-module kernel time
  (torch.profiler), wall time (CUDA events), CUDA-graph decode replays and host-side op counts.
* `calibrate`: microbenchmarks (GEMM, grouped GEMM, SDPA, memory-bound ops, launch and host costs) that
  parameterise the latency model.

Both write one JSON file each; see the module docstrings for the formats.
"""
