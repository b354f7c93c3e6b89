"""Operator benchmarks: time every distinct traced op of the model, standalone, on the local GPU.

`emit` (any machine, meta device): trace workloads, keep one spec per distinct op key (op, shapes, strides,
dtypes, arguments), write them to JSON. `run` (GPU): rebuild each op's inputs with random data of the
traced shapes and strides (index tensors in range, MoE offsets summing to the rows, a scatter mask that fits
its source), replay the aten op (or SDPA for attention nodes) back to back behind a GPU sleep so the events
time kernels and not Python, and write {key: seconds}. Weights rotate through copies larger than L2 (in the
model they are cold at each use); activations stay put (in the model the producer just wrote them).
The times go into the profile's op table; predictions use them for every node whose key matches.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import torch
import torch.nn.functional as F

from dsocr_trace.trace.ir import ATTENTION, OpNode
from dsocr_trace.trace.opspec import DTYPES, call_arguments, storage_extent
from dsocr_trace.validate.events import child_events

SCHEMA_OPS = "dsocr-trace/ops/1"
SCHEMA_TIMES = "dsocr-trace/optimes/1"
_SKIP = ("sync.", "aten._local_scalar_dense", "aten.item")
ROTATE_BYTES = 160 << 20  # > 2x the 50-60 MB L2 of an H100/H200


def spec_of(node: OpNode) -> dict[str, Any]:
    return {"op": node.op, "inputs": [{"shape": list(t.shape), "strides": list(t.strides), "dtype": t.dtype,
                                       "offset": t.storage_offset, "param": t.param is not None}
                                      for t in node.inputs],
            "call": node.call, "attrs": node.attrs if node.op == ATTENTION else {}}


def spec_key(spec: dict[str, Any]) -> str:
    """The op key of a spec: equal to `trace.opkey.op_key(node)` when spec = spec_of(node)."""
    tensors = [[list(r["shape"]), list(r["strides"]), r["dtype"], int(r["offset"])] for r in spec["inputs"]]
    if spec["op"] == ATTENTION:
        a = spec["attrs"]
        sig: dict[str, Any] = {"op": spec["op"], "tensors": tensors, "causal": a["causal"], "mask": a["mask"],
                               "scale": a["scale"]}
    else:
        sig = {"op": spec["op"], "tensors": tensors, "call": spec["call"]}
    if spec.get("offsets") is not None:
        sig["offsets"] = list(spec["offsets"])
    blob = orjson.dumps(sig, option=orjson.OPT_SORT_KEYS)
    return f"{spec['op']}#{hashlib.sha1(blob).hexdigest()[:16]}"


def emit_sources(model_id: str, workloads: list[tuple[str, Any, list[int]]]) -> dict[str, dict[str, Any]]:
    """workloads: (label, Workload, decode KV lengths). One spec per distinct op key over all their nodes, each
    with `sources`: the labels of the workloads whose traces hold it."""
    from dsocr_trace.analyze import load_model, trace_phase
    from dsocr_trace.costs import cost_of
    from dsocr_trace.trace.opkey import op_key

    lm = load_model(model_id)
    ops: dict[str, dict[str, Any]] = {}
    for label, wl, kvs in workloads:
        traces = [trace_phase(lm, model_id, wl, "prefill")] if not kvs else []
        traces += [trace_phase(lm, model_id, wl, "decode", kv_len=kv) for kv in kvs]
        for tr in traces:
            for n in tr.nodes:
                c = cost_of(n)
                if c is None or c.kernels == 0 or n.op.startswith(_SKIP):
                    continue
                key = op_key(n)
                if key is None:
                    continue
                spec = ops.setdefault(key, {**spec_of(n), "sources": []})
                if label not in spec["sources"]:
                    spec["sources"].append(label)
    return dict(sorted(ops.items()))


def emit(model_id: str, workloads: list[tuple[Any, list[int]]]) -> dict[str, Any]:
    """workloads: (Workload, decode KV lengths). Returns {"schema", "ops": {key: spec}} over all their nodes."""
    labelled = [(f"{wl.label}@{wl.batch}" + (":decode" if kvs else ""), wl, kvs) for wl, kvs in workloads]
    return {"schema": SCHEMA_OPS, "ops": emit_sources(model_id, labelled)}


# -- GPU side ---------------------------------------------------------------------------------------------
def _tensor(ref: dict[str, Any], device: torch.device, gen: torch.Generator, high: int = 64) -> torch.Tensor:
    dtype = DTYPES.get(ref["dtype"], torch.float32)
    shape, strides, off = ref["shape"], ref["strides"], int(ref["offset"])
    extent = storage_extent(ref)
    if dtype.is_floating_point:
        base = torch.randn(extent, device=device, dtype=torch.float32, generator=gen).to(dtype) * 0.5
    elif dtype == torch.bool:
        base = torch.rand(extent, device=device, generator=gen) < 0.5
    else:
        base = torch.randint(0, max(1, high), (extent,), device=device, dtype=dtype, generator=gen)
    return base.as_strided(shape, strides, off)


def _fill_int(t: torch.Tensor, high: int, gen: torch.Generator) -> None:
    t.copy_(torch.randint(0, max(1, high), t.shape, device=t.device, dtype=t.dtype, generator=gen))


def _prepare(spec: dict[str, Any], device: torch.device, gen: torch.Generator) -> list[torch.Tensor]:
    """Inputs with values the op accepts: in-range indices, valid offsets, a mask that fits."""
    refs = spec["inputs"]
    tensors = [_tensor(r, device, gen) for r in refs]
    op = spec["op"]
    args = (spec.get("call") or {}).get("args") or []
    if op.startswith(("aten.index.Tensor", "aten.index_put")) and len(args) > 1:
        self_shape = refs[0]["shape"]
        for d, ix in enumerate(args[1]):
            if isinstance(ix, dict) and "t" in ix and not tensors[ix["t"]].dtype == torch.bool:
                _fill_int(tensors[ix["t"]], self_shape[d], gen)
    elif op.startswith("aten.embedding"):
        _fill_int(tensors[1], refs[0]["shape"][0], gen)
    elif op.startswith("aten._grouped_mm") and len(tensors) > 2:
        if spec.get("offsets") is not None:  # the routing the spec was made with (cumulative rows per expert)
            cuts = torch.tensor(spec["offsets"], device=device)
        else:
            # grouped over A's rows (forward, input grad) or over the shared K dim (weight grad: 2-D x 2-D)
            grouped_dim = 1 if len(refs[0]["shape"]) == 2 and len(refs[1]["shape"]) == 2 else 0
            rows, groups = refs[0]["shape"][grouped_dim], refs[2]["shape"][0]
            cuts = torch.linspace(0, rows, groups + 1, device=device)[1:].round()
        tensors[2].copy_(cuts.to(tensors[2].dtype))
    elif op.startswith("aten._scaled_dot_product_efficient_attention") and len(refs) > 4:
        # CUDA's SDPA pads the bias rows to 16 bytes before this kernel (meta traces do not): replay it padded
        at = 4 if "backward" in op else 3
        b = tensors[at]
        if b.dim() and b.stride(-1) == 1 and (b.stride(-2) * b.element_size()) % 16:
            last = b.shape[-1]
            padded = -(-last * b.element_size() // 16) * 16 // b.element_size()
            wide = torch.empty((*b.shape[:-1], padded), dtype=b.dtype, device=device)
            tensors[at] = wide[..., :last].copy_(b)
    elif op.startswith(("aten._fused_adam_", "aten._fused_adamw_")):
        # (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps): a training step's second moments
        # are >= 0 and its step counts >= 1; random normals put sqrt(v) into NaN, which ran 1.5x slower on an H200
        # (21.5 vs 14.1 ms over 118 x 23M elements: benchmarks/validation/fused_adamw_diagnostics.py states)
        lists = [a for a in args if isinstance(a, list)]
        for t in (lists[3] if len(lists) > 3 else []) + (lists[4] if len(lists) > 4 else []):
            if isinstance(t, dict) and "t" in t:
                tensors[t["t"]].abs_()
        for t in lists[5] if len(lists) > 5 else []:
            if isinstance(t, dict) and "t" in t:
                tensors[t["t"]].fill_(1.0)
    elif op.startswith("aten.masked_scatter"):
        mask = tensors[1]
        row = refs[0]["shape"][-1]
        # the forward scatters a source tensor; its backward gathers into the source's sizes (third argument)
        source_numel = tensors[2].numel() if len(tensors) > 2 else math.prod(args[2])
        rows_true = source_numel // row
        flat = torch.zeros(mask.numel(), dtype=torch.bool, device=device)
        flat[:rows_true] = True
        mask.copy_(flat.view(mask.shape))
    return tensors


def _runner(spec: dict[str, Any], sets: list[list[torch.Tensor]], device: torch.device) -> Any:
    if spec["op"] == ATTENTION:
        a = spec["attrs"]

        def attn(i: int) -> Any:
            t = sets[i % len(sets)]
            mask = t[3] if len(t) > 3 else None
            return F.scaled_dot_product_attention(t[0], t[1], t[2], attn_mask=mask, is_causal=bool(a["causal"]),
                                                  scale=a["scale"])
        return attn
    name = spec["op"]
    ns, _, rest = name.partition(".")
    opname, _, overload = rest.partition(".")
    fn = getattr(getattr(getattr(torch.ops, ns), opname), overload or "default")
    built = [call_arguments(spec, t, device) for t in sets]

    def run(i: int) -> Any:
        a, k = built[i % len(built)]
        return fn(*a, **k)
    return run


def kernel_us(ev: Any) -> float:
    """Sum of the kernels (memcpy/memset included) launched under a profiler event, over its CPU subtree.

    Not the range's GPU span: an op that launches several kernels with host work between them (sort: copy,
    arange, copy, sort) would count the idle gaps, which the in-model measurement does not."""
    us = sum(float(k.duration) for k in ev.kernels if not k.name.startswith("op|"))
    return us + sum(kernel_us(ch) for ch in child_events(ev))


def kernel_names(ev: Any) -> list[str]:
    """Names of the kernels launched under a profiler event, in launch order (what the library picked)."""
    names = [str(k.name) for k in ev.kernels if not k.name.startswith("op|")]
    for ch in child_events(ev):
        names += kernel_names(ch)
    return names


def _spec_bytes(spec: dict[str, Any], reps: int) -> int:
    """Device bytes a prepared spec holds: inputs (parameters once per rotation set) and one output's worth."""
    total = 0
    biggest = 0
    for r in spec["inputs"]:
        nbytes = storage_extent(r) * 4
        biggest = max(biggest, nbytes)
        sets = max(1, min(reps + 1, math.ceil(ROTATE_BYTES / max(nbytes, 1)))) if r["param"] else 1
        total += nbytes * sets
    return total + 2 * biggest


