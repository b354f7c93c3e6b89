"""One training step, one way: config -> a fresh meta model -> trace -> costs (memory and time in memory.py and
predict.py). Traces are cached per (model, shapes, training config) in this process and on disk."""

from __future__ import annotations

from typing import Any

from attrs import define, field

from dsocr_trace.costs import DEFAULT_OPTIONS, CostOptions, NodeCosts, cost_trace
from dsocr_trace.errors import UserError
from dsocr_trace.models.training import TrainConfig
from dsocr_trace.trace.ir import Trace
from dsocr_trace.workload import Workload

_TRACES: dict[tuple[Any, ...], Trace] = {}


@define
class TrainAnalysis:
    model_id: str
    workload: Workload
    config: TrainConfig
    trace: Trace
    costs: NodeCosts
    omitted_params_bytes: int  # checkpoint parameters the build leaves out (frozen weight memory)
    options: CostOptions = field(default=DEFAULT_OPTIONS)


def trace_train(model_id: str, wl: Workload, cfg: TrainConfig) -> Trace:
    """Trace one step of `cfg` on a freshly built meta model (LoRA and freezing change the model)."""
    from dsocr_trace.analyze import load_model
    from dsocr_trace.models.deepseek_ocr import build
    from dsocr_trace.trace.train import trace_train_step

    key = (model_id, wl.mode, wl.crops, wl.prompt_tokens, wl.batch, cfg)
    hit = _TRACES.get(key)
    if hit is not None:
        return hit
    lm = load_model(model_id)
    if lm.generic:
        raise UserError(f"--phase train is implemented for DeepSeek-OCR only ({lm.architecture} was given): "
                        "use --phase infer for other models")
    from dsocr_trace import cache as disk_cache

    disk_key = disk_cache.key_of(lm.config_key, "train", key[1:])
    hit = disk_cache.load("train-trace", disk_key)
    if isinstance(hit, Trace):
        _TRACES[key] = hit
        return hit
    tr = trace_train_step(build(lm.cfg), wl, cfg, lm.stage_fn, lm.image_token_id,
                          int(lm.text_config.vocab_size))
    _TRACES[key] = tr
    disk_cache.store("train-trace", disk_key, tr)
    return tr


def run_train_analysis(model_id: str, wl: Workload, cfg: TrainConfig,
                       opts: CostOptions = DEFAULT_OPTIONS) -> TrainAnalysis:
    from dsocr_trace.analyze import load_model

    cfg.check()
    tr = trace_train(model_id, wl, cfg)
    omitted = load_model(model_id).params.get("omitted_from_build", {})
    # unused checkpoint weights (the CLIP patch conv) are loaded in the model's dtype and never trained
    itemsize = 2
    omitted_bytes = sum(int(v["params"]) for v in omitted.values()) * itemsize
    return TrainAnalysis(model_id=model_id, workload=wl, config=cfg, trace=tr, costs=cost_trace(tr, opts),
                         omitted_params_bytes=omitted_bytes, options=opts)
