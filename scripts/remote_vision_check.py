"""Check trace/remote_vision.py against the remote deepencoder itself: trace the hub's `deepencoder.py` (SAM ViT-B
and CLIP-L as `DeepseekOCRModel` builds them) on the meta device, replay `infer()`'s autocast over it with
trace.autocast, and compare kernels per module with `--implementation remote`'s vision for the same page.

The remote file is not part of the project: give the folder of a public copy (e.g. GitHub zyfjrx/deepseekocr,
`models/`) or of a hub snapshot. einops and easydict, which the file imports but SAM and CLIP never call, are
stood in for when missing. Run: `python scripts/remote_vision_check.py --code DIR [--mode base]`.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import itertools
import re
import sys
import types
from pathlib import Path
from typing import Any

import torch

from dsocr_trace.analyze import run_analysis
from dsocr_trace.costs import CostOptions, cost_trace
from dsocr_trace.trace.autocast import autocast_nodes
from dsocr_trace.trace.ir import Trace
from dsocr_trace.trace.recorder import recording, to_trace
from dsocr_trace.trace.remote_vision import CLIP, SAM, renumbered
from dsocr_trace.workload import make_workload

# remote module path -> the native path the rewrite uses
RENAMES = ((r"^sam_model\.blocks\.", f"{SAM}.layers."), (r"\.norm([12])$", r".layer_norm\1"),
           (r"^sam_model\.neck\.0$", f"{SAM}.neck.conv1"), (r"^sam_model\.neck\.1$", f"{SAM}.neck.layer_norm1"),
           (r"^sam_model\.neck\.2$", f"{SAM}.neck.conv2"), (r"^sam_model\.neck\.3$", f"{SAM}.neck.layer_norm2"),
           (r"^sam_model\.net_2$", f"{SAM}.proj.conv1"), (r"^sam_model\.net_3$", f"{SAM}.proj.conv2"),
           (r"^sam_model\.patch_embed\.proj$", f"{SAM}.patch_embed.projection"), (r"^sam_model$", SAM),
           (r"^vision_model\.transformer\.layers\.", f"{CLIP}.encoder.layers."), (r"^vision_model\.", f"{CLIP}."))


def _stub(name: str, **attrs: Any) -> None:
    if importlib.util.find_spec(name) is None:
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        sys.modules[name] = mod


class _AttrDict(dict[str, Any]):
    def __getattr__(self, k: str) -> Any:
        try:
            return self[k]
        except KeyError as e:
            raise AttributeError(k) from e


def _family(path: str) -> str:
    for pat, new in RENAMES:
        path = re.sub(pat, new, path)
    return re.sub(r"\.layers\.(\d+)", lambda m: ".layers." + ("G" if SAM in path and m.group(1) in
                                                             ("2", "5", "8", "11") else "N"), path)


def _kernels(tr: Trace) -> dict[str, int]:
    costs = cost_trace(tr, CostOptions())
    out: collections.Counter[str] = collections.Counter()
    for n in tr.nodes:
        c = costs.eager[n.id]
        if c is not None and c.kernels > 0 and not n.members and n.stage in ("vision.sam", "vision.clip"):
            out[_family(n.module_path)] += c.kernels
    return dict(out)


def remote_trace(code: Path, side: int) -> Trace:
    _stub("einops", rearrange=None)
    _stub("easydict", EasyDict=_AttrDict)
    spec = importlib.util.spec_from_file_location("remote_deepencoder", code / "deepencoder.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"--code {code}: no deepencoder.py there")
    de = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(de)

    class Vision(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.sam_model = de.build_sam_vit_b()
            self.vision_model = de.build_clip_l()

        def forward(self, x: torch.Tensor) -> Any:
            return self.vision_model(x, self.sam_model(x))

    with torch.device("meta"):
        model = Vision().to(torch.bfloat16).eval()
    x = torch.empty(1, 3, side, side, device="meta", dtype=torch.bfloat16)
    with torch.no_grad(), recording(model, "prefill", lambda p, ph: "vision.sam" if p.startswith("sam") else
                                    "vision.clip") as rec:
        model(x)
    tr = to_trace(rec, "dispatch", {})
    ids = itertools.count(max(n.id for n in tr.nodes) + 1)
    nodes = list(renumbered(autocast_nodes(tr.nodes, lambda n: True, lambda: next(ids))))
    return Trace(phase="prefill", nodes=nodes, tracer=tr.tracer, module_types=tr.module_types,
                 module_calls=tr.module_calls, meta={})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--code", type=Path, required=True, help="folder holding the remote deepencoder.py")
    ap.add_argument("--mode", default="base", choices=("tiny", "small", "base", "large"))
    args = ap.parse_args()
    wl = make_workload(args.mode)
    remote = _kernels(remote_trace(args.code, wl.base_size))
    rewrite = _kernels(run_analysis("deepseek-ai/DeepSeek-OCR", wl, implementation="remote").traces["prefill"])
    print(f"# {args.mode}: kernels per module, remote deepencoder traced (+ autocast) vs the rewrite\n")
    print("| module | traced | rewrite |\n| --- | ---: | ---: |")
    for k in sorted(set(remote) | set(rewrite)):
        mark = "" if remote.get(k, 0) == rewrite.get(k, 0) else " *"
        print(f"| {k}{mark} | {remote.get(k, 0)} | {rewrite.get(k, 0)} |")
    for st, pre in (("SAM", SAM), ("CLIP", CLIP)):
        print(f"\n{st}: traced {sum(v for k, v in remote.items() if k.startswith(pre))}, "
              f"rewrite {sum(v for k, v in rewrite.items() if k.startswith(pre))}")


if __name__ == "__main__":
    main()