CHUNK_OPS = 100  # bounded profiler sessions keep event processing fast
CHUNK_BYTES = 24 << 30  # inputs prepared at once


def _chunks(ops: dict[str, Any], reps: int) -> list[list[str]]:
    out: list[list[str]] = [[]]
    used = 0
    for key, spec in ops.items():
        b = _spec_bytes(spec, reps)
        if out[-1] and (len(out[-1]) >= CHUNK_OPS or used + b > CHUNK_BYTES):
            out.append([])
            used = 0
        out[-1].append(key)
        used += b
    return [c for c in out if c]


def _make_runner(spec: dict[str, Any], device: torch.device, gen: torch.Generator, reps: int) -> Any:
    base = _prepare(spec, device, gen)
    param_bytes = sum(t.numel() * t.element_size() for t, r in zip(base, spec["inputs"], strict=True) if r["param"])
    n = 1 if param_bytes == 0 else max(1, min(reps + 1, math.ceil(ROTATE_BYTES / max(param_bytes, 1))))
    sets = [base] + [[(t.clone() if r["param"] else t) for t, r in zip(base, spec["inputs"], strict=True)]
                     for _ in range(n - 1)]
    fn = _runner(spec, sets, device)
    fn(0)
    fn(1)
    return fn


def run(ops: dict[str, Any], device: torch.device, reps: int = 5, log_every: int = 200) -> dict[str, Any]:
    """Kernel time per op: the sum of the kernels torch.profiler attributes to the CPU ops under a
    record_function range around each call (the validation harness's per-module measure), median over `reps`
    calls after a warm-up. Back-to-back elapsed time would add inter-kernel gaps and host stalls.

    Ops are prepared and timed in chunks bounded by count and device memory, then freed. Also returns the
    kernel names of each op's first timed call (`kernels`): the library's choice of kernel (tile shape)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile, record_function

    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    times: dict[str, float] = {}
    names: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    t0 = time.perf_counter()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    per_call: dict[str, list[float]] = {}
    done = 0
    for part in _chunks(ops, reps):
        runners: dict[str, Any] = {}
        for key in part:
            try:
                runners[key] = _make_runner(ops[key], device, gen, reps)
            except Exception as exc:  # an op we cannot replay standalone: recorded, predicted by its family
                errors[key] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        with profile(activities=activities) as prof:
            for key, fn in runners.items():
                for r in range(reps):
                    with record_function(f"op|{key}|{r}"):
                        fn(2 + r)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        for ev in prof.events():
            # the CPU-side range only: the profiler also emits a same-named GPU annotation with no kernels
            if ev.name.startswith("op|") and ev.cpu_parent is None and ev.device_type == DeviceType.CPU:
                _, key, rep = ev.name.split("|")
                t_us = kernel_us(ev) if device.type == "cuda" else float(ev.cpu_time_total)
                per_call.setdefault(key, []).append(t_us * 1e-6)
                if rep == "0" and device.type == "cuda":
                    names[key] = kernel_names(ev)
        del runners, prof
        if device.type == "cuda":
            torch.cuda.empty_cache()
        done += len(part)
        if log_every:
            print(f"[opbench] {done}/{len(ops)} ops in {time.perf_counter() - t0:.1f} s", flush=True)
    for key, vals in per_call.items():
        times[key] = statistics.median(vals)
    return {"schema": SCHEMA_TIMES,
            "method": "sum of profiler kernel durations under a record_function range per call, median",
            "times": dict(sorted(times.items())), "kernels": dict(sorted(names.items())), "errors": errors,
            "elapsed_s": time.perf_counter() - t0,
            "median_s": statistics.median(times.values()) if times else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dsocr_trace.validate.opbench")
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("emit", help="trace workloads on meta and write the distinct op specs")
    e.add_argument("--out", required=True)
    e.add_argument("--modes", default="tiny,small,base,large,gundam:2x3,gundam:3x3,base@8")
    e.add_argument("--decode-kv", default="300,1000,4000")
    e.add_argument("--batches", default="1,8")
    e.add_argument("--model", default="deepseek-ai/DeepSeek-OCR")
    r = sub.add_parser("run", help="time every op spec on the GPU")
    r.add_argument("--ops", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--device", default="cuda:0")
    args = ap.parse_args(argv)
    if args.cmd == "emit":
        from dsocr_trace.workload import make_workload

        wls: list[tuple[Any, list[int]]] = []
        for m in [x for x in args.modes.split(",") if x]:
            mode, _, b = m.partition("@")
            mode, _, crops = mode.partition(":")
            wls.append((make_workload(mode, crops=crops or None, batch=int(b or 1), output_tokens=1), []))
        kvs = [int(x) for x in args.decode_kv.split(",") if x]
        for b in [int(x) for x in args.batches.split(",") if x]:
            wls.append((make_workload("base", batch=b, output_tokens=1), kvs))
        doc = emit(args.model, wls)
        Path(args.out).write_text(json.dumps(doc, sort_keys=True))
        print(f"{len(doc['ops'])} distinct ops -> {args.out}")
        return 0
    device = torch.device(args.device)
    ops = json.loads(Path(args.ops).read_text())["ops"]
    res = run(ops, device)
    Path(args.out).write_text(json.dumps(res, sort_keys=True, indent=1))
    print(f"timed {len(res['times'])} ops ({len(res['errors'])} failed) in {res['elapsed_s']:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
