"""`dsocr-trace analyze`: trace, cost, predict, and write the run folder, the console summary or --json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dsocr_trace.analyze import Analysis, run_analysis
from dsocr_trace.commands.common import GIB, _fmt, _short, check_html_target, resolve_device, warn, with_host
from dsocr_trace.errors import UserError
from dsocr_trace.report.build import build_report, dumps
from dsocr_trace.report.console import console, is_narrow, summary_table
from dsocr_trace.report.output import atomic_dir, atomic_file
from dsocr_trace.workload import DEFAULT_GUNDAM_PAGE, make_workload


def stage_view(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per stage, the numbers the console shows, consistent with one another.

    host_s is the host time on the stage's critical path: under a CUDA-graph decode (fused, graph) one graph
    launch, not the eager issue cost the graph avoids. bound: `host` when the device idles more than
    HOST_IDLE_SHARE of the stage's wall waiting for the host, else the limiter with the most device time
    (plan.bound_of, computed once with the stage's prediction)."""
    preds = report.get("predictions") or {}
    ps = preds.get("stages") or {}
    from dsocr_trace.plan import GRAPH_DECODE

    graph_decode = preds.get("execution") in GRAPH_DECODE
    out: dict[str, dict[str, Any]] = {}
    for name, s in report["stages"].items():
        row: dict[str, Any] = {"tc_flops": s["tc_flops"], "cc_flops": s["cc_flops"], "bytes": s["bytes"],
                               "intensity_flop_per_byte": s["intensity_flop_per_byte"], "ops": int(s["ops"]),
                               "kernels": int(s["kernels"])}
        p = ps.get(name)
        if p:
            host = p["host_s"]
            if graph_decode and name == "decode.step":
                host = preds["phases"]["decode"]["host_s"]
            row |= {"kernels": int(p["kernels"]), "device_s": p["device_s"], "host_s": host, "wall_s": p["wall_s"],
                    "bound": p["bound"]}
        out[name] = row
    return out


SUMMARY_NOTE = ("device: summed kernel time; host: CPU time issuing the stage's ops (one graph launch for a "
                "CUDA-graph decode); wall: the stage's share of the phase timeline (stage walls add up to the phase; "
                "the host runs ahead while earlier kernels execute, so a stage's wall can be below its host time). "
                "bound: host when the device idles >10% of the wall waiting for the host, else the limiter of most "
                "device time. kernels: launches of the chosen execution.")


NARROW_NOTE = (" Narrow terminal: tensor = tensor-core FLOPs (F), kern = kernels, times in ms; CUDA-core FLOPs, "
               "FLOP/B and op counts left out (a wider terminal or --json shows them).")


