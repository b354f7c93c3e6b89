"""The analysis pipeline, one way: config -> meta model -> traces -> costs (-> predictions, in predict/plan).

Traces are cached per (model, shapes) in this process so a sweep traces each distinct shape once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from attrs import define, evolve, field

from dsocr_trace.cache import IdentityMemo
from dsocr_trace.costs import DEFAULT_OPTIONS, CostOptions, NodeCosts, cost_trace
from dsocr_trace.errors import UserError, one_line
from dsocr_trace.trace.ir import Trace
from dsocr_trace.workload import Workload

_MODELS: dict[str, Any] = {}
_TRACES: dict[tuple[Any, ...], Trace] = {}


@define
class Analysis:
    model_id: str
    config_source: str
    architecture: str
    workload: Workload
    params: dict[str, Any]
    build_notes: list[str]
    traces: dict[str, Trace]
    costs: dict[str, NodeCosts]
    options: CostOptions = field(default=DEFAULT_OPTIONS)
    implementation: str = "native"  # native (transformers' classes) | remote | remote-flash (trace.remote)


@define
class LoadedModel:
    """A model's facts (config, parameter counts, notes) and, built on first use, its meta model: a run whose
    traces all come from the disk cache never builds it."""

    cfg: dict[str, Any]
    source: str
    architecture: str
    params: dict[str, Any]
    notes: list[str]
    image_token_id: int
    stage_fn: Any
    generic: bool = False
    built: Any = None  # the meta model once built
    text: Any = None  # the text config (cheap: no model needed)

    @property
    def model(self) -> Any:
        if self.built is None:
            from dsocr_trace.models.deepseek_ocr import build

            with user_config_guard(self.source, "built"):
                self.built = build(self.cfg)
        return self.built

    @property
    def text_config(self) -> Any:
        if self.text is None and self.built is not None:
            self.text = self.built.model.config.text_config
        if self.text is None:
            from dsocr_trace.models.deepseek_ocr import model_config

            self.text = model_config(self.cfg).text_config
        return self.text

    @property
    def config_key(self) -> str:
        """What a trace of this model depends on: its config and the code that builds and traces it."""
        from dsocr_trace import cache as disk_cache

        return disk_cache.key_of(self.cfg, disk_cache.code_fingerprint("models", "trace", "workload.py"))


def load_model(model_id: str) -> LoadedModel:
    """The model for a model id or config path (once per process; DeepSeek-OCR's facts from the disk cache)."""
    if model_id in _MODELS:
        return _MODELS[model_id]
    from dsocr_trace.models.source import load_config

    cfg, source = load_config(model_id)  # before importing torch/transformers: a bad id fails at once
    if not _is_deepseek_ocr(cfg):
        return _load_generic(model_id, cfg, source)

    from dsocr_trace import cache as disk_cache
    from dsocr_trace.models.deepseek_ocr import CLIP_PATCH_CONV_PARAMS, IMAGE_TOKEN_ID, check_supported
    from dsocr_trace.trace.ir import stage_of

    check_supported(cfg, f"model config {source}")
    notes = [
        "Built from transformers' unlimited_ocr modules with full causal text attention (the DeepSeek-OCR v1 "
        "layout); DeepSeek's own remote code needs transformers <= 4.47.",
        "The checkpoint's unused CLIP patch conv (602,112 params) is not built; checkpoint_total adds it back.",
        "transformers encodes the global view before the Gundam tiles (DeepSeek's code: tiles first): same ops.",
        "lm_head runs over every prefill position with fp32 logits, as DeepSeek-OCR's forward does.",
    ]
    loaded = LoadedModel(cfg=cfg, source=source, architecture="DeepseekOCRForCausalLM", params={}, notes=notes,
                         image_token_id=IMAGE_TOKEN_ID, stage_fn=stage_of)
    params = disk_cache.load("params", loaded.config_key)
    if params is None:
        from dsocr_trace.models.params import count_params

        omitted = {"vision_clip": ("CLIP patch-embedding conv (unused: SAM features are CLIP's patch embeddings)",
                                   CLIP_PATCH_CONV_PARAMS)}
        params = count_params(loaded.model, omitted)
        disk_cache.store("params", loaded.config_key, params)
    loaded.params = params
    _MODELS[model_id] = loaded
    return loaded


# what torch and transformers raise when a config's dimensions do not fit together
_BUILD_ERRORS = (RuntimeError, ValueError, TypeError, IndexError, KeyError, AttributeError, AssertionError,
                 ZeroDivisionError, NotImplementedError)


@contextmanager
def user_config_guard(source: str, what: str) -> Iterator[None]:
    """A user's config that passed the checks but still breaks the build or trace: one line, not a traceback.
    The packaged official config is exempt: a failure there is a bug and keeps its traceback."""
    try:
        yield
    except UserError:
        raise
    except _BUILD_ERRORS as exc:
        if source.startswith("package data"):
            raise
        raise UserError(f"model config {source} cannot be {what} ({type(exc).__name__}: {one_line(exc, 160)}): "
                        "check that its dimensions agree, or start from the official config") from None


def _is_deepseek_ocr(cfg: dict[str, Any]) -> bool:
    raw = cfg.get("architectures")
    archs: list[Any] = raw if isinstance(raw, list) else []
    return "DeepseekOCRForCausalLM" in archs or cfg.get("model_type") in ("deepseek_vl_v2", "DeepseekOCR")


def _load_generic(model_id: str, cfg: dict[str, Any], source: str) -> LoadedModel:
    from dsocr_trace.models.generic import build_generic, generic_stage, image_token_id
    from dsocr_trace.models.params import count_params

    with user_config_guard(source, "built"):
        model, conf, arch = build_generic(cfg, f"model config {source}")
    tok = image_token_id(conf)
    notes = [f"Built generically from transformers' {arch} (model_type {cfg.get('model_type')!r}) on meta.",
             "Stages are assigned from module names (vision tower, projector, language model, lm_head).",
             "Gundam tiles and DeepSeek token arithmetic do not apply: the image-token count is the model's own, "
             "measured by running its get_image_features on meta pixels." if tok is not None else
             "No image token in the config: traced as a text-only model (vision stages empty)."]
    loaded = LoadedModel(cfg=cfg, source=source, architecture=arch, params=count_params(model), notes=notes,
                         image_token_id=tok if tok is not None else -1, stage_fn=generic_stage, generic=True,
                         built=model, text=conf.get_text_config())
    _MODELS[model_id] = loaded
    return loaded


def trace_phase(lm: LoadedModel, model_id: str, wl: Workload, phase: str, tracer: str = "dispatch",
                kv_len: int | None = None) -> Trace:
    """Trace one phase; cached (in this process and on disk) by the shapes that determine the graph."""
    from dsocr_trace.trace.capture import trace_decode, trace_prefill

    if phase == "prefill":
        key: tuple[Any, ...] = (model_id, tracer, "prefill", wl.mode, wl.crops, wl.prompt_tokens, wl.batch)
    else:
        kv = wl.prefill_tokens if kv_len is None else kv_len
        key = (model_id, tracer, "decode", wl.batch, kv)
    hit = _TRACES.get(key)
    if hit is not None:
        return hit
    from dsocr_trace import cache as disk_cache

    disk_key = None if lm.generic else disk_cache.key_of(lm.config_key, key[1:])
    if disk_key is not None:
        hit = disk_cache.load("trace", disk_key)
        if isinstance(hit, Trace):
            _TRACES[key] = hit
            return hit
    if phase == "prefill" and tracer == "export":
        from dsocr_trace.trace.export import trace_prefill_export

        tr = trace_prefill_export(lm.model, wl, lm.stage_fn, lm.image_token_id)
    elif phase == "prefill" and lm.generic:
        from dsocr_trace.trace.capture import trace_prefill_generic

        tr = trace_prefill_generic(lm, wl)
    elif phase == "prefill":
        tr = trace_prefill(lm.model, wl, lm.stage_fn, lm.image_token_id)
    else:
        tr = trace_decode(lm.model, wl, lm.stage_fn, key[-1], lm.text_config)
    _TRACES[key] = tr
    if disk_key is not None:
        disk_cache.store("trace", disk_key, tr)
    return tr


def run_analysis(model_id: str, wl: Workload, tracer: str = "dispatch",
                 opts: CostOptions = DEFAULT_OPTIONS, implementation: str = "native") -> Analysis:
    """Trace (or take from the cache) both phases, rewrite them into the chosen implementation's ops, cost
    every node."""
    from dsocr_trace.trace.remote import IMPLEMENTATIONS

    if tracer not in ("dispatch", "export"):
        raise UserError(f"unknown tracer {tracer!r}: use dispatch or export")
    if implementation not in IMPLEMENTATIONS:
        raise UserError(f"unknown implementation {implementation!r}: use {', '.join(IMPLEMENTATIONS)}")
    lm = load_model(model_id)
    if implementation != "native" and lm.generic:
        raise UserError(f"--implementation {implementation} is DeepSeek-OCR's official remote code: "
                        f"{lm.architecture} has none here (use --implementation native)")
    if lm.generic:
        if wl.crops:
            raise UserError(f"Gundam tiles are DeepSeek-OCR's: {lm.architecture} is traced with its global view only "
                            "(use another mode or drop --crops/--image-size)")
        if tracer == "export":
            raise UserError("--tracer export is implemented for DeepSeek-OCR only: use --tracer dispatch")
        from dsocr_trace.trace.capture import generic_vision_tokens

        with user_config_guard(lm.source, "traced"):
            wl = evolve(wl, vision_tokens_override=generic_vision_tokens(lm, wl))
    with user_config_guard(lm.source, "traced"):
        traces = {
            "prefill": trace_phase(lm, model_id, wl, "prefill", tracer),
            "decode": trace_phase(lm, model_id, wl, "decode", "dispatch", wl.decode_kv_len - 1),
        }
    if implementation != "native":
        page = None
        if wl.batch > 1:  # the remote code runs each page's vision on its own
            with user_config_guard(lm.source, "traced"):
                page = trace_phase(lm, model_id, evolve(wl, batch=1), "prefill", tracer)
        traces = {phase: implementation_trace(tr, implementation, opts, page) for phase, tr in traces.items()}
    costs = {phase: cost_trace(tr, opts) for phase, tr in traces.items()}
    return Analysis(model_id=model_id, config_source=lm.source, architecture=lm.architecture, workload=wl,
                    params=lm.params, build_notes=lm.notes, traces=traces, costs=costs, options=opts,
                    implementation=implementation)


_REWRITTEN = IdentityMemo(256)  # native trace -> {(implementation, options): rewritten trace}


def implementation_trace(trace: Trace, implementation: str, opts: CostOptions, page: Trace | None = None) -> Trace:
    """The traced native phase as `implementation` runs it (trace.remote), remembered per native trace; `page`
    is the batch-1 prefill whose vision the remote code repeats per page."""
    from dsocr_trace.trace.remote import remote_code_trace

    per: dict[tuple[str, CostOptions, int], Trace] = _REWRITTEN.get(trace, dict)
    key = (implementation, opts, id(page))
    if key not in per:
        attention = "flash" if implementation == "remote-flash" else "eager"
        per[key] = remote_code_trace(trace, opts.routing.rows, attention, page)
    return per[key]
