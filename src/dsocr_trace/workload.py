"""Workloads: resolution modes, Gundam tile grids, token counts, batch.

Token arithmetic follows DeepSeek-OCR's own code: a view of side R gives a (R/64)^2 grid after SAM's 16x
compressor, each grid row gets one `image_newline`, each image one `view_seperator`; Gundam adds a
(10h) x (10w) mosaic of 640-px tiles, again with a newline per mosaic row.
"""

from __future__ import annotations

import re
from typing import Any

from attrs import frozen

from dsocr_trace.errors import UserError

# mode -> (global view side, tile side, crop mode)
MODES: dict[str, tuple[int, int, bool]] = {
    "tiny": (512, 512, False),
    "small": (640, 640, False),
    "base": (1024, 1024, False),
    "large": (1280, 1280, False),
    "gundam": (1024, 640, True),
}
MIN_CROPS, MAX_CROPS = 2, 9  # HF code's dynamic_preprocess bounds
MAX_IMAGE_SIDE = 16384  # beyond this a page scan is not a page
MAX_POSITIONS = 8192  # max_position_embeddings of DeepSeek-OCR
# Pages per batch. The model's forward encodes each page's views in a Python loop, so tracing time grows with
# the batch (4096 base pages: ~15 s, 9 GB and minutes beyond); and 4096 pages of activations and KV cache fit no
# GPU in the catalog (SAM alone keeps ~0.8 GB of activations per base page).
MAX_BATCH = 4096
# Sequences x positions: the KV cache of 2**21 tokens is 128 GiB at bf16 for DeepSeek-OCR (61,440 B per token),
# more than the largest GPU in the catalog holds (H200, 141 GB, with the weights beside it).
MAX_BATCH_POSITIONS = 2**21
DEFAULT_PROMPT_TOKENS = 12  # "<image>\n<|grounding|>Convert the document to markdown. " minus the image


@frozen
class Workload:
    mode: str
    crops: tuple[int, int] | None = None  # (w tile columns, h tile rows), Gundam only
    image_size: tuple[int, int] | None = None  # (W, H) pixels of the page, if given
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS
    output_tokens: int = 500
    batch: int = 1
    kv_len: int | None = None  # KV length seen by the traced decode step; default: the prefill length
    vision_tokens_override: int | None = None  # another model's own count (measured on its meta forward)

    @property
    def base_size(self) -> int:
        return MODES[self.mode][0]

    @property
    def tile_size(self) -> int:
        return MODES[self.mode][1]

    @property
    def n_tiles(self) -> int:
        return self.crops[0] * self.crops[1] if self.crops else 0

    @property
    def vision_tokens(self) -> int:
        if self.vision_tokens_override is not None:
            return self.vision_tokens_override
        if self.mode == "gundam":
            q = self.base_size // 64
            tokens = q * (q + 1) + 1
            if self.crops:
                w, h = self.crops
                t = self.tile_size // 64
                tokens += (t * h) * (t * w + 1)
            return tokens
        q = self.base_size // 64
        return q * (q + 1) + 1

    @property
    def prefill_tokens(self) -> int:
        """Per sequence: BOS + prompt text + vision tokens."""
        return 1 + self.prompt_tokens + self.vision_tokens

    @property
    def decode_kv_len(self) -> int:
        """KV length the traced decode step attends over (including the new token)."""
        return (self.kv_len if self.kv_len is not None else self.prefill_tokens) + 1

    @property
    def label(self) -> str:
        if self.mode == "gundam" and self.crops:
            return f"gundam:{self.crops[0]}x{self.crops[1]}"
        return self.mode

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "label": self.label,
            "base_size": self.base_size,
            "tile_size": self.tile_size if self.mode == "gundam" else None,
            "crops": list(self.crops) if self.crops else None,
            "n_tiles": self.n_tiles,
            "image_size": list(self.image_size) if self.image_size else None,
            "vision_tokens": self.vision_tokens,
            "prompt_tokens": self.prompt_tokens,
            "text_tokens": 1 + self.prompt_tokens,
            "prefill_tokens": self.prefill_tokens,
            "output_tokens": self.output_tokens,
            "batch": self.batch,
            "decode_kv_len": self.decode_kv_len,
        }


# gundam without --image-size or --crops: an A4 page scanned at 150 dpi (portrait), which tiles as 2x3
DEFAULT_GUNDAM_PAGE = (1240, 1754)


