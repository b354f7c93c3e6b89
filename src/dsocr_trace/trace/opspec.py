"""Operator specs: one traced aten call written as data (its tensors' shapes, strides, offsets and dtypes, its
other arguments with placeholders), as the calibration sweep stores them. Read back by the operator benchmark
(validate.opbench, which builds real tensors and replays the call) and by the kernel model (kernels.query, which
builds meta tensors to cost the call like a traced node): the format lives here, below both."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32, "float64": torch.float64,
          "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8,
          "uint8": torch.uint8, "bool": torch.bool}


def storage_extent(ref: dict[str, Any]) -> int:
    """Elements of storage a tensor ref spans (offset + the furthest element + 1; at least 1)."""
    shape, strides, off = ref["shape"], ref["strides"], int(ref["offset"])
    return max(1, off + 1 + sum((s - 1) * st for s, st in zip(shape, strides, strict=True) if s > 0))


def call_arguments(spec: dict[str, Any], tensors: Sequence[Any], device: Any) -> tuple[list[Any], dict[str, Any]]:
    """The call's (args, kwargs) with its placeholders filled: {"t": i} the i-th tensor, {"dtype": ...},
    {"device": ...} and {"enum": "torch.x"}."""
    def conv(x: Any) -> Any:
        if isinstance(x, dict):
            if "t" in x and len(x) == 1:
                return tensors[x["t"]]
            if "dtype" in x:
                return DTYPES[x["dtype"]]
            if "device" in x:
                return device
            if "enum" in x:
                return getattr(torch, x["enum"].split(".")[-1])
            raise ValueError(f"cannot rebuild argument {x}")
        if isinstance(x, list):
            return [conv(v) for v in x]
        return x

    call = spec["call"]
    # inside the argument lists every dict is a placeholder; the kwargs dict itself is not
    return [conv(v) for v in call["args"]], {k: conv(v) for k, v in call["kwargs"].items()}