def print_summary(report: dict[str, Any]) -> None:
    from dsocr_trace.hardware.provenance import provenance_of_report

    wl = report["workload"]
    p = report["params"]
    con = console()
    title = (f"{report['model']['id']}  mode {wl['label']}  vision tokens {wl['vision_tokens']}  "
             f"prefill {wl['prefill_tokens']} tok  batch {wl['batch']}  decode KV {wl['decode_kv_len']}")
    preds = report.get("predictions") or {}
    # a terminal under 120 columns gets the table without CUDA-core FLOPs, FLOP/B and ops, short units and no
    # rules, so no cell is cut at 80 columns (--json and report.json hold every column)
    narrow = is_narrow(con)
    note = SUMMARY_NOTE + (NARROW_NOTE if narrow else "") if preds else (NARROW_NOTE.strip() if narrow else None)
    t = summary_table(title, narrow, note)
    cols = ("stage", "tensor", "bytes", "kern") if narrow else \
        ("stage", "tensor-core", "CUDA-core", "bytes", "FLOP/B", "kernels", "ops")
    for col in cols:
        t.add_column(col, justify="right" if col != "stage" else "left", no_wrap=narrow)
    if preds:
        for col in ("dev ms", "host", "wall", "bound") if narrow else ("device ms", "host ms", "wall ms", "bound"):
            t.add_column(col, justify="right", no_wrap=narrow)
    fmt = _short if narrow else _fmt
    for name, s in stage_view(report).items():
        row = [name, fmt(s["tc_flops"], "F"), fmt(s["bytes"], "B"), str(s["kernels"])] if narrow else \
            [name, _fmt(s["tc_flops"], "FLOP"), _fmt(s["cc_flops"], "FLOP"), _fmt(s["bytes"], "B"),
             f"{s['intensity_flop_per_byte']:.1f}", str(s["kernels"]), str(s["ops"])]
        if preds:
            digits = 2 if narrow else 3
            row += [f"{s['device_s'] * 1e3:.{digits}f}", f"{s['host_s'] * 1e3:.{digits}f}",
                    f"{s['wall_s'] * 1e3:.{digits}f}", s["bound"]] if "device_s" in s else ["-", "-", "-", "-"]
        t.add_row(*row)
    con.print(t)
    cov = report["coverage"]
    con.print(f"params: checkpoint {p['checkpoint_total']:,} (built {p['built_total']:,}), active/token "
              f"{p['active_per_token']:,}   ops {cov['ops_total']:,}, costed {cov['ops_costed']:,}, "
              f"uncosted {sum(cov['uncosted'].values())}")
    need = report.get("memory")
    if need and not preds.get("memory"):
        con.print(f"memory on any GPU: {need['total_bytes'] / GIB:.1f} GiB (weights {need['weights_bytes'] / GIB:.2f}, "
                  f"KV cache {need['kv_cache_bytes'] / GIB:.2f} at {need['kv_context_tokens']:,} tokens, "
                  f"activation peak {need['activation_peak_bytes'] / GIB:.2f}, reserve "
                  f"{need['reserve_bytes'] / GIB:.2f} GiB); add --device NAME for the fit check and times")
    req = preds.get("request")
    if req:
        con.print(f"request on {preds['device']['name']} ({preds['execution']}, weights {preds['weight_dtype']}): "
                  f"TTFT {req['ttft_s'] * 1e3:.1f} ms (prefill wall), {req['tpot_mean_s'] * 1e3:.2f} ms/token "
                  f"(mean decode step wall; {req['decode_device_mean_s'] * 1e3:.2f} ms of it on the device), "
                  f"end-to-end {req['e2e_s']:.2f} s, {req['pages_per_s']:.2f} pages/s, "
                  f"{req['pages_per_gpu_day']:,.0f} pages/GPU-day")
        band = req.get("wall_band")
        if band:
            con.print(f"host band (a host {band['host_factor'][0]:.2f}x to {band['host_factor'][1]:.2f}x this "
                      f"profile's per-call cost): TTFT {band['ttft_s'][0] * 1e3:.1f}-{band['ttft_s'][1] * 1e3:.1f} ms, "
                      f"{band['tpot_mean_s'][0] * 1e3:.2f}-{band['tpot_mean_s'][1] * 1e3:.2f} ms/token; host share "
                      f"of a decode step {req['decode_host_share']:.0%}")
        if req.get("usd_per_million_pages") is not None:
            con.print(f"cost: ${req['usd_per_million_pages']:,.0f} per million pages at "
                      f"${req['price_per_hour_usd']:.2f}/GPU-hour ({req['price_source']})")
        mem = preds.get("memory") or {}
        if mem:
            con.print(f"memory: {mem['total_bytes'] / GIB:.1f} GiB needed of {mem['device_bytes'] / GIB:.1f} GiB "
                      f"({'fits' if mem['fits'] else 'DOES NOT FIT'})")
        prov = provenance_of_report(report)
        if prov:
            con.print(f"profile: {prov['text']}")
        if req.get("confidence"):
            con.print(f"trust: {req['confidence']} ({req['confidence_note']})")


