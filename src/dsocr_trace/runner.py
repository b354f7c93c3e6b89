"""What each CLI command does, kept apart from argument parsing so tests can call it directly."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dsocr_trace.analyze import Analysis, run_analysis
from dsocr_trace.errors import UserError
from dsocr_trace.report.build import build_report, dumps
from dsocr_trace.report.console import console
from dsocr_trace.report.output import atomic_dir, atomic_file, check_target
from dsocr_trace.workload import DEFAULT_GUNDAM_PAGE, DEFAULT_PROMPT_TOKENS, make_workload


def _fmt(x: float, unit: str) -> str:
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:,.2f} {prefix}{unit}"
    return f"{x:,.0f} {unit}"


def warn(message: str) -> None:
    """One warning line on stderr (stdout stays clean for --json)."""
    import sys

    print(f"warning: {message}", file=sys.stderr)


GIB = 2**30

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


def print_summary(report: dict[str, Any]) -> None:
    from rich.table import Table

    from dsocr_trace.hardware.provenance import provenance_of_report

    wl = report["workload"]
    p = report["params"]
    con = console()
    title = (f"{report['model']['id']}  mode {wl['label']}  vision tokens {wl['vision_tokens']}  "
             f"prefill {wl['prefill_tokens']} tok  batch {wl['batch']}  decode KV {wl['decode_kv_len']}")
    preds = report.get("predictions") or {}
    t = Table(title=title, title_justify="left", caption=SUMMARY_NOTE if preds else None, caption_justify="left")
    for col in ("stage", "tensor-core", "CUDA-core", "bytes", "FLOP/B", "kernels", "ops"):
        t.add_column(col, justify="right" if col != "stage" else "left")
    if preds:
        for col in ("device ms", "host ms", "wall ms", "bound"):
            t.add_column(col, justify="right")
    for name, s in stage_view(report).items():
        row = [name, _fmt(s["tc_flops"], "FLOP"), _fmt(s["cc_flops"], "FLOP"), _fmt(s["bytes"], "B"),
               f"{s['intensity_flop_per_byte']:.1f}", str(s["kernels"]), str(s["ops"])]
        if preds:
            row += [f"{s['device_s'] * 1e3:.3f}", f"{s['host_s'] * 1e3:.3f}", f"{s['wall_s'] * 1e3:.3f}",
                    s["bound"]] if "device_s" in s else ["-", "-", "-", "-"]
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


def resolve_device(device: str | None, device_file: Path | None, profile: Path | None,
                   notes: list[str] | None = None) -> tuple[Any, Any] | None:
    """(spec, profile) for --device / --device-file / --profile, or None without a device (prediction.py)."""
    from dsocr_trace.prediction import resolve_hardware

    return resolve_hardware(device, device_file, profile, notes)


HOST_US_RANGE = (0.5, 1000.0)  # per Python-level torch call: a fast desktop ~5 us, a loaded server ~50


def with_host(profile: Any, host_us: float, notes: list[str]) -> Any:
    """The profile driven by a host that spends `host_us` per Python-level torch call (what `calibrate`'s host
    probe measures as host_op_s): every host cost scaled by the same factor."""
    import math

    from dsocr_trace.hardware.profile import host_scaled

    lo, hi = HOST_US_RANGE
    if not (math.isfinite(host_us) and lo <= host_us <= hi):
        raise UserError(f"--host-us-per-call {host_us} is outside {lo:g}..{hi:g} us: give the host cost per "
                        "Python-level torch call of the machine that drives the GPU (calibrate's host_op_s)")
    factor = host_us * 1e-6 / profile.host_op_s
    notes.append(f"host: {host_us:g} us per Python-level call (--host-us-per-call), the profile's host "
                 f"{profile.host_op_s * 1e6:.1f} us: every host cost x {factor:.2f}")
    return host_scaled(profile, factor)


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
            from dsocr_trace.report.writers import trace_nodes

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
    con = console()
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
    from dsocr_trace.report.tables import write_run_tables
    from dsocr_trace.report.writers import trace_nodes, write_all

    nodes = trace_nodes(a)
    write_all(report, folder, nodes=nodes)
    write_run_tables(report, folder, nodes)
    if plots:
        from dsocr_trace.report.plots import write_plots

        write_plots(report, folder)


def devices_command(export: str | None = None) -> None:
    """The catalog table, or (export) one catalog file verbatim: the starting point of a --device-file."""
    import sys

    from rich.table import Table

    from dsocr_trace.hardware.profile import packaged_profile, profile_kind
    from dsocr_trace.hardware.spec import catalog, catalog_file_text, load_device

    if export is not None:
        spec = load_device(export)
        if not spec.origin.startswith("catalog"):
            raise UserError(f"--export takes a catalog device (got {export!r}): see `dsocr-trace devices`")
        sys.stdout.write(catalog_file_text(spec.key))
        return
    t = Table(title="GPU catalog (dense figures; BF16 = tensor cores with FP32 accumulate)", title_justify="left",
              caption="Your own GPU: `dsocr-trace devices --export h100 > my-gpu.yaml`, edit the figures, pass "
                      "--device-file my-gpu.yaml.", caption_justify="left")
    for col in ("key", "name", "BF16 TFLOP/s", "FP32 CUDA TFLOP/s", "GB/s", "memory GiB", "L2 MiB", "SMs",
                "profile", "sources"):
        t.add_column(col)
    for d in catalog():
        srcs = sorted(set(d.sources.values()))
        prof = packaged_profile(d)
        kind = profile_kind(prof.source)
        # calibrated: measured on this GPU; transferred: another GPU's calibration moved by the cross-GPU model
        if kind == "calibrated":
            shown = prof.label
        elif kind == "transferred" and prof.transfer is not None:
            shown = f"transferred from {prof.transfer.source_device}"
        else:
            shown = kind
        t.add_row(d.key, d.name, f"{d.tc_flops / 1e12:g}", f"{d.cc_flops / 1e12:g}", f"{d.mem_bw / 1e9:g}",
                  f"{d.mem_bytes / 2**30:.1f}", f"{d.l2_bytes / 2**20:g}", str(d.sm_count),
                  shown, "; ".join(srcs)[:120])
    console().print(t)


def sweep_command(*, model: str, modes: str, devices: str, batch: str, output_tokens: str, execution: str,
                  out: Path, force: bool, plots: Path | None = None, html: Path | None = None,
                  implementation: str = "native", profiles: Sequence[Path] = (), dtype: str = "bf16",
                  routing: str | None = None, prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
                  rank: str = "measured") -> list[dict[str, Any]]:
    from contextlib import ExitStack

    from dsocr_trace.costs.routing import parse_routing
    from dsocr_trace.planner import candidates, check_rank, price_candidates, print_sweep_summary, write_rows

    check_rank(rank)
    route = parse_routing(routing)
    cands = candidates(devices, profiles)
    check_target(out, force, "sweep file")
    if out.suffix.lower() not in (".csv", ".json", ".parquet"):
        raise UserError(f"--out {str(out)!r} must end in .csv, .json or .parquet")
    if plots is not None:
        if plots.resolve() == out.resolve():
            raise UserError("--plots names a folder for the PNGs: give it a path other than --out")
        check_target(plots, force, "plots folder")
    if html is not None:
        check_html_target(html, force, out)
    from dsocr_trace.report.console import progress_bar

    with progress_bar("pricing") as update:
        rows = price_candidates(model, modes, batch, output_tokens, cands, execution, dtype, implementation, route,
                                prompt_tokens, progress=update)
    # every output is written to a temporary sibling and renamed into place at the end: all of them or none
    with ExitStack() as stack:
        if plots is not None:
            from dsocr_trace.report.plots import write_sweep_plots

            write_sweep_plots(rows, stack.enter_context(atomic_dir(plots, force)))
        if html is not None:
            from dsocr_trace.report.html import sweep_html

            stack.enter_context(atomic_file(html, force, "HTML file")).write_text(sweep_html(rows), encoding="utf-8")
        write_rows(rows, stack.enter_context(atomic_file(out, force, "sweep file")), out.suffix.lower())
    print_sweep_summary(rows, rank=rank)  # after the files: a closed stdout must not cost them
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
    from dsocr_trace.validate.inputs import read_json

    return read_json(path, what)


def _measured_execution(predicted: str, phase: str | None) -> str | None:
    """The measured execution a prediction is compared with. The harness measures HF's eager kernels, launched
    one by one or (decode) replayed as one CUDA graph; `graph` predicts eager prefill and a graph decode;
    nothing measured is the optimized (fused) engine."""
    if predicted == "graph":
        return "eager" if phase == "prefill" else "graph"
    return "eager" if predicted == "eager" else None


def _matching_runs(report: dict[str, Any], measured: dict[str, Any], phase: str | None,
                   any_execution: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(runs of the report's workload and execution, runs of its workload skipped for their execution)."""
    wl = report["workload"]
    crops = wl.get("crops")
    want_kv = wl["decode_kv_len"] - 1
    out, other_exec = [], []
    for r in measured.get("runs", []):
        w = r.get("workload", {})
        if "error" in r or (phase and w.get("phase") != phase):
            continue
        if w.get("mode") != wl["mode"] or (w.get("crops") or None) != (crops or None) or w.get("batch") != wl["batch"]:
            continue
        if w.get("phase") == "decode" and w.get("kv_len") not in (None, want_kv):
            continue
        want = _measured_execution(report["predictions"]["execution"], w.get("phase"))
        if not any_execution and r.get("execution", "eager") != want:
            other_exec.append(r)
            continue
        out.append(r)
    return out, other_exec


