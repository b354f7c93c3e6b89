"""`dsocr-trace devices`: the GPU catalog with its sources and calibrations, or one device file."""

from __future__ import annotations

from dsocr_trace.errors import UserError
from dsocr_trace.report.console import console


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
