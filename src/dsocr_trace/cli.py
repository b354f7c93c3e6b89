"""The `dsocr-trace` command line."""

from __future__ import annotations

import os
import signal
import sys
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from dsocr_trace import __version__
from dsocr_trace.errors import RECEIVED, Interrupted, UserError, raise_if_interrupted
from dsocr_trace.models.source import DEFAULT_MODEL
from dsocr_trace.workload import DEFAULT_PROMPT_TOKENS

app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="What DeepSeek-OCR costs, op by op, from a meta-device trace: FLOPs, bytes, memory, time.")


class Mode(StrEnum):
    tiny = "tiny"
    small = "small"
    base = "base"
    large = "large"
    gundam = "gundam"


class Tracer(StrEnum):
    dispatch = "dispatch"
    export = "export"


class Execution(StrEnum):
    eager = "eager"
    fused = "fused"
    graph = "graph"
    compiled = "compiled"


class Implementation(StrEnum):
    native = "native"
    remote = "remote"
    remote_flash = "remote-flash"


class Dtype(StrEnum):
    bf16 = "bf16"
    fp16 = "fp16"
    fp8 = "fp8"


class Rank(StrEnum):
    measured = "measured"
    throughput = "throughput"
    cost = "cost"


class Phase(StrEnum):
    prefill = "prefill"
    decode = "decode"


def _value(x: Enum | None) -> Any:
    return None if x is None else x.value