def summary_json(report: dict[str, Any], out: Path | None) -> dict[str, Any]:
    """What `analyze --json` prints: the console summary as data (the full report is report.json)."""
    from dsocr_trace.hardware.provenance import provenance_of_report

    preds = report.get("predictions") or {}
    summary: dict[str, Any] = {
        "model": report["model"]["id"], "architecture": report["model"]["architecture"],
        "workload": report["workload"], "params": {k: report["params"][k] for k in
                                                   ("checkpoint_total", "built_total", "active_per_token")},
        "coverage": {"ops_total": report["coverage"]["ops_total"], "ops_costed": report["coverage"]["ops_costed"],
                     "uncosted": report["coverage"]["uncosted"]},
        "stages": stage_view(report), "warnings": report.get("warnings", []),
        "out": str(out) if out is not None else None, "prediction": None,
        "memory": {k: (report.get("memory") or {}).get(k) for k in
                   ("total_bytes", "weights_bytes", "kv_cache_bytes", "activation_peak_bytes", "reserve_bytes")},
    }
    if preds:
        mem = preds.get("memory") or {}
        summary["prediction"] = {
            "device": preds["device"]["name"], "device_key": preds["device"]["key"],
            "execution": preds["execution"], "weight_dtype": preds["weight_dtype"],
            "profile": provenance_of_report(report), "request": preds.get("request"),
            "memory": {k: mem.get(k) for k in ("total_bytes", "device_bytes", "fits")},
        }
    if report.get("train"):
        summary["train"] = report["train"]  # the step's counts, memory and (with a device) times
    return summary


def write_graphml_to(path: Path, a: Analysis, report: dict[str, Any] | None = None, train: Any = None) -> None:
    """Both phases' op graphs (and a training step's, when given); with a report that has predictions, each op
    and module node of the inference phases carries its predicted device and host time."""
    from dsocr_trace.graph import build_graph, merge_phases, node_predictions, write_graphml

    preds = (report or {}).get("predictions") or {}
    traces, costs = dict(a.traces), dict(a.costs)
    if train is not None:
        traces["train"], costs["train"] = train.trace, train.costs
    graphs = {ph: build_graph(tr, costs[ph].eager, costs[ph].fused,
                              node_predictions(preds, ph) if preds and ph in a.traces else None)
              for ph, tr in traces.items()}
    write_graphml(merge_phases(graphs), path)


def write_graphml_file(path: Path, force: bool, a: Analysis, report: dict[str, Any] | None = None) -> None:
    with atomic_file(path, force, "GraphML file") as tmp:
        write_graphml_to(tmp, a, report)


def analyze_warnings(report: dict[str, Any], image_size: str | None, mode: str) -> list[str]:
    """What the run assumed that the user may not expect, one line each."""
    from dsocr_trace.hardware.provenance import provenance_of_report

    out: list[str] = []
    wl = report.get("workload", {})
    if mode.strip().lower() == "gundam" and image_size is None and wl.get("image_size") == list(DEFAULT_GUNDAM_PAGE):
        out.append(f"gundam without --image-size or --crops: the default page, A4 at 150 dpi "
                   f"({DEFAULT_GUNDAM_PAGE[0]}x{DEFAULT_GUNDAM_PAGE[1]} px), tiled {wl.get('label')}; pass your page "
                   "size with --image-size WxH")
    if image_size is not None and mode.strip().lower() != "gundam":
        side = report["workload"]["base_size"]
        out.append(f"--image-size has no effect in {mode} mode (every page is resized to {side}x{side}): drop it, "
                   "or use --mode gundam to tile the page")
    tpred = (report.get("train") or {}).get("predictions") or {}
    if tpred:
        out.append(f"training step: {tpred['confidence']} ({tpred['confidence_note']}); committed held-out steps on "
                   "the H200 put the optimizer pass furthest off (benchmarks/results/h200-train/README.md)")
    preds = report.get("predictions") or {}
    if not preds:
        return out
    dtype = preds.get("weight_dtype")
    if dtype == "fp8":
        out.append("--dtype fp8 quantizes the decoder, embedding and lm_head weights only (vision encoders stay "
                   "bf16, as served) and changes the memory estimate only: predicted times are for bf16 kernels")
    elif dtype not in (None, "bf16"):
        out.append(f"--dtype {dtype} changes the memory estimate only: predicted times are for bf16 kernels")
    prov = provenance_of_report(report)
    if prov and not prov["calibrated"]:
        out.append(f"times on {preds['device']['name']} come from datasheet figures only (spec-default profile, "
                   "not measured on this GPU): calibrate it with `dsocr-trace calibrate` and pass --profile")
    elif prov and prov["kind"] == "transferred":
        assumed = prov.get("assumed_figures") or []
        figs = f"; assumed, not measured: {', '.join(assumed)}" if assumed else ""
        out.append(f"times on {preds['device']['name']} are carried from the {prov.get('transferred_from')} "
                   f"calibration by the cross-GPU model (not calibrated on this GPU{figs}; validated on H200 SM "
                   "partitions at 4-6% median per stage): calibrate it with `dsocr-trace calibrate` for measured "
                   "numbers")
    mem = preds.get("memory") or {}
    if mem and not mem.get("fits", True):
        out.append(f"the request needs {mem['total_bytes'] / GIB:.1f} GiB but {preds['device']['name']} has "
                   f"{mem['device_bytes'] / GIB:.1f} GiB: it does not fit, the times assume it did (lower --batch "
                   "or --output-tokens, or pick a larger GPU)")
    return out


