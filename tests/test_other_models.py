"""The tracer and cost rules are not DeepSeek-OCR-specific: two other VLM layouts from local configs.

tests/data holds a DeepSeek-OCR 2 layout (transformers' deepseek_ocr2: SAM + a Qwen2-sized vision encoder, same
MoE decoder) and a LLaVA-1.5-7B layout (CLIP ViT-L/336 + Llama-7B); see each file's _provenance.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsocr_trace.analyze import run_analysis
from dsocr_trace.errors import UserError
from dsocr_trace.hardware.profile import default_profile
from dsocr_trace.hardware.spec import load_device
from dsocr_trace.report.build import build_report
from dsocr_trace.request import predict_request
from dsocr_trace.workload import make_workload

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(("config", "arch", "vision_tokens"), [
    ("llava-config.json", "LlavaForConditionalGeneration", 576),
    ("deepseek-ocr2-config.json", "DeepseekOcr2ForConditionalGeneration", 257),
])
def test_other_vlm_same_report_fields(config: str, arch: str, vision_tokens: int) -> None:
    a = run_analysis(str(DATA / config), make_workload("base", output_tokens=8))
    assert a.architecture == arch
    spec = load_device("h100")
    r = build_report(a, predict_request(a, spec, default_profile(spec)))
    assert r["workload"]["vision_tokens"] == vision_tokens
    assert r["coverage"]["uncosted"] == {}
    assert r["stages"]["vision.clip"]["tc_flops"] > 0 and r["stages"]["decoder.prefill"]["tc_flops"] > 0
    assert r["stages"]["decode.step"]["tc_flops"] > 0
    assert r["params"]["built_total"] == r["params"]["checkpoint_total"] > 1e9
    assert set(r["predictions"]["stages"]) >= {"vision.clip", "decoder.prefill", "decode.step"}
    dec = a.traces["decode"]
    assert not any(n.stage.startswith("vision") for n in dec.nodes)


def test_gundam_tiles_are_deepseek_only() -> None:
    with pytest.raises(UserError, match="Gundam tiles"):
        run_analysis(str(DATA / "llava-config.json"), make_workload("gundam", crops="2x2"))


def test_unsupported_architecture(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": "no_such_model_type", "hidden_size": 8}))
    with pytest.raises(UserError, match="unsupported architecture") as exc:
        run_analysis(str(cfg), make_workload("base"))
    assert "\n" not in str(exc.value)