def _emit(result: dict[str, Any], md: str, out: Path | None, force: bool, name: str) -> None:
    """Print the Markdown table; with --out, write <name>.json and <name>.md together (or neither)."""
    print(md)
    if out is not None:
        with atomic_dir(out, force) as tmp:
            (tmp / f"{name}.json").write_bytes(dumps(result))
            (tmp / f"{name}.md").write_text(md)


def _is_chrome_trace(path: Path) -> bool:
    if path.name.endswith(".gz"):
        return True
    with path.open("rb") as f:
        return b"traceEvents" in f.read(4096)


def _trace_measurement(path: Path, report: dict[str, Any], phase: str | None,
                       notes: list[str]) -> tuple[dict[str, Any], str]:
    """A Chrome trace as a measured document, its phase checked against (or detected from) its module ranges."""
    from dsocr_trace.analyze import load_model
    from dsocr_trace.validate.chrome import load_trace, measured_from_trace, step_phases

    events = load_trace(path)
    stage_fn = load_model(report["model"]["id"]).stage_fn
    has_vision = any(k.startswith("vision") and v["tc_flops"] + v["cc_flops"] > 0
                     for k, v in report["stages"].items())
    found = step_phases(events, stage_fn)
    steps = None
    if not has_vision:
        if phase is None:
            raise UserError(f"cannot tell the phase of {str(path)!r}: the model has no vision tower to mark a "
                            "prefill; pass --phase prefill or --phase decode")
    elif phase is None:
        if len(set(found)) > 1:
            raise UserError(f"{str(path)!r} holds prefill and decode steps ({found.count('prefill')} with vision-"
                            f"tower kernels, {found.count('decode')} without): pass --phase to pick one")
        phase = found[0]
        notes.append(f"phase detected from the trace: {phase} "
                     f"({'vision-tower' if phase == 'prefill' else 'no vision-tower'} kernels)")
    else:
        steps = [k for k, ph in enumerate(found) if ph == phase]
        if not steps:
            raise UserError(f"--phase {phase}, but every step of {str(path)!r} is a {found[0]} "
                            f"({'it runs the vision tower' if found[0] == 'prefill' else 'no vision-tower kernels'})"
                            f": pass --phase {found[0]} or the trace of a {phase}")
        if len(steps) < len(found):
            notes.append(f"kept the {len(steps)} {phase} steps of the trace, skipped {len(found) - len(steps)}")
    wl = report["workload"]
    w = {"mode": wl["mode"], "label": wl["label"], "crops": wl.get("crops"), "batch": wl["batch"],
         "prompt_tokens": wl["prompt_tokens"], "phase": phase,
         "kv_len": wl["decode_kv_len"] - 1 if phase == "decode" else None}
    return measured_from_trace(events, w, stage_fn, steps), phase


