"""Resolve `--model` to a config dict, offline: a known hub id shipped as package data, or a local path."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from dsocr_trace.errors import UserError

# Hub ids whose official config ships inside the package (no network at run time).
KNOWN_MODELS: dict[str, str] = {
    "deepseek-ai/DeepSeek-OCR": "deepseek-ocr-config.json",
}
DEFAULT_MODEL = "deepseek-ai/DeepSeek-OCR"


def load_config(model: str) -> tuple[dict[str, Any], str]:
    """Return (config dict, where it came from) for a known id, a config.json, or a folder holding one."""
    if model in KNOWN_MODELS:
        text = resources.files("dsocr_trace.data").joinpath(KNOWN_MODELS[model]).read_text()
        return json.loads(text), f"package data ({KNOWN_MODELS[model]})"
    path = Path(model)
    if path.is_dir():
        path = path / "config.json"
        if not path.is_file():
            raise UserError(f"no config.json in folder {model!r}: pass a snapshot folder that holds one, "
                            "or the file itself")
    if path.is_file():
        try:
            cfg = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read {str(path)!r} as JSON ({exc}): pass a model's config.json") from None
        if not isinstance(cfg, dict):
            raise UserError(f"{str(path)!r} is not a config object: pass a model's config.json")
        return cfg, str(path)
    known = ", ".join(sorted(KNOWN_MODELS))
    raise UserError(
        f"unknown model {model!r}: use one of the known ids ({known}) or a PATH to a local config.json "
        "or a snapshot folder holding one (nothing is downloaded)"
    )