def _version(value: bool) -> None:
    if value:
        print(f"dsocr-trace {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """What DeepSeek-OCR costs, op by op, from a meta-device trace: FLOPs, bytes, memory, time."""


MemUtilOpt = Annotated[float, typer.Option(
    "--gpu-memory-utilization", help="Share of the GPU's allocatable memory a point may use, in (0, 1] (as "
                                     "vLLM's option; 1: all that torch can allocate).")]


def _set_memory_utilization(x: float) -> None:
    from dsocr_trace.hardware.spec import MEMORY_UTILIZATION

    if not 0 < x <= 1:
        raise UserError(f"--gpu-memory-utilization {x:g} is outside (0, 1]: give a share such as 0.9")
    MEMORY_UTILIZATION.set(x)


PriceOpt = Annotated[str | None, typer.Option(
    "--price-per-hour", help="US dollars per GPU-hour, for cost per page: one number for every GPU, or "
                             "KEY=USD,KEY=USD (catalog defaults: RunPod on-demand, March 2026).")]


def _set_prices(text: str | None) -> None:
    import math

    from dsocr_trace.hardware.spec import PRICES

    if text is None:
        return
    prices: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        key, _, val = part.rpartition("=")
        try:
            usd = float(val)
        except ValueError:
            usd = math.nan
        if not part or not math.isfinite(usd) or not 0 < usd <= 1000:
            raise UserError(f"--price-per-hour {part!r}: give US dollars per GPU-hour above 0 (at most 1000), as "
                            "2.5 or h100=2.5,rtx5090=0.7")
        name = key.strip()
        if name:
            from dsocr_trace.hardware.spec import load_device

            try:
                name = load_device(name).key  # an alias ('H100-SXM') prices its catalog entry
            except UserError:
                pass  # a device file's stem
        prices[name.lower() or "*"] = usd
    PRICES.set(prices)


ModelOpt = Annotated[str, typer.Option("--model", help="Hub id shipped offline, or PATH to config.json / folder.")]
ModeOpt = Annotated[Mode, typer.Option("--mode", case_sensitive=False,
                                       help="Resolution mode: tiny 512, small 640, base 1024, large 1280 px, "
                                            "gundam (1024 global view + 640 px tiles; without --image-size or "
                                            "--crops an A4 page at 150 dpi, 1240x1754 px: 2x3 tiles).")]


ImplementationOpt = Annotated[Implementation, typer.Option(
    help="native: transformers' own DeepSeek-OCR classes (grouped-GEMM experts, SDPA); remote: the official "
         "remote code as its README runs it (trust_remote_code, transformers 4.46.3, model.infer: expert loop "
         "with a host sync per MoE layer, eager attention, generate() with a no-repeat 20-gram processor); "
         "remote-flash: the same with flash_attention_2. The remote code runs eager only.")]
ProfilesOpt = Annotated[list[Path] | None, typer.Option(
    "--profile", help="Calibrated profile JSON, repeatable: adds its GPU priced with it.")]
PromptTokensOpt = Annotated[int, typer.Option(help="Prompt text tokens (BOS and image tokens excluded).")]
DtypeOpt = Annotated[Dtype, typer.Option(help="Weight dtype of the memory estimate (fp8: decoder, embedding and "
                                               "lm_head only). Times are for bf16 kernels.")]
RoutingOpt = Annotated[str | None, typer.Option(help="MoE routing: uniform, skew:S or histogram:FILE.")]
RankOpt = Annotated[Rank, typer.Option(case_sensitive=False, help=(
    "measured: executions measured on a GPU (eager, graph, compiled) before modelled ones (fused), then pages per "
    "GPU-day; throughput: pages per GPU-day only; cost: measured first, then USD per page."))]


@app.command()
def analyze(
    model: ModelOpt = DEFAULT_MODEL,
    mode: ModeOpt = Mode.base,
    crops: Annotated[str | None, typer.Option(help="Gundam tile grid WxH (columns x rows), 2..9 tiles; "
                                                   "or give --image-size instead.")] = None,
    image_size: Annotated[str | None, typer.Option(help="Page size WxH in pixels: Gundam picks its tile grid from "
                                                        "it (other modes resize every page).")] = None,
    prompt_tokens: PromptTokensOpt = DEFAULT_PROMPT_TOKENS,
    output_tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 500,
    batch: Annotated[int, typer.Option(help="Sequences (pages) per batch.")] = 1,
    kv_len: Annotated[int | None, typer.Option(help="KV length of the traced decode step (default: prefill).")] = None,
    tracer: Annotated[Tracer, typer.Option(help="dispatch recorder, or torch.export (prefill only).")]
    = Tracer.dispatch,
    out: Annotated[Path | None, typer.Option(help="Run folder for report.json and the other outputs.")] = None,
    graphml: Annotated[Path | None, typer.Option(help="Write the op graph (both phases) as GraphML.")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --out folder, --graphml or --timeline file.")]
    = False,
    device: Annotated[str | None, typer.Option(help="GPU from the catalog (see `dsocr-trace devices`).")] = None,
    device_file: Annotated[Path | None, typer.Option(help="Your own device spec (YAML/JSON): start from "
                                                          "`dsocr-trace devices --export h100`.")] = None,
    profile: Annotated[Path | None, typer.Option(help="Calibrated profile JSON (`dsocr-trace calibrate`).")] = None,
    execution: Annotated[Execution | None, typer.Option(
        help="eager: HF transformers as shipped; fused: an optimized engine (fused kernels, CUDA-graph decode); "
             "graph: eager kernels with the decode step replayed as a CUDA graph; compiled: torch.compile as "
             "measured (inductor fusion per stage, reduce-overhead CUDA-graph decode). Default eager; needs a device.")]
    = None,
    dtype: Annotated[Dtype | None, typer.Option(
        help="Weight dtype of the memory estimate (fp8: decoder, embedding and lm_head only; vision stays bf16). "
             "Default bf16; needs a device. Times are for bf16 kernels.")] = None,
    moe_skew: Annotated[float, typer.Option(help="MoE routing skew S in [0, 4]: experts picked in proportion to "
                                            "1/(rank+1)^S (0 = uniform; ~1.2 = a random-weight router).")] = 0.0,
    routing: Annotated[str | None, typer.Option(help="MoE routing: uniform, skew:S or histogram:FILE (a "
                                                "measured.json or {layer: [rows per expert]}).")] = None,
    timeline: Annotated[Path | None, typer.Option(help="Write the predicted kernel timeline (Chrome trace); may "
                                                       "lie inside --out.")] = None,
    plots: Annotated[bool, typer.Option(help="Write PNG plots into the run folder.")] = False,
    phase: Annotated[str, typer.Option(help="infer (prefill + decode) or train (+ one fine-tuning step).")]
    = "infer",
    optimizer: Annotated[str | None, typer.Option(help="train: adamw (fused, default) or sgd.")] = None,
    trainable: Annotated[str | None, typer.Option(help="train: full (default), decoder or lora.")] = None,
    lora_rank: Annotated[int | None, typer.Option(help="train: LoRA rank with --trainable lora (default 16).")]
    = None,
    checkpointing: Annotated[bool | None, typer.Option("--checkpointing/--no-checkpointing",
                                                       help="train: activation checkpointing (default off).")]
    = None,
    precision: Annotated[str | None, typer.Option(help="train: bf16 (default, HF Trainer's) or mixed "
                                                       "(fp32 master weights and moments).")] = None,
    html: Annotated[Path | None, typer.Option(help="Write a single-file interactive HTML report (.html).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout (nothing else "
                                                          "there; warnings stay on stderr).")] = False,
    gpu_memory_utilization: MemUtilOpt = 1.0,
    price_per_hour: PriceOpt = None,
    implementation: ImplementationOpt = Implementation.native,
    host_us_per_call: Annotated[float | None, typer.Option(
        help="Host cost per Python-level torch call of the machine driving the GPU, in us (calibrate's host_op_s; "
             "default: the profile's calibration host). Eager walls scale with it.")] = None,
) -> None:
    """Trace the model for a workload; report FLOPs, bytes, params, coverage and (with a device) time and memory."""
    from dsocr_trace.commands.analyze import analyze_command, train_config

    _set_memory_utilization(gpu_memory_utilization)
    _set_prices(price_per_hour)
    train = train_config(phase, optimizer=optimizer, trainable=trainable, lora_rank=lora_rank,
                         checkpointing=checkpointing, precision=precision)
    analyze_command(model=model, mode=mode.value, crops=crops, image_size=image_size, prompt_tokens=prompt_tokens,
                    output_tokens=output_tokens, batch=batch, kv_len=kv_len, tracer=tracer.value, out=out,
                    graphml=graphml, force=force, device=device, device_file=device_file, profile=profile,
                    execution=_value(execution), dtype=_value(dtype), moe_skew=moe_skew, timeline=timeline,
                    plots=plots, json_out=json_out, routing=routing, train=train, html=html,
                    implementation=implementation.value, host_us_per_call=host_us_per_call)


@app.command()
def devices(
    export: Annotated[str | None, typer.Option(help="Print one catalog device's YAML file (redirect it into "
                                                    "my-gpu.yaml, edit, pass --device-file).")] = None,
) -> None:
    """The GPU catalog: dense peaks, bandwidth, memory, and where each figure came from."""
    from dsocr_trace.commands.devices import devices_command

    devices_command(export)


@app.command()
def sweep(
    model: ModelOpt = DEFAULT_MODEL,
    modes: Annotated[str, typer.Option("--modes", "--mode", help="Comma list: tiny,small,base,large,gundam:2x3")]
    = "tiny,small,base,large",
    devices: Annotated[str, typer.Option("--devices", "--device", help="Comma list of catalog GPUs or device "
                                                                       "files.")] = "rtx5090,h100",
    profile: ProfilesOpt = None,
    batch: Annotated[str, typer.Option(help="Comma list of batch sizes.")] = "1",
    prompt_tokens: PromptTokensOpt = DEFAULT_PROMPT_TOKENS,
    output_tokens: Annotated[str, typer.Option(help="Comma list of output token counts.")] = "500",
    executions: Annotated[str, typer.Option("--executions", "--execution",
                                            help="Comma list of eager, fused, graph, compiled.")] = "eager",
    dtype: DtypeOpt = Dtype.bf16,
    routing: RoutingOpt = None,
    rank: RankOpt = Rank.measured,
    out: Annotated[Path, typer.Option(help="CSV, JSON or Parquet file (by extension).")] = Path("sweep.csv"),
    force: Annotated[bool, typer.Option(help="Replace existing outputs (file, --plots folder, --html).")] = False,
    plots: Annotated[Path | None, typer.Option(help="Folder for sweep_pages.png, sweep_latency.png and "
                                                    "sweep_ttft.png.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write an interactive HTML explorer of the points.")] = None,
    gpu_memory_utilization: MemUtilOpt = 1.0,
    price_per_hour: PriceOpt = None,
    implementation: ImplementationOpt = Implementation.native,
) -> None:
    """What-if sweep over modes x devices x batch x output tokens; traces each distinct shape once. Prints the
    best points and marks those that do not fit in GPU memory."""
    from dsocr_trace.commands.sweep import sweep_command

    _set_memory_utilization(gpu_memory_utilization)
    _set_prices(price_per_hour)
    sweep_command(model=model, modes=modes, devices=devices, batch=batch, output_tokens=output_tokens,
                  execution=executions, out=out, force=force, plots=plots, html=html,
                  implementation=implementation.value, profiles=profile or [], dtype=dtype.value, routing=routing,
                  prompt_tokens=prompt_tokens, rank=rank.value)


@app.command()
def plan(
    model: ModelOpt = DEFAULT_MODEL,
    mode: ModeOpt = Mode.base,
    crops: Annotated[str | None, typer.Option(help="Gundam tile grid WxH (columns x rows), 2..9 tiles.")] = None,
    image_size: Annotated[str | None, typer.Option(help="Page size WxH in pixels (Gundam picks its grid).")] = None,
    ttft_ms: Annotated[float | None, typer.Option(help="Time to first token target, at most (ms).")] = None,
    tpot_ms: Annotated[float | None, typer.Option(help="Per-output-token latency target, at most (ms, mean over "
                                                       "the output).")] = None,
    output_tokens: Annotated[int, typer.Option(help="Tokens to generate per page.")] = 500,
    devices: Annotated[str | None, typer.Option("--devices", help="Comma list of catalog GPUs or device files "
                                                                  "(default: the whole catalog).")] = None,
    profile: ProfilesOpt = None,
    prompt_tokens: PromptTokensOpt = DEFAULT_PROMPT_TOKENS,
    executions: Annotated[str, typer.Option("--executions", "--execution",
                                            help="Comma list of eager, fused, graph, compiled (default eager,fused; "
                                                 "eager with --implementation remote).")] = "eager,fused",
    dtype: DtypeOpt = Dtype.bf16,
    routing: RoutingOpt = None,
    rank: RankOpt = Rank.measured,
    max_batch: Annotated[int, typer.Option(help="Largest batch to search (powers of two, then bisection).")] = 64,
    out: Annotated[Path | None, typer.Option(help="Write every evaluated point (.csv, .parquet) or the whole "
                                                  "answer (.json).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
    gpu_memory_utilization: MemUtilOpt = 1.0,
    price_per_hour: PriceOpt = None,
    implementation: ImplementationOpt = Implementation.native,
) -> None:
    """Which GPUs, executions and batch sizes meet a TTFT and per-token latency target (and fit in memory).
    Exit code 1 when nothing does."""
    from dsocr_trace.planner import plan_command

    _set_memory_utilization(gpu_memory_utilization)
    _set_prices(price_per_hour)
    result = plan_command(model=model, mode=mode.value, crops=crops, image_size=image_size, ttft_ms=ttft_ms,
                          tpot_ms=tpot_ms, output_tokens=output_tokens, devices=devices, profiles=profile or [],
                          executions=executions, max_batch=max_batch, out=out, force=force,
                          implementation=implementation.value, routing=routing, dtype=dtype.value,
                          prompt_tokens=prompt_tokens, rank=rank.value)
    if not result["best"]:
        sys.exit(1)  # an answer, not an error: "nothing meets the targets" (click would swallow typer.Exit here)


@app.command()
def compare(
    report: Annotated[Path, typer.Argument(help="report.json written by analyze with --device")],
    measured: Annotated[Path, typer.Argument(help="measured.json (schema dsocr-trace/measured/1, from `dsocr-trace "
                                                  "validate` on a GPU) or a torch.profiler Chrome trace "
                                                  "(.json/.json.gz)")],
    phase: Annotated[Phase | None, typer.Option(help="Phase of a Chrome trace; detected from its module ranges "
                                                     "when left out.")] = None,
    any_execution: Annotated[bool, typer.Option(help="Also pair measured runs of another execution (eager vs "
                                                     "CUDA graph) with the report's prediction.")] = False,
    out: Annotated[Path | None, typer.Option(help="Folder for compare.json and compare.md.")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --out folder.")] = False,
) -> None:
    """Predicted vs measured per stage, module type and module, with relative errors."""
    from dsocr_trace.commands.compare import compare_command

    compare_command(report, measured, _value(phase), out, force, any_execution=any_execution)


@app.command()
def diff(
    a: Annotated[Path, typer.Argument(help="report.json A")],
    b: Annotated[Path, typer.Argument(help="report.json B")],
    out: Annotated[Path | None, typer.Option(help="Folder for diff.json and diff.md.")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --out folder.")] = False,
) -> None:
    """Per-stage and per-module-type deltas between two reports (two modes, two GPUs, eager vs fused)."""
    from dsocr_trace.commands.compare import diff_command

    diff_command(a, b, out, force)


@app.command("host")
def probe_host(
    out: Annotated[Path, typer.Option(help="Host probe JSON to write.")] = Path("host-probe.json"),
    cuda: Annotated[bool, typer.Option(help="Also time calls on cuda:0 (calibrate's host probe).")] = False,
    force: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Time torch calls on the machine that will drive the GPU: what decides eager walls (no GPU needed)."""
    from dsocr_trace.commands.gpu import probe_host_command

    probe_host_command(out, force, cuda)


@app.command()
def calibrate(
    out: Annotated[Path, typer.Option(help="Profile JSON to write.")] = Path("gpu-profile.json"),
    quick: Annotated[bool, typer.Option(help="Figures and host cost in ~80 s: fewer shapes and workloads, a rougher "
                                                  "profile.")] = False,
    model: ModelOpt = DEFAULT_MODEL,
    force: Annotated[bool, typer.Option(help="Replace an existing profile file.")] = False,
) -> None:
    """Measure the local GPU (cuda:0): microbenchmarks, every traced op, host cost; write a latency profile."""
    from dsocr_trace.commands.gpu import calibrate_command

    calibrate_command(out, force, quick, model)


@app.command()
def validate(
    model: ModelOpt = DEFAULT_MODEL,
    mode: ModeOpt = Mode.base,
    crops: Annotated[str | None, typer.Option(help="Gundam tile grid WxH.")] = None,
    batch: Annotated[int, typer.Option(help="Batch size.")] = 1,
    decode_kv: Annotated[str, typer.Option(help="Decode KV lengths to measure.")] = "300,1000,4000",
    profile: Annotated[Path | None, typer.Option(help="Profile from `dsocr-trace calibrate`.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for measured.json and validation.{json,md}.")] = Path("runs/val"),
    force: Annotated[bool, typer.Option(help="Replace an existing --out folder.")] = False,
    workloads: Annotated[str | None, typer.Option(
        help="Several prefill workloads: mode[:WxH][@batch][+pPROMPT], comma-separated (overrides --mode).")] = None,
    decode: Annotated[str | None, typer.Option(
        help="Decode points 'B:KV,KV;B:KV' (overrides --batch x --decode-kv).")] = None,
) -> None:
    """Run workloads on the local GPU (random weights), measure per module and stage, compare to predictions."""
    from dsocr_trace.commands.gpu import validate_command

    validate_command(model=model, mode=mode.value, crops=crops, batch=batch, decode_kv=decode_kv, profile=profile,
                     out=out, force=force, workloads=workloads, decode=decode)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes (each traces on its own; the disk cache is shared).",
                                         min=1, max=64)] = 1,
    openapi: Annotated[Path | None, typer.Option(help="Write the OpenAPI description to this file and exit.")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --openapi file.")] = False,
) -> None:
    """The planning service: analyze, sweep, plan and the device catalog over HTTP/JSON (OpenAPI at /docs)."""
    from dsocr_trace.commands.serve import serve_command

    serve_command(host, port, workers, openapi, force)


