"""`dsocr-trace compare` and `diff`: a report against a measurement (harness JSON or Chrome trace), two reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dsocr_trace.commands.common import _load_json, warn
from dsocr_trace.errors import UserError
from dsocr_trace.report.build import dumps
from dsocr_trace.report.output import atomic_dir, check_target


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