def _measured_gpu_note(report: dict[str, Any], measured: dict[str, Any]) -> str | None:
    """A note when the measurement names a GPU other than the one predicted for."""
    name = str((measured.get("device") or {}).get("name", ""))
    pred = report["predictions"]["device"]
    if not name or name == "from Chrome trace":
        return None
    from dsocr_trace.hardware.spec import catalog

    def tokens(s: str) -> set[str]:
        return {t for t in s.lower().replace("-", " ").split() if any(ch.isdigit() for ch in t)}

    spec = next((c for c in catalog() if c.key == pred["key"]), None)
    want = tokens(pred["name"]) | (tokens(spec.vendor_model) if spec else set())
    if want & tokens(name):
        return None
    return (f"measured on {name}, predicted for {pred['name']}: the errors include the difference between the "
            "two GPUs")


def compare_command(report_path: Path, measured_path: Path, phase: str | None, out: Path | None,
                    force: bool, any_execution: bool = False) -> dict[str, Any]:
    """Predicted (a report.json with predictions) vs measured (measured.json or a torch.profiler Chrome trace)."""
    from dsocr_trace.validate.compare import to_markdown

    if out is not None:
        check_target(out, force)
    result = compare_result(report_path, measured_path, phase, any_execution)
    for line in result["notes"]:
        warn(line)
    _emit(result, to_markdown(result), out, force, "compare")
    return result