_HEAVY_COMMANDS = {"analyze", "sweep", "compare", "calibrate", "validate"}
_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _interrupt(signum: int, frame: Any) -> None:
    RECEIVED.append(signum)
    raise Interrupted(signum)


def _check_working_directory() -> None:
    """A deleted working directory: torch's MKL loader would abort with its own message while importing."""
    try:
        os.getcwd()
    except FileNotFoundError:
        raise UserError("the working directory no longer exists (deleted or moved): cd to an existing folder and "
                        "rerun") from None


def _import_torch_uninterrupted(argv: list[str]) -> None:
    """Import torch and transformers with SIGINT/SIGTERM held: their C initialisation can swallow the exception
    a signal handler raises. A signal that arrives meanwhile is delivered right after, in plain Python."""
    if not _HEAVY_COMMANDS & set(argv) or {"--help", "-h"} & set(argv):
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _exit_after_outputs(rc: int) -> None:
    """Exit once every output is complete: signals are held so interpreter shutdown cannot be cut short, and one
    that arrived in the last moments is named rather than leaving a silent 130."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    late = sorted(signal.sigpending() & _SIGNALS)
    if late:
        name = signal.Signals(late[0]).name
        print(f"error: {name} arrived after the outputs were complete: they are kept; nothing to rerun",
              file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + late[0])
    sys.stdout.flush()
    sys.exit(rc)


def main() -> None:
    """Run the CLI: user errors and interruptions end with one line on stderr and a non-zero exit, no traceback."""
    for sig in _SIGNALS:
        signal.signal(sig, _interrupt)
    try:
        _check_working_directory()
        _import_torch_uninterrupted(sys.argv[1:])
        rc = app(standalone_mode=False)
        raise_if_interrupted()
        _exit_after_outputs(rc if isinstance(rc, int) else 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as exc:
        name = signal.Signals(exc.signum).name
        print(f"error: interrupted by {name}: outputs are written completely or not at all; rerun the command",
              file=sys.stderr)
        # staging is already removed (the transaction's own cleanup); skip torch's slow teardown so the process
        # ends right after the signal
        sys.stderr.flush()
        os._exit(128 + exc.signum)
    except BrokenPipeError:
        # stdout closed by the reader (`| head`): files are written before the console output, so nothing is lost
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        # the file system refused a read or write the checks did not foresee (disk full, a path turned read-only)
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}: check the path and free space, then rerun", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        # click usage errors (typer vendors click): one line, no traceback
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            print(f"error: {exc.format_message()}", file=sys.stderr)
            sys.exit(int(exc.exit_code) or 2)
        raise
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
