"""GPU-side measurements that validate the trace-based latency model: a library the GPU commands call.

* `random_model`: DeepSeek-OCR with random bf16 weights on the device, a workload's inputs, the device's description;
* `profiling`: module ranges, the kernel walk of a profiled step, stage walls and the summary over repeats;
* `harness`: the inference measurement (per-module kernel time, walls, CUDA-graph decode, host op counts) into one
  `dsocr-trace/measured/1` record (`inputs.MeasuredFile` checks it); `train_harness`, `compile_harness` and
  `remote_harness` fill the same record for a training step, torch.compile and the official remote code;
* `calibrate`, `calsweep`, `opbench`, `hostprobe`: the calibration sweep, its operator replay and the host probe;
* `compare`, `offline`, `chrome`: predicted vs measured, per run, module and stage.
"""