def analyze_command(*, model: str, mode: str, crops: str | None, image_size: str | None, prompt_tokens: int,
                    output_tokens: int, batch: int, kv_len: int | None, tracer: str, out: Path | None,
                    graphml: Path | None, force: bool, device: str | None = None, device_file: Path | None = None,
                    profile: Path | None = None, execution: str | None = None, dtype: str | None = None,
                    moe_skew: float = 0.0, timeline: Path | None = None, plots: bool = False,
                    json_out: bool = False, routing: str | None = None, train: Any = None,
                    html: Path | None = None, implementation: str = "native",
                    host_us_per_call: float | None = None) -> dict[str, Any]:
    """Trace, cost, (with a device) predict; print the summary; write every requested output or none.

    With `train` (a TrainConfig), the report also gets a `train` section for one fine-tuning step; its
    predictions (with a device) are the step's, and the inference phases are counted but not timed."""
    import math

    from dsocr_trace.costs import CostOptions
    from dsocr_trace.memory import WEIGHT_BYTES
    from dsocr_trace.plan import EXECUTIONS
    from dsocr_trace.report.output import Outputs

    wl = make_workload(mode, crops=crops, image_size=image_size, prompt_tokens=prompt_tokens,
                       output_tokens=output_tokens, batch=batch, kv_len=kv_len)
    if execution is not None and execution not in EXECUTIONS:
        raise UserError(f"unknown --execution {execution!r}: use {', '.join(EXECUTIONS)}")
    if dtype is not None and (dtype not in WEIGHT_BYTES or dtype == "fp32"):
        raise UserError(f"unknown --dtype {dtype!r}: use bf16, fp16 or fp8")
    from dsocr_trace.costs.routing import parse_routing

    if not (math.isfinite(moe_skew) and 0.0 <= moe_skew <= 4.0):
        raise UserError(f"--moe-skew must be in [0, 4] (got {moe_skew})")
    if routing is not None and moe_skew:
        raise UserError("give either --routing or --moe-skew, not both")
    route = parse_routing(routing, moe_skew)
    notes: list[str] = []
    hw = resolve_device(device, device_file, profile, notes)
    if host_us_per_call is not None:
        if hw is None:
            raise UserError("--host-us-per-call sets the host of a prediction, which needs a GPU: add --device NAME")
        hw = (hw[0], with_host(hw[1], host_us_per_call, notes))
    if train is not None and (timeline is not None or plots):
        raise UserError("--timeline and --plots draw the inference phases: drop them with --phase train")
    if train is not None and execution == "graph":
        raise UserError("--execution graph replays decode steps: use eager or fused with --phase train")
    if train is not None and dtype not in (None, "bf16"):
        raise UserError(f"--dtype {dtype} sets inference weights; a training step keeps bf16 weights: drop --dtype "
                        "and choose --precision bf16 or mixed")
    from dsocr_trace.trace.remote import check_implementation

    check_implementation(implementation, execution, train is not None)
    if hw is None:
        for flag, value in (("--execution", execution), ("--dtype", dtype)):
            if value is not None:
                raise UserError(f"{flag} applies to predictions, which need a GPU: add --device NAME (see "
                                f"`dsocr-trace devices`) or drop {flag}")
    if (timeline is not None or plots) and hw is None:
        raise UserError("--timeline and --plots need predictions: add --device NAME (see `dsocr-trace devices`)")
    if plots and out is None:
        raise UserError("--plots writes into the run folder: add --out DIR")
    if graphml is not None and graphml.suffix.lower() != ".graphml":
        raise UserError(f"--graphml {str(graphml)!r} should end in .graphml")
    # refuse bad output paths before minutes of work; they are written together at the end, or not at all
    outputs = Outputs(force)
    outputs.folder(out, "output folder")
    outputs.file(timeline, "timeline file")
    outputs.file(graphml, "GraphML file")
    if html is not None:
        check_html_target(html, force, out, timeline, graphml)
        outputs.file(html, "HTML file")
    if train is not None:
        from dsocr_trace.analyze import load_model

        lm = load_model(model)
        if lm.generic:
            raise UserError(f"--phase train is implemented for DeepSeek-OCR only ({lm.architecture} was given): "
                            "use --phase infer for other models")
    opts = CostOptions(routing=route)
    a = run_analysis(model, wl, tracer=tracer, opts=opts, implementation=implementation)
    if implementation != "native":
        notes.append(REMOTE_NOTE)
    predictions = None
    if hw is not None and train is None:
        from dsocr_trace.request import predict_request

        predictions = predict_request(a, hw[0], hw[1], execution or "eager", dtype or "bf16")
    report = build_report(a, predictions)
    ta = add_train_section(report, model, wl, train, opts, hw, execution or "eager") if train is not None else None
    report["warnings"] = notes + analyze_warnings(report, image_size, mode)
    for line in report["warnings"]:
        warn(line)
    with outputs.transaction() as where:
        if out is not None:
            folder = where(out)
            (folder / "report.json").write_bytes(dumps(report))
            write_extras(folder, a, report, plots)
            if ta is not None:
                from dsocr_trace.report.train import train_markdown, write_train_nodes

                write_train_nodes(ta, folder / "train_nodes.csv")
                (folder / "train.md").write_text(train_markdown(report))
        if timeline is not None and predictions is not None:
            from dsocr_trace.report.timeline import write_timeline

            write_timeline(report, where(timeline))
        if graphml is not None:
            write_graphml_to(where(graphml), a, report, ta)
        if html is not None:
            from dsocr_trace.report.html import report_html
            from dsocr_trace.report.node_rows import trace_nodes

            where(html).write_text(report_html(report, trace_nodes(a)), encoding="utf-8")
    # the files first: a closed stdout (`| head`) must not cost them
    if json_out:
        import sys

        sys.stdout.buffer.write(dumps(summary_json(report, out)) + b"\n")
        sys.stdout.flush()
    else:
        print_summary(report)
        if ta is not None:
            print_train_summary(report)
    return report


