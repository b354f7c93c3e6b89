"""What each CLI command does, kept apart from argument parsing so tests can call it directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dsocr_trace.analyze import Analysis, run_analysis
from dsocr_trace.errors import UserError
from dsocr_trace.report.build import build_report, dumps
from dsocr_trace.report.output import atomic_dir, atomic_file, check_target
from dsocr_trace.workload import make_workload


def _fmt(x: float, unit: str) -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:,.2f} {prefix}{unit}"
    return f"{x:,.0f} {unit}"


def print_summary(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    wl = report["workload"]
    p = report["params"]
    console = Console(width=140)
    title = (f"{report['model']['id']}  mode {wl['label']}  vision tokens {wl['vision_tokens']}  "
             f"prefill {wl['prefill_tokens']} tok  batch {wl['batch']}  decode KV {wl['decode_kv_len']}")
    t = Table(title=title, title_justify="left")
    for col in ("stage", "tensor-core", "CUDA-core", "bytes", "FLOP/B", "kernels", "ops"):
        t.add_column(col, justify="right" if col != "stage" else "left")
    preds = (report.get("predictions") or {}).get("stages") or {}
    if preds:
        for col in ("device ms", "host ms", "wall ms", "bound"):
            t.add_column(col, justify="right")
    for name, s in report["stages"].items():
        row = [name, _fmt(s["tc_flops"], "FLOP"), _fmt(s["cc_flops"], "FLOP"), _fmt(s["bytes"], "B"),
               f"{s['intensity_flop_per_byte']:.1f}", str(int(s["kernels"])), str(int(s["ops"]))]
        if preds:
            ps = preds.get(name, {})
            row += [f"{ps.get('device_s', 0) * 1e3:.3f}", f"{ps.get('host_s', 0) * 1e3:.3f}",
                    f"{ps.get('wall_s', 0) * 1e3:.3f}", ps.get("bound", "")]
        t.add_row(*row)
    console.print(t)
    cov = report["coverage"]
    console.print(f"params: checkpoint {p['checkpoint_total']:,} (built {p['built_total']:,}), active/token "
                  f"{p['active_per_token']:,}   ops {cov['ops_total']:,}, costed {cov['ops_costed']:,}, "
                  f"uncosted {sum(cov['uncosted'].values())}")
    req = (report.get("predictions") or {}).get("request")
    if req:
        console.print(f"request on {report['predictions']['device']['name']} ({report['predictions']['execution']}):"
                      f" TTFT {req['ttft_s'] * 1e3:.1f} ms, {req['tpot_mean_s'] * 1e3:.2f} ms/token, "
                      f"end-to-end {req['e2e_s']:.2f} s, {req['pages_per_s']:.2f} pages/s, "
                      f"{req['pages_per_gpu_day']:,.0f} pages/GPU-day")


def write_run(out: Path, force: bool, a: Analysis, report: dict[str, Any], extra: Any = None) -> None:
    """All run-folder files, or none of them."""
    with atomic_dir(out, force) as tmp:
        (tmp / "report.json").write_bytes(dumps(report))
        if extra is not None:
            extra(tmp)


def write_graphml_file(path: Path, force: bool, a: Analysis, report: dict[str, Any] | None = None,
                       extra_traces: dict[str, Any] | None = None, extra_costs: dict[str, Any] | None = None) -> None:
    """Both phases' op graphs (and a training step's, when given); with a report that has predictions, each op
    and module node of the inference phases carries its predicted device and host time."""
    from dsocr_trace.graph import build_graph, merge_phases, node_predictions, write_graphml

    preds = (report or {}).get("predictions") or {}
    traces, costs = dict(a.traces) | (extra_traces or {}), dict(a.costs) | (extra_costs or {})
    graphs = {ph: build_graph(tr, costs[ph].eager, costs[ph].fused,
                              node_predictions(preds, ph) if preds and ph in a.traces else None)
              for ph, tr in traces.items()}
    with atomic_file(path, force, "GraphML file") as tmp:
        write_graphml(merge_phases(graphs), tmp)


def resolve_device(device: str | None, device_file: Path | None, profile: Path | None) -> tuple[Any, Any] | None:
    from dsocr_trace.hardware.profile import load_profile, packaged_profile
    from dsocr_trace.hardware.spec import load_device

    if device is None and device_file is None:
        if profile is not None:
            raise UserError("--profile needs the GPU it was measured on: add --device NAME or --device-file")
        return None
    if device is not None and device_file is not None:
        raise UserError("give either --device or --device-file, not both")
    spec = load_device(str(device_file) if device_file is not None else str(device))
    prof = load_profile(profile, spec) if profile is not None else packaged_profile(spec)
    return spec, prof


def train_config(phase: str, *, optimizer: str | None = None, trainable: str | None = None,
                 lora_rank: int | None = None, checkpointing: bool | None = None,
                 precision: str | None = None) -> Any:
    """The training-step config of `analyze --phase train` (None for --phase infer); checks the options."""
    if phase not in ("infer", "train"):
        raise UserError(f"unknown --phase {phase!r}: use infer or train")
    given = {"--optimizer": optimizer, "--trainable": trainable, "--lora-rank": lora_rank,
             "--checkpointing": checkpointing, "--precision": precision}
    if phase == "infer":
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise UserError(f"{', '.join(extra)} apply to a training step: add --phase train")
        return None
    if lora_rank is not None and trainable != "lora":
        raise UserError("--lora-rank applies to --trainable lora")
    from dsocr_trace.models.training import TrainConfig

    cfg = TrainConfig(optimizer=optimizer or "adamw", trainable=trainable or "full",
                      lora_rank=16 if lora_rank is None else lora_rank, checkpointing=bool(checkpointing),
                      precision=precision or "bf16")
    cfg.check()
    return cfg


def analyze_command(*, model: str, mode: str, crops: str | None, image_size: str | None, prompt_tokens: int,
                    output_tokens: int, batch: int, kv_len: int | None, tracer: str, out: Path | None,
                    graphml: Path | None, force: bool, device: str | None = None, device_file: Path | None = None,
                    profile: Path | None = None, execution: str = "eager", dtype: str = "bf16",
                    moe_skew: float = 0.0, timeline: Path | None = None, plots: bool = False,
                    routing: str | None = None, train: Any = None, html: Path | None = None) -> dict[str, Any]:
    """With `train` (a TrainConfig), the report also gets a `train` section for one fine-tuning step; its
    predictions (with a device) are the step's, and the inference phases are counted but not timed."""
    from dsocr_trace.costs import CostOptions
    from dsocr_trace.memory import WEIGHT_BYTES
    from dsocr_trace.plan import EXECUTIONS

    wl = make_workload(mode, crops=crops, image_size=image_size, prompt_tokens=prompt_tokens,
                       output_tokens=output_tokens, batch=batch, kv_len=kv_len)
    if execution not in EXECUTIONS:
        raise UserError(f"unknown --execution {execution!r}: use eager or fused")
    if dtype not in WEIGHT_BYTES or dtype == "fp32":
        raise UserError(f"unknown --dtype {dtype!r}: use bf16, fp16 or fp8")
    from dsocr_trace.costs.routing import parse_routing

    if not 0.0 <= moe_skew <= 4.0:
        raise UserError(f"--moe-skew must be in [0, 4] (got {moe_skew})")
    if routing is not None and moe_skew:
        raise UserError("give either --routing or --moe-skew, not both")
    route = parse_routing(routing, moe_skew)
    hw = resolve_device(device, device_file, profile)
    if train is not None and (timeline is not None or plots):
        raise UserError("--timeline and --plots draw the inference phases: drop them with --phase train")
    if train is not None and execution == "graph":
        raise UserError("--execution graph replays decode steps: use eager or fused with --phase train")
    if (timeline is not None or plots) and hw is None:
        raise UserError("--timeline and --plots need predictions: add --device NAME (see `dsocr-trace devices`)")
    if plots and out is None:
        raise UserError("--plots writes into the run folder: add --out DIR")
    if timeline is not None:
        check_target(timeline, force, "timeline file")
    if html is not None:
        check_html_target(html, force, out, timeline, graphml)
    # refuse bad output paths before minutes of work, and again atomically when writing
    if out is not None:
        check_target(out, force)
    if graphml is not None:
        check_target(graphml, force, "GraphML file")
        if graphml.suffix.lower() != ".graphml":
            raise UserError(f"--graphml {str(graphml)!r} should end in .graphml")
    if train is not None:
        from dsocr_trace.analyze import load_model

        lm = load_model(model)
        if lm.generic:
            raise UserError(f"--phase train is implemented for DeepSeek-OCR only ({lm.architecture} was given): "
                            "use --phase infer for other models")
    a = run_analysis(model, wl, tracer=tracer, opts=CostOptions(routing=route))
    predictions = None
    if hw is not None and train is None:
        from dsocr_trace.request import predict_request

        predictions = predict_request(a, hw[0], hw[1], execution, dtype)
    report = build_report(a, predictions)
    ta = None
    if train is not None:
        ta = add_train_section(report, model, wl, train, CostOptions(routing=route), hw, execution)
    print_summary(report)
    if out is not None:
        def extra(folder: Path) -> None:
            write_extras(folder, a, report, plots)
            if ta is not None:
                from dsocr_trace.report.train import train_markdown, write_train_nodes

                write_train_nodes(ta, folder / "train_nodes.csv")
                (folder / "train.md").write_text(train_markdown(report))

        write_run(out, force, a, report, extra=extra)
    if timeline is not None and predictions is not None:
        from dsocr_trace.report.timeline import write_timeline

        with atomic_file(timeline, force, "timeline file") as tmp:
            write_timeline(report, tmp)
    if graphml is not None:
        write_graphml_file(graphml, force, a, report, {"train": ta.trace} if ta is not None else None,
                           {"train": ta.costs} if ta is not None else None)
    if html is not None:
        from dsocr_trace.report.html import report_html
        from dsocr_trace.report.writers import trace_nodes

        with atomic_file(html, force, "HTML file") as tmp:
            tmp.write_text(report_html(report, trace_nodes(a)), encoding="utf-8")
    return report


