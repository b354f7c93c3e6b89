"""The GPU commands: `calibrate` (a profile of this GPU), `validate` (held-out workloads measured and compared) and
`host` (the host-only probe)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dsocr_trace.commands.common import orjson_dumps
from dsocr_trace.errors import UserError
from dsocr_trace.report.build import dumps
from dsocr_trace.report.output import atomic_dir, atomic_file, check_target
from dsocr_trace.workload import make_workload

if TYPE_CHECKING:
    from dsocr_trace.validate.harness import HarnessOptions

# calibrate --quick in the model: two prefill workloads (in-model factors) and three host-bound decode steps
# (host cost per call, CUDA-graph gap) instead of 8 + 12: with no training sweep, 80 s on an H200 (was 163 s)
QUICK_PREFILL = ("tiny", "base")
QUICK_DECODE = ((1, (300, 4000)), (32, (1000,)))


def calibration_harness_options(quick: bool = False) -> HarnessOptions:
    """The harness run of `calibrate`: every calibration workload in the model (validate.calsweep), eager with
    per-module kernel times, and its decode steps also as CUDA graphs; `quick`: QUICK_PREFILL and QUICK_DECODE."""
    from dsocr_trace.validate.calsweep import CALIBRATION_DECODE, CALIBRATION_PREFILL, workload_label
    from dsocr_trace.validate.harness import HarnessOptions

    prefill = [workload_label(*c) for c in CALIBRATION_PREFILL]
    if quick:
        prefill = [m for m in prefill if m in QUICK_PREFILL]
    modes = ",".join(prefill)
    decode = ";".join(f"{b}:{','.join(str(k) for k in kvs)}" for b, kvs in (QUICK_DECODE if quick else
                                                                             CALIBRATION_DECODE))
    return HarnessOptions(modes=modes, decode=decode, quick=True, trace="none")


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
    from dsocr_trace.kernels.model import perf_model
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
        calibrate.measure_calibration(tmp / "calibration.json", quick=quick)
        harness.measure_workloads(tmp, calibration_harness_options(quick))
        cal = json.loads((tmp / "calibration.json").read_text())
        measured = json.loads((tmp / "measured.json").read_text())
    doc = profile_document(cal, "", host_rows(model, measured["runs"]), graph_rows(measured["runs"]),
                           command=" ".join(["dsocr-trace", *sys.argv[1:]]), elapsed_s=time.perf_counter() - t0)
    # a GPU outside the catalog is calibrated as itself, and its device file is written beside the profile
    spec = device_for(torch.cuda.get_device_name(0), doc)
    assert spec is not None
    doc["device"] = spec.key
    prof = profile_from_document(doc, spec, "new profile")
    doc["factors"] = fit_factors(inmodel_observations(perf_model(prof), measured["runs"], model))
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
        harness.measure_workloads(tmp, harness.HarnessOptions(modes=workloads, decode=decode or "", trace="none"))
        measured = json.loads((tmp / "measured.json").read_text())
        res = validate_measured(measured, prof, spec, model)
        (tmp / "validation.json").write_bytes(dumps(res))
        (tmp / "validation.md").write_text(to_markdown(res))
    print(to_markdown(res))