REMOTE_NOTE = ("implementation remote: the official remote code (transformers 4.46.3, model.infer) as a rewrite of "
               "the traced graph; decoder and decode steps validated on the H200 "
               "(benchmarks/results/remote), vision encoders priced from the native trace")


def write_run(out: Path, force: bool, a: Analysis, report: dict[str, Any], extra: Any = None) -> None:
    """All run-folder files, or none of them."""
    with atomic_dir(out, force) as tmp:
        (tmp / "report.json").write_bytes(dumps(report))
        if extra is not None:
            extra(tmp)


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


def add_train_section(report: dict[str, Any], model: str, wl: Any, cfg: Any, opts: Any, hw: tuple[Any, Any] | None,
                      execution: str) -> Any:
    """Trace, cost and (with a device) time one training step; put it in report["train"] and print it."""
    from dsocr_trace.report.train import train_section
    from dsocr_trace.train.analysis import run_train_analysis
    from dsocr_trace.train.memory import train_memory

    ta = run_train_analysis(model, wl, cfg, opts)
    memory = train_memory(ta.trace, ta.omitted_params_bytes, hw[0].capacity_bytes if hw is not None else None)
    predictions = None
    if hw is not None:
        from dsocr_trace.train.predict import predict_train

        predictions = predict_train(ta, hw[0], hw[1], execution)
    report["train"] = train_section(ta, memory, predictions)
    return ta