def compare_result(report_path: Path, measured_path: Path, phase: str | None = None,
                   any_execution: bool = False) -> dict[str, Any]:
    """The comparison document of `compare` (warnings in its `notes`), written nowhere."""
    from dsocr_trace.hardware.provenance import provenance_of_report
    from dsocr_trace.validate.compare import compare_run, summarize
    from dsocr_trace.validate.inputs import check_measured, load_report

    if phase is not None and phase not in ("prefill", "decode"):
        raise UserError(f"--phase {phase!r}: use prefill or decode")
    report = load_report(report_path, need_predictions=True)
    if not measured_path.is_file():
        raise UserError(f"measured file {str(measured_path)!r} is not a file: pass measured.json or a Chrome trace")
    notes: list[str] = []
    if _is_chrome_trace(measured_path):
        measured, phase = _trace_measurement(measured_path, report, phase, notes)
    else:
        measured = check_measured(_load_json(measured_path, "measured timings"), f"measured file {measured_path}")
    pred_exec = report["predictions"]["execution"]
    runs, skipped = _matching_runs(report, measured, phase, any_execution)
    if skipped:
        kinds = sorted({r.get("execution", "eager") for r in skipped})
        notes.append(f"skipped {len(skipped)} {'/'.join(kinds)} run(s) of this workload: the report predicts "
                     f"{pred_exec} execution (`analyze --execution {kinds[0]}` to compare them, or --any-execution)")
    if not runs:
        if skipped:
            raise UserError(f"the measured runs of {report['workload']['label']} B{report['workload']['batch']} are "
                            f"{'/'.join(sorted({r.get('execution', 'eager') for r in skipped}))} runs and the report "
                            f"predicts {pred_exec}: rerun analyze with a matching --execution, or pass --any-execution")
        have = sorted({f"{r['workload'].get('label')} B{r['workload'].get('batch')} {r['workload'].get('phase')}"
                       for r in measured.get("runs", []) if "workload" in r})
        raise UserError(f"no measured run matches the report's workload ({report['workload']['label']} "
                        f"B{report['workload']['batch']}); the file has: {', '.join(have) or 'nothing'}")
    rows = [compare_run(report["predictions"], r, r["workload"]["phase"]) for r in runs]
    usable = [r for r in rows if r["device_total"] or r["wall"]["error"] is not None
              or any(v["error"] is not None for v in r["stages"].values())]
    if not usable:
        raise UserError(f"no usable measurement in {str(measured_path)!r}: the matching runs hold no kernel time "
                        "and no wall time (an empty trace, or kernels outside any mod: range)")
    gpu_note = _measured_gpu_note(report, measured)
    if gpu_note:
        notes.append(gpu_note)
    prov = provenance_of_report(report)
    result = {"schema": "dsocr-trace/validation/1", "device": measured.get("device", {}),
              "predicted_device": report["predictions"]["device"]["name"], "predicted_execution": pred_exec,
              "profile": report["predictions"]["profile"]["source"],
              "profile_kind": prov["kind"] if prov else None, "notes": notes,
              "runs": usable, "summary": summarize(usable)}
    return result