def add_train_section(report: dict[str, Any], model: str, wl: Any, cfg: Any, opts: Any, hw: tuple[Any, Any] | None,
                      execution: str) -> Any:
    """Trace, cost and (with a device) time one training step; put it in report["train"] and print it."""
    from dsocr_trace.report.train import train_section
    from dsocr_trace.train.analysis import run_train_analysis
    from dsocr_trace.train.memory import train_memory

    ta = run_train_analysis(model, wl, cfg, opts)
    memory = train_memory(ta.trace, ta.omitted_params_bytes, hw[0].mem_bytes if hw is not None else None)
    predictions = None
    if hw is not None:
        from dsocr_trace.train.predict import predict_train

        predictions = predict_train(ta, hw[0], hw[1], execution)
    report["train"] = train_section(ta, memory, predictions)
    print_train_summary(report)
    return ta


def print_train_summary(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = report["train"]
    preds = (t.get("predictions") or {}).get("stages", {})
    table = Table(title=f"training step ({t['config']['trainable']}, {t['config']['optimizer']}, "
                        f"{t['config']['precision']}, checkpointing {'on' if t['config']['checkpointing'] else 'off'})",
                  title_justify="left")
    cols = ["stage", "forward FLOP", "backward FLOP", "recompute FLOP", "optimizer FLOP", "bytes"]
    if preds:
        cols += ["device ms", "wall ms"]
    for col in cols:
        table.add_column(col, justify="left" if col == "stage" else "right")
    for name, s in t["stages"].items():
        row = [name] + [_fmt(s[p]["flops"], "FLOP") for p in ("forward", "backward", "recompute", "optimizer")]
        row.append(_fmt(s["total"]["bytes"], "B"))
        if preds:
            ps = preds.get(name, {})
            row += [f"{ps.get('device_s', 0) * 1e3:.3f}", f"{ps.get('wall_s', 0) * 1e3:.3f}"]
        table.add_row(*row)
    console = Console(width=140)
    console.print(table)
    m = t["memory"]
    pk = m["peak"]
    line = (f"memory: weights {_fmt(m['weights_bytes'], 'B')}, "
            f"optimizer states {_fmt(m['optimizer_state_bytes'], 'B')}, gradients {_fmt(m['gradients_bytes'], 'B')}, "
            f"saved activations {_fmt(m['saved_activations_bytes'], 'B')}; peak {_fmt(pk['total_bytes'], 'B')} "
            f"({pk['pass']})")
    if "fits" in m:
        line += f", {'fits' if m['fits'] else 'does NOT fit'} on the device"
    console.print(line)
    pr = t.get("predictions")
    if pr:
        console.print(f"step on {pr['device']['name']} ({pr['execution']}): wall {pr['step']['wall_s'] * 1e3:.2f} ms, "
                      f"device {pr['step']['device_s'] * 1e3:.2f} ms")


def write_extras(folder: Path, a: Analysis, report: dict[str, Any], plots: bool) -> None:
    from dsocr_trace.report.tables import write_run_tables
    from dsocr_trace.report.writers import trace_nodes, write_all

    nodes = trace_nodes(a)
    write_all(report, folder, nodes=nodes)
    write_run_tables(report, folder, nodes)
    if plots:
        from dsocr_trace.report.plots import write_plots

        write_plots(report, folder)


def devices_command() -> None:
    from rich.console import Console
    from rich.table import Table

    from dsocr_trace.hardware.spec import catalog

    t = Table(title="GPU catalog (dense figures; BF16 = tensor cores with FP32 accumulate)", title_justify="left")
    for col in ("key", "name", "BF16 TFLOP/s", "FP32 CUDA TFLOP/s", "GB/s", "memory GB", "L2 MB", "SMs", "sources"):
        t.add_column(col)
    for d in catalog():
        srcs = sorted(set(d.sources.values()))
        t.add_row(d.key, d.name, f"{d.tc_flops / 1e12:g}", f"{d.cc_flops / 1e12:g}", f"{d.mem_bw / 1e9:g}",
                  f"{d.mem_bytes / 2**30:g}", f"{d.l2_bytes / 2**20:g}", str(d.sm_count), "; ".join(srcs)[:120])
    Console(width=200).print(t)


def sweep_command(*, model: str, modes: str, devices: str, batch: str, output_tokens: str, execution: str,
                  out: Path, force: bool, plots: Path | None = None, html: Path | None = None) -> list[dict[str, Any]]:
    from contextlib import ExitStack

    from dsocr_trace.capacity import annotate
    from dsocr_trace.hardware.spec import load_device
    from dsocr_trace.planner import print_sweep_summary, write_rows
    from dsocr_trace.sweep import run_sweep

    check_target(out, force, "sweep file")
    if out.suffix.lower() not in (".csv", ".json", ".parquet"):
        raise UserError(f"--out {str(out)!r} must end in .csv, .json or .parquet")
    if plots is not None:
        if plots.resolve() == out.resolve():
            raise UserError("--plots names a folder for the PNGs: give it a path other than --out")
        check_target(plots, force, "plots folder")
    if html is not None:
        check_html_target(html, force, out)
    rows = run_sweep(model, modes, devices, batch, output_tokens, execution)
    rows = annotate(rows, model, {d: load_device(d) for d in dict.fromkeys(r["device"] for r in rows)})
    print_sweep_summary(rows)
    # every output is written to a temporary sibling and renamed into place at the end: all of them or none
    with ExitStack() as stack:
        if plots is not None:
            from dsocr_trace.report.plots import write_sweep_plots

            write_sweep_plots(rows, stack.enter_context(atomic_dir(plots, force)))
        if html is not None:
            from dsocr_trace.report.html import sweep_html

            stack.enter_context(atomic_file(html, force, "HTML file")).write_text(sweep_html(rows), encoding="utf-8")
        write_rows(rows, stack.enter_context(atomic_file(out, force, "sweep file")), out.suffix.lower())
    print(f"{len(rows)} points -> {out}" + (f", plots -> {plots}" if plots is not None else "")
          + (f", HTML -> {html}" if html is not None else ""))
    return rows


def check_html_target(html: Path, force: bool, *others: Path | None) -> None:
    if html.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--html {str(html)!r} should end in .html")
    if any(o is not None and html.resolve() == o.resolve() for o in others):
        raise UserError(f"--html {str(html)!r} names another output too: give it its own path")
    check_target(html, force, "HTML file")


def _load_json(path: Path, what: str) -> Any:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {what} {str(path)!r} ({exc}): check the path") from None


def _matching_runs(report: dict[str, Any], measured: dict[str, Any], phase: str | None) -> list[dict[str, Any]]:
    wl = report["workload"]
    crops = wl.get("crops")
    want_kv = wl["decode_kv_len"] - 1
    out = []
    for r in measured.get("runs", []):
        w = r.get("workload", {})
        if "error" in r or (phase and w.get("phase") != phase):
            continue
        if w.get("mode") != wl["mode"] or (w.get("crops") or None) != (crops or None) or w.get("batch") != wl["batch"]:
            continue
        if w.get("phase") == "decode" and w.get("kv_len") not in (None, want_kv):
            continue
        out.append(r)
    return out


def _emit(result: dict[str, Any], md: str, out: Path | None, force: bool, name: str) -> None:
    """Print the Markdown table; with --out, write <name>.json and <name>.md together (or neither)."""
    print(md)
    if out is not None:
        with atomic_dir(out, force) as tmp:
            (tmp / f"{name}.json").write_bytes(dumps(result))
            (tmp / f"{name}.md").write_text(md)


def compare_command(report_path: Path, measured_path: Path, phase: str | None, out: Path | None,
                    force: bool) -> dict[str, Any]:
    """Predicted (a report.json with predictions) vs measured (measured.json or a torch.profiler Chrome trace)."""
    from dsocr_trace.validate.compare import compare_run, summarize, to_markdown

    report = _load_json(report_path, "report")
    if not isinstance(report, dict) or "predictions" not in report:
        raise UserError(f"{str(report_path)!r} has no predictions: rerun `dsocr-trace analyze` with --device")
    if not measured_path.is_file():
        raise UserError(f"measured file {str(measured_path)!r} is not a file: pass measured.json or a Chrome trace")
    if out is not None:
        check_target(out, force)
    text = measured_path.name
    if text.endswith(".gz") or "traceEvents" in measured_path.read_text(errors="ignore")[:4096]:
        from dsocr_trace.analyze import load_model
        from dsocr_trace.validate.chrome import measured_from_trace

        ph = phase or "prefill"
        wl = report["workload"]
        w = {"mode": wl["mode"], "label": wl["label"], "crops": wl.get("crops"), "batch": wl["batch"],
             "prompt_tokens": wl["prompt_tokens"], "phase": ph,
             "kv_len": wl["decode_kv_len"] - 1 if ph == "decode" else None}
        measured = measured_from_trace(measured_path, w, load_model(report["model"]["id"]).stage_fn)
    else:
        measured = _load_json(measured_path, "measured timings")
        if not isinstance(measured, dict) or measured.get("schema") != "dsocr-trace/measured/1":
            raise UserError(f"{str(measured_path)!r} is not a measured-timings file (schema dsocr-trace/measured/1) "
                            "nor a Chrome trace: see specs/measured-format.md")
    runs = _matching_runs(report, measured, phase)
    if not runs:
        have = sorted({f"{r['workload'].get('label')} B{r['workload'].get('batch')} {r['workload'].get('phase')}"
                       for r in measured.get("runs", []) if "workload" in r})
        raise UserError(f"no measured run matches the report's workload ({report['workload']['label']} "
                        f"B{report['workload']['batch']}); the file has: {', '.join(have) or 'nothing'}")
    rows = [compare_run(report["predictions"], r, r["workload"]["phase"]) for r in runs]
    result = {"schema": "dsocr-trace/validation/1", "device": measured.get("device", {}),
              "profile": report["predictions"]["profile"]["source"], "runs": rows, "summary": summarize(rows)}
    _emit(result, to_markdown(result), out, force, "compare")
    return result


def diff_command(a_path: Path, b_path: Path, out: Path | None, force: bool) -> dict[str, Any]:
    """Per-stage and per-module-type deltas between two reports (modes, GPUs, executions)."""
    a, b = _load_json(a_path, "report"), _load_json(b_path, "report")
    for p, r in ((a_path, a), (b_path, b)):
        if not isinstance(r, dict) or "stages" not in r:
            raise UserError(f"{str(p)!r} is not a dsocr-trace report.json")
    if out is not None:
        check_target(out, force)

    def delta(x: float, y: float) -> dict[str, Any]:
        return {"a": x, "b": y, "delta": y - x, "ratio": (y / x) if x else None}

    stages: dict[str, Any] = {}
    for name in a["stages"]:
        sa, sb = a["stages"][name], b["stages"].get(name, {})
        row = {k: delta(sa.get(k, 0.0), sb.get(k, 0.0)) for k in ("tc_flops", "cc_flops", "bytes", "kernels")}
        pa = (a.get("predictions") or {}).get("stages", {}).get(name)
        pb = (b.get("predictions") or {}).get("stages", {}).get(name)
        if pa and pb:
            row.update({k: delta(pa[k], pb[k]) for k in ("device_s", "host_s", "wall_s")})
        stages[name] = row
    types: dict[str, Any] = {}
    for phase in ("prefill", "decode"):
        ta = ((a.get("predictions") or {}).get("module_types") or a["module_types"]).get(phase, {})
        tb = ((b.get("predictions") or {}).get("module_types") or b["module_types"]).get(phase, {})
        key = "device_s" if a.get("predictions") and b.get("predictions") else "flops"
        types[phase] = {t: delta(ta.get(t, {}).get(key, 0.0), tb.get(t, {}).get(key, 0.0))
                        for t in sorted(set(ta) | set(tb))}
    req = {}
    ra, rb = (a.get("predictions") or {}).get("request"), (b.get("predictions") or {}).get("request")
    if ra and rb:
        req = {k: delta(ra[k], rb[k]) for k in ("ttft_s", "tpot_mean_s", "e2e_s", "pages_per_s")}
    result = {"a": str(a_path), "b": str(b_path), "stages": stages, "module_types": types, "request": req}
    lines = [f"# diff: A = {a_path}  B = {b_path}", "", "| stage | FLOPs A | FLOPs B | device ms A | device ms B | "
             "wall ms A | wall ms B | B/A wall |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in stages.items():
        def ms(k: str, side: str, r: dict[str, Any] = r) -> str:
            return f"{r[k][side] * 1e3:.3f}" if k in r else "-"
        ratio = r.get("wall_s", {}).get("ratio")
        flops_a = r["tc_flops"]["a"] + r["cc_flops"]["a"]
        flops_b = r["tc_flops"]["b"] + r["cc_flops"]["b"]
        lines.append(f"| {name} | {flops_a:.3g} | {flops_b:.3g} | "
                     f"{ms('device_s', 'a')} | {ms('device_s', 'b')} | {ms('wall_s', 'a')} | {ms('wall_s', 'b')} | "
                     f"{'-' if ratio is None else f'{ratio:.2f}x'} |")
    if req:
        lines += ["", "| request | A | B | B/A |", "|---|---:|---:|---:|"]
        for k, v in req.items():
            lines.append(f"| {k} | {v['a']:.4g} | {v['b']:.4g} | {v['ratio']:.2f}x |")
    _emit(result, "\n".join(lines) + "\n", out, force, "diff")
    return result


def calibration_harness_args() -> list[str]:
    """The harness run of `calibrate`: every calibration workload in the model (validate.calsweep), eager with
    per-module kernel times, and its decode steps also as CUDA graphs."""
    from dsocr_trace.validate.calsweep import CALIBRATION_DECODE, CALIBRATION_PREFILL, workload_label

    modes = ",".join(workload_label(*c) for c in CALIBRATION_PREFILL)
    decode = ";".join(f"{b}:{','.join(str(k) for k in kvs)}" for b, kvs in CALIBRATION_DECODE)
    return ["--modes", modes, "--decode", decode, "--quick", "--trace", "none"]


def calibrate_command(out: Path, force: bool, quick: bool, model: str) -> None:
    """Probes, microbenchmarks and the fixed operator sweep on cuda:0, then the calibration workloads run in the
    model (host costs from their eager and CUDA-graph decode steps, in-model factors from their per-module
    times) -> a profile (dsocr-trace/profile/2) and, beside it, the in-model measurements it was fitted on
    (<out stem>.inmodel.json)."""
    import json
    import sys
    import tempfile
    import time

    import torch

    from dsocr_trace.hardware.calibration import profile_document
    from dsocr_trace.hardware.profile import profile_from_document
    from dsocr_trace.kernels.inmodel import fit_factors
    from dsocr_trace.validate import calibrate, harness
    from dsocr_trace.validate.offline import device_for, graph_rows, host_rows, inmodel_observations

    if not torch.cuda.is_available():
        raise UserError("calibrate measures the local GPU and found no CUDA device: run it on the GPU machine")
    check_target(out, force, "profile file")
    side = out.with_name(out.name.removesuffix(".json").removesuffix(".gz") + ".inmodel.json")
    check_target(side, force, "in-model measurements file")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        calibrate.main(["--out", str(tmp / "calibration.json")] + (["--quick"] if quick else []))
        harness.main(["--out", str(tmp), *calibration_harness_args()])
        cal = json.loads((tmp / "calibration.json").read_text())
        measured = json.loads((tmp / "measured.json").read_text())
    spec = device_for(torch.cuda.get_device_name(0))
    doc = profile_document(cal, spec.key, host_rows(model, measured["runs"]), graph_rows(measured["runs"]),
                           command=" ".join(["dsocr-trace", *sys.argv[1:]]), elapsed_s=time.perf_counter() - t0)
    prof = profile_from_document(doc, spec, "new profile")
    doc["factors"] = fit_factors(inmodel_observations(prof.model, measured["runs"], model))
    doc["inmodel_file"] = side.name
    with atomic_file(side, force, "in-model measurements file") as tmps:
        tmps.write_bytes(orjson_dumps(measured))
    with atomic_file(out, force, "profile file") as tmpf:
        tmpf.write_bytes(orjson_dumps(doc))
    print(f"wrote {out}: {len(doc['sweep']['points'])} sweep points, host {doc['host']['per_call_s'] * 1e6:.1f} "
          f"us per call, graph gap {doc['host']['graph_kernel_s'] * 1e6:.2f} us, {len(doc['factors'])} in-model "
          f"factors, {time.perf_counter() - t0:.0f} s; in-model runs in {side}")


def orjson_dumps(doc: Any) -> bytes:
    import orjson

    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) + b"\n"


def validate_command(*, model: str, mode: str, crops: str | None, batch: int, decode_kv: str, profile: Path | None,
                     out: Path, force: bool, workloads: str | None = None, decode: str | None = None) -> None:
    """Run workloads on the local GPU with random weights, measure per module, predict with the profile, compare.

    `workloads` (harness syntax: mode[:WxH][@batch][+pN], comma-separated) and `decode` ('B:KV,KV;B:KV') name
    several at once; otherwise the single --mode/--crops/--batch workload and its decode at `decode_kv`."""
    import json

    import torch

    from dsocr_trace.hardware.profile import load_profile, packaged_profile
    from dsocr_trace.validate import harness
    from dsocr_trace.validate.compare import to_markdown
    from dsocr_trace.validate.offline import device_for, validate_measured

    if not torch.cuda.is_available():
        raise UserError("validate runs the model on the local GPU and found no CUDA device: run it on the GPU "
                        "machine, or compare a measured file with `dsocr-trace compare`")
    if workloads is None:
        make_workload(mode, crops=crops, batch=batch)
        workloads = mode + (f":{crops}" if crops else "") + (f"@{batch}" if batch != 1 else "")
        decode = decode if decode is not None else (f"{batch}:{decode_kv}" if decode_kv.strip() else "")
    else:
        for m, c, b, p in harness.parse_workloads(workloads):
            make_workload(m, crops=c, batch=b, prompt_tokens=p)
    check_target(out, force)
    spec = device_for(torch.cuda.get_device_name(0))
    prof = load_profile(profile, spec) if profile is not None else packaged_profile(spec)
    with atomic_dir(out, force) as tmp:
        harness.main(["--out", str(tmp), "--modes", workloads, "--decode", decode or "", "--trace", "none"])
        measured = json.loads((tmp / "measured.json").read_text())
        res = validate_measured(measured, prof, spec, model)
        (tmp / "validation.json").write_bytes(dumps(res))
        (tmp / "validation.md").write_text(to_markdown(res))
    print(to_markdown(res))