def print_train_summary(report: dict[str, Any]) -> None:
    t = report["train"]
    preds = (t.get("predictions") or {}).get("stages", {})
    con = console()
    narrow = is_narrow(con)  # as print_summary: short units and headers, no rules, nothing cut
    table = summary_table(f"training step ({t['config']['trainable']}, {t['config']['optimizer']}, "
                          f"{t['config']['precision']}, checkpointing "
                          f"{'on' if t['config']['checkpointing'] else 'off'})", narrow,
                          "FLOPs per pass (F): forward, backward, recompute, optimizer; bytes; device and wall ms"
                          if narrow else None)
    cols = ["stage", "fwd", "bwd", "recomp", "optim", "bytes"] if narrow else \
        ["stage", "forward FLOP", "backward FLOP", "recompute FLOP", "optimizer FLOP", "bytes"]
    if preds:
        cols += ["dev", "wall"] if narrow else ["device ms", "wall ms"]
    for col in cols:
        table.add_column(col, justify="left" if col == "stage" else "right", no_wrap=narrow)
    fmt = _short if narrow else _fmt
    for name, s in t["stages"].items():
        row = [name] + [fmt(s[p]["flops"], "F" if narrow else "FLOP")
                        for p in ("forward", "backward", "recompute", "optimizer")]
        row.append(fmt(s["total"]["bytes"], "B"))
        if preds:
            ps = preds.get(name, {})
            digits = 2 if narrow else 3
            row += [f"{ps.get('device_s', 0) * 1e3:.{digits}f}", f"{ps.get('wall_s', 0) * 1e3:.{digits}f}"]
        table.add_row(*row)
    con.print(table)
    m = t["memory"]
    pk = m["peak"]
    line = (f"memory: weights {m['weights_bytes'] / GIB:.2f} GiB, optimizer states "
            f"{m['optimizer_state_bytes'] / GIB:.2f} GiB, gradients {m['gradients_bytes'] / GIB:.2f} GiB, saved "
            f"activations {m['saved_activations_bytes'] / GIB:.2f} GiB; peak {pk['total_bytes'] / GIB:.2f} GiB "
            f"({pk['pass']})")
    if "fits" in m:
        line += f", {'fits' if m['fits'] else 'does NOT fit'} on the device"
    con.print(line)
    pr = t.get("predictions")
    if pr:
        con.print(f"step on {pr['device']['name']} ({pr['execution']}): wall {pr['step']['wall_s'] * 1e3:.2f} ms, "
                      f"device {pr['step']['device_s'] * 1e3:.2f} ms")
        con.print(f"trust: {pr['confidence']} ({pr['confidence_note']})")


def write_extras(folder: Path, a: Analysis, report: dict[str, Any], plots: bool) -> None:
    from dsocr_trace.report.node_rows import trace_nodes
    from dsocr_trace.report.tables import write_run_tables
    from dsocr_trace.report.writers import write_all

    nodes = trace_nodes(a)
    write_all(report, folder, nodes=nodes)
    write_run_tables(report, folder, nodes)
    if plots:
        from dsocr_trace.report.plots import write_plots

        write_plots(report, folder)