def parse_wh(text: str, what: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(-?\d+)\s*[xX×]\s*(-?\d+)\s*", text or "")
    if not m:
        raise UserError(f"{what} {text!r} is not WxH: write it as two whole numbers, e.g. 1700x2200")
    return int(m.group(1)), int(m.group(2))


def gundam_grid(width: int, height: int, tile: int = 640, min_num: int = MIN_CROPS,
                max_num: int = MAX_CROPS) -> tuple[int, int] | None:
    """Tile grid (w columns, h rows) DeepSeek-OCR picks for a page, or None when it makes no tiles.

    The model's rule: no tiles when both sides are <= the tile size; else among grids with min..max tiles,
    sorted by tile count, the one whose w/h is closest to the page's aspect ratio; on an exact tie a later
    (larger) grid wins when the page area exceeds half of that grid's pixel area.
    """
    if width <= tile and height <= tile:
        return None
    candidates = sorted(
        {(i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
         if min_num <= i * j <= max_num},
        key=lambda r: r[0] * r[1],
    )
    aspect = width / height
    best_diff = float("inf")
    best = (1, 1)
    area = width * height
    for i, j in candidates:
        diff = abs(aspect - i / j)
        if diff < best_diff:
            best_diff, best = diff, (i, j)
        elif diff == best_diff and area > 0.5 * tile * tile * i * j:
            best = (i, j)
    return best


def make_workload(mode: str, crops: str | None = None, image_size: str | None = None,
                  prompt_tokens: int = DEFAULT_PROMPT_TOKENS, output_tokens: int = 500, batch: int = 1,
                  kv_len: int | None = None) -> Workload:
    """Validate user input and build a Workload; every rejection says what to pass instead."""
    mode = (mode or "").strip().lower()
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    for name, val in (("--prompt-tokens", prompt_tokens), ("--output-tokens", output_tokens), ("--batch", batch)):
        if val < 1:
            raise UserError(f"{name} must be a whole number >= 1 (got {val})")
    if kv_len is not None and kv_len < 1:
        raise UserError(f"--kv-len must be >= 1 (got {kv_len})")
    if batch > MAX_BATCH:
        raise UserError(f"--batch {batch} is above {MAX_BATCH} pages: no GPU in the catalog holds that batch's "
                        "activations and KV cache, and tracing it takes minutes; split the work into batches of "
                        f"at most {MAX_BATCH}")
    if crops is not None and image_size is not None:
        raise UserError("give --crops or --image-size, not both: --crops fixes the tile grid, --image-size lets the "
                        "model pick it from the page")
    size = None
    if image_size is not None:
        size = parse_wh(image_size, "--image-size")
        if min(size) < 1 or max(size) > MAX_IMAGE_SIDE:
            raise UserError(f"--image-size {image_size!r} is out of range: each side must be 1..{MAX_IMAGE_SIDE} px")
    grid: tuple[int, int] | None = None
    if crops is not None:
        if mode != "gundam":
            raise UserError(f"--crops applies to gundam mode only (mode is {mode!r}): drop it or use --mode gundam")
        grid = parse_wh(crops, "--crops")
        w, h = grid
        if w < 1 or h < 1 or not MIN_CROPS <= w * h <= MAX_CROPS:
            raise UserError(f"--crops {crops!r} is not a grid the model accepts: it takes {MIN_CROPS} to {MAX_CROPS} "
                            "tiles in all (w x h), e.g. 2x3; for a small page give --image-size and no --crops")
    elif mode == "gundam" and size is not None:
        grid = gundam_grid(*size)
    elif mode == "gundam":
        size = DEFAULT_GUNDAM_PAGE  # documented default: the page of a typical scan (README, --mode help)
        grid = gundam_grid(*size)
    wl = Workload(mode=mode, crops=grid, image_size=size, prompt_tokens=prompt_tokens,
                  output_tokens=output_tokens, batch=batch, kv_len=kv_len)
    total = wl.prefill_tokens + output_tokens
    if total > MAX_POSITIONS:
        raise UserError(f"context of {total} tokens ({wl.prefill_tokens} prefill + {output_tokens} output) exceeds "
                        f"the model's {MAX_POSITIONS} positions: lower --output-tokens or --prompt-tokens")
    if kv_len is not None and kv_len + 1 > MAX_POSITIONS:
        raise UserError(f"--kv-len {kv_len} exceeds the model's {MAX_POSITIONS} positions")
    if batch * total > MAX_BATCH_POSITIONS:
        raise UserError(f"batch {batch} x {total} positions = {batch * total:,} tokens of KV cache, above "
                        f"{MAX_BATCH_POSITIONS:,} (128 GiB at bf16, more than any GPU in the catalog holds): "
                        f"lower --batch to {max(1, MAX_BATCH_POSITIONS // total)} or fewer, or --output-tokens")
    return wl