def _side(r: dict[str, Any]) -> dict[str, Any]:
    """What identifies a report's numbers: the rows of diff's header."""
    from dsocr_trace.hardware.provenance import provenance_of_report

    wl = r["workload"]
    p = r.get("predictions") or {}
    prov = provenance_of_report(r)
    return {
        "model": r["model"]["id"],
        "workload": f"{wl['label']} batch {wl['batch']}, {wl['prompt_tokens']} prompt + {wl['output_tokens']} "
                    f"output tokens, decode KV {wl['decode_kv_len']}",
        "device": p["device"]["name"] if p else "none (counts only)",
        "execution": p.get("execution", "-") if p else "-",
        "weight dtype": p.get("weight_dtype", "-") if p else "-",
        "profile": prov["text"] if prov else "-",
        "moe skew": str((r.get("options") or {}).get("moe_skew", 0.0)),
        "tool": str((r.get("tool") or {}).get("version", "?")),
    }


def diff_command(a_path: Path, b_path: Path, out: Path | None, force: bool) -> dict[str, Any]:
    """Per-stage and per-module-type deltas between two reports (modes, GPUs, executions); says what differs."""
    from dsocr_trace.hardware.provenance import provenance_of_report
    from dsocr_trace.validate.inputs import load_report

    a, b = load_report(a_path), load_report(b_path)
    if out is not None:
        check_target(out, force)

    def delta(x: float, y: float) -> dict[str, Any]:
        return {"a": x, "b": y, "delta": y - x, "ratio": (y / x) if x else None}

    sa_, sb_ = _side(a), _side(b)
    differs = {k: {"a": sa_[k], "b": sb_[k]} for k in sa_ if sa_[k] != sb_[k]}
    pa_all: dict[str, Any] = a.get("predictions") or {}
    pb_all: dict[str, Any] = b.get("predictions") or {}
    both = bool(pa_all and pb_all)
    notes: list[str] = []
    if not differs:
        notes.append("A and B describe the same run (model, workload, device, execution, dtype, profile): "
                     "every delta is expected to be 0")
    if bool(pa_all) != bool(pb_all):
        has, lacks = ("A", "B") if pa_all else ("B", "A")
        notes.append(f"only {has} has predictions ({lacks} was analyzed without --device): times, request and "
                     "memory are compared only when both have them; FLOPs, bytes and kernels are compared")
    prov_a, prov_b = provenance_of_report(a), provenance_of_report(b)
    if prov_a and prov_b and prov_a["calibrated"] != prov_b["calibrated"]:
        cal, raw = ("A", "B") if prov_a["calibrated"] else ("B", "A")
        notes.append(f"{cal}'s times come from a calibrated profile, {raw}'s from datasheet figures only: part of "
                     "the time difference is the profile, not the hardware")
    stages: dict[str, Any] = {}
    names = list(a["stages"]) + [n for n in b["stages"] if n not in a["stages"]]
    for name in names:
        sa, sb = a["stages"].get(name), b["stages"].get(name)
        if sa is None or sb is None:
            stages[name] = {"only_in": "A" if sb is None else "B"}
            continue
        row: dict[str, Any] = {k: delta(sa[k], sb[k]) for k in ("tc_flops", "cc_flops", "bytes", "kernels")}
        pa = pa_all.get("stages", {}).get(name)
        pb = pb_all.get("stages", {}).get(name)
        if pa and pb:
            row.update({k: delta(pa[k], pb[k]) for k in ("device_s", "host_s", "wall_s")})
        stages[name] = row
    types: dict[str, Any] = {}
    for phase in ("prefill", "decode"):
        # device time when both sides have predictions, else analytic FLOPs: never a key one side lacks
        key = "device_s" if both else "flops"
        src_a = (pa_all["module_types"] if both else a["module_types"]).get(phase, {})
        src_b = (pb_all["module_types"] if both else b["module_types"]).get(phase, {})
        types[phase] = {"metric": key, "types": {
            t: delta(float(src_a.get(t, {}).get(key, 0.0)), float(src_b.get(t, {}).get(key, 0.0)))
            for t in sorted(set(src_a) | set(src_b))}}
    req: dict[str, Any] | None = None
    if both:
        ra, rb = pa_all["request"], pb_all["request"]
        req = {k: delta(ra[k], rb[k]) for k in ("ttft_s", "tpot_mean_s", "e2e_s", "pages_per_s", "pages_per_gpu_day")}
    result = {"a": str(a_path), "b": str(b_path), "differs": differs, "notes": notes,
              "predictions": {"a": bool(pa_all), "b": bool(pb_all)},
              "profiles": {"a": prov_a, "b": prov_b}, "stages": stages, "module_types": types, "request": req}
    _emit(result, diff_markdown(result, a_path, b_path), out, force, "diff")
    return result


def diff_markdown(result: dict[str, Any], a_path: Path, b_path: Path) -> str:
    def ratio(v: dict[str, Any]) -> str:
        return "-" if v.get("ratio") is None else f"{v['ratio']:.2f}x"

    lines = [f"# diff: A = {a_path}  B = {b_path}", ""]
    if result["differs"]:
        lines += ["| what differs | A | B |", "|---|---|---|"]
        lines += [f"| {k} | {v['a']} | {v['b']} |" for k, v in result["differs"].items()]
        lines.append("")
    lines += [f"Note: {n}." for n in result["notes"]]
    if result["notes"]:
        lines.append("")
    lines += ["| stage | FLOPs A | FLOPs B | device ms A | device ms B | wall ms A | wall ms B | B/A wall |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in result["stages"].items():
        if "only_in" in r:
            lines.append(f"| {name} | only in {r['only_in']} | | | | | | - |")
            continue

        def ms(k: str, side: str, r: dict[str, Any] = r) -> str:
            return f"{r[k][side] * 1e3:.3f}" if k in r else "-"
        flops_a = r["tc_flops"]["a"] + r["cc_flops"]["a"]
        flops_b = r["tc_flops"]["b"] + r["cc_flops"]["b"]
        lines.append(f"| {name} | {flops_a:.3g} | {flops_b:.3g} | {ms('device_s', 'a')} | {ms('device_s', 'b')} | "
                     f"{ms('wall_s', 'a')} | {ms('wall_s', 'b')} | {ratio(r['wall_s']) if 'wall_s' in r else '-'} |")
    if result["request"]:
        lines += ["", "| request | A | B | B/A |", "|---|---:|---:|---:|"]
        for k, v in result["request"].items():
            lines.append(f"| {k} | {v['a']:.4g} | {v['b']:.4g} | {ratio(v)} |")
    return "\n".join(lines) + "\n"


# calibrate --quick in the model: two prefill workloads (in-model factors) and three host-bound decode steps
# (host cost per call, CUDA-graph gap) instead of 8 + 12: with no training sweep, 80 s on an H200 (was 163 s)
QUICK_PREFILL = ("tiny", "base")
QUICK_DECODE = ((1, (300, 4000)), (32, (1000,)))


def calibration_harness_args(quick: bool = False) -> list[str]:
    """The harness run of `calibrate`: every calibration workload in the model (validate.calsweep), eager with
    per-module kernel times, and its decode steps also as CUDA graphs; `quick`: QUICK_PREFILL and QUICK_DECODE."""
    from dsocr_trace.validate.calsweep import CALIBRATION_DECODE, CALIBRATION_PREFILL, workload_label

    prefill = [workload_label(*c) for c in CALIBRATION_PREFILL]
    if quick:
        prefill = [m for m in prefill if m in QUICK_PREFILL]
    modes = ",".join(prefill)
    decode = ";".join(f"{b}:{','.join(str(k) for k in kvs)}" for b, kvs in (QUICK_DECODE if quick else
                                                                             CALIBRATION_DECODE))
    return ["--modes", modes, "--decode", decode, "--quick", "--trace", "none"]


def probe_host_command(out: Path, force: bool, cuda: bool) -> None:
    """Time tiny torch calls on this machine (validate.hostprobe): CPU tensors always, cuda:0 with `cuda`."""
    import torch

    from dsocr_trace.validate.hostprobe import document_text, probe

    if cuda and not torch.cuda.is_available():
        raise UserError("host --cuda found no CUDA device: run it without --cuda, or on the GPU machine")
    check_target(out, force, "host probe file")
    doc = probe(cuda)
    with atomic_file(out, force, "host probe file") as tmp:
        tmp.write_text(document_text(doc))
    line = f"wrote {out}: {doc['cpu_op_s'] * 1e6:.2f} us per CPU torch call"
    if "cuda" in doc:
        line += f", {doc['cuda']['host_op_s'] * 1e6:.2f} us per CUDA torch call"
    print(line + "; eager decode cost 2.0-3.1x the CUDA figure per call on the measured H200 host "
          "(benchmarks/results/h200-host/host-check.md): pass that as analyze --host-us-per-call")


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
    dev_file = out.with_name(out.name.removesuffix(".json").removesuffix(".gz") + ".device.yaml")
    if device_for(torch.cuda.get_device_name(0)) is None:
        check_target(dev_file, force, "device file")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        calibrate.main(["--out", str(tmp / "calibration.json")] + (["--quick"] if quick else []))
        harness.main(["--out", str(tmp), *calibration_harness_args(quick)])
        cal = json.loads((tmp / "calibration.json").read_text())
        measured = json.loads((tmp / "measured.json").read_text())
    doc = profile_document(cal, "", host_rows(model, measured["runs"]), graph_rows(measured["runs"]),
                           command=" ".join(["dsocr-trace", *sys.argv[1:]]), elapsed_s=time.perf_counter() - t0)
    # a GPU outside the catalog is calibrated as itself, and its device file is written beside the profile
    spec = device_for(torch.cuda.get_device_name(0), doc)
    assert spec is not None
    doc["device"] = spec.key
    prof = profile_from_document(doc, spec, "new profile")
    doc["factors"] = fit_factors(inmodel_observations(prof.model, measured["runs"], model))
    doc["inmodel_file"] = side.name
    with atomic_file(side, force, "in-model measurements file") as tmps:
        tmps.write_bytes(orjson_dumps(measured))
    with atomic_file(out, force, "profile file") as tmpf:
        tmpf.write_bytes(orjson_dumps(doc))
    if not spec.origin.startswith("catalog"):
        import yaml

        from dsocr_trace.hardware.spec import spec_to_dict

        with atomic_file(dev_file, force, "device file") as tmpd:
            tmpd.write_text(yaml.safe_dump(spec_to_dict(spec), sort_keys=False))
        print(f"{spec.name} is not in the catalog: wrote {dev_file} (measured figures; edit the datasheet "
              f"figures it assumed), use it with --device-file {dev_file} --profile {out}")
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

    from dsocr_trace.hardware.profile import load_profile, packaged_profile, read_document
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
    name = torch.cuda.get_device_name(0)
    spec = device_for(name, read_document(profile) if profile is not None else None)
    if spec is None:
        raise UserError(f"{name} is not in the catalog: run `dsocr-trace calibrate --out gpu-profile.json` on it "
                        "first and pass --profile gpu-profile.json")
    prof = load_profile(profile, spec) if profile is not None else packaged_profile(spec)
    with atomic_dir(out, force) as tmp:
        harness.main(["--out", str(tmp), "--modes", workloads, "--decode", decode or "", "--trace", "none"])
        measured = json.loads((tmp / "measured.json").read_text())
        res = validate_measured(measured, prof, spec, model)
        (tmp / "validation.json").write_bytes(dumps(res))
        (tmp / "validation.md").write_text(to_markdown(res))
    print(to_markdown(res))


def serve_command(host: str, port: int, workers: int, openapi: Path | None, force: bool = False) -> None:
    """Serve the planning service with uvicorn, or write its OpenAPI description."""
    if openapi is not None:
        import orjson

        from dsocr_trace.report.output import atomic_file
        from dsocr_trace.service import openapi_document

        with atomic_file(openapi, force, "OpenAPI file") as tmp:
            tmp.write_bytes(orjson.dumps(openapi_document(), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
                            + b"\n")
        return
    import uvicorn

    try:
        uvicorn.run("dsocr_trace.service:create_app", factory=True, host=host, port=port, workers=workers,
                    log_level="info")
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): pick another --port") from None
