"""Every input file is checked by schema: device files, model configs, measured files and reports.

Each problem is one UserError line naming the field and the fix; a copy of a catalog device keeps its packaged
profile; compare and diff refuse (or say) what they cannot compare. In process; the CLI path (exit codes, no
traceback) is in test_cli_contract.py.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsocr_trace.analyze import load_model, run_analysis
from dsocr_trace.commands.common import resolve_device
from dsocr_trace.commands.compare import compare_command, diff_command
from dsocr_trace.errors import UserError
from dsocr_trace.hardware.profile import packaged_profile
from dsocr_trace.hardware.spec import load_device, parse_file_text, spec_from_dict, spec_to_dict
from dsocr_trace.workload import make_workload

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "h100"
DEVICES = resources.files("dsocr_trace.hardware").joinpath("devices")
OFFICIAL = json.loads(resources.files("dsocr_trace.data").joinpath("deepseek-ocr-config.json").read_text())


def one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg and msg == msg.strip() and "Traceback" not in msg, repr(msg)
    return msg


def catalog_yaml(key: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEVICES.joinpath(f"{key}.yaml").read_text())
    return data


# ---- device files ----


def test_exponent_notation(tmp_path: Path) -> None:
    p = tmp_path / "mine.yaml"
    p.write_text(DEVICES.joinpath("h100.yaml").read_text().replace("mem_bw_gbs: 3350", "mem_bw_gbs: 3.35e3")
                 .replace("l2_mb: 50", "l2_mb: 5e1"))
    s = load_device(str(p))
    assert s.mem_bw == 3350e9 and s.l2_bytes == 50 * 2**20  # `5e1` is a number, not the string '5e1'
    for suffix, text in ((".yaml", "tc_bf16_dense_tflops: 1e300"), (".json", '"tc_bf16_dense_tflops": 1e300')):
        data = catalog_yaml("h100")
        body = yaml.safe_dump(data) if suffix == ".yaml" else json.dumps(data)
        old = "tc_bf16_dense_tflops: 989.4" if suffix == ".yaml" else '"tc_bf16_dense_tflops": 989.4'
        q = tmp_path / f"big{suffix}"
        q.write_text(body.replace(old, text))
        with pytest.raises(UserError) as e:
            load_device(str(q))
        msg = one_line(e.value)
        assert "'tc_bf16_dense_tflops' must be <= 100000" in msg and "TFLOP/s" in msg


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d.update(mem_bw_gbz=3350), "'mem_bw_gbz' is not a known field: did you mean 'mem_bw_gbs'?"),
    (lambda d: d.update(colour="green"), "'colour' is not a known field: remove it"),
    (lambda d: d["sources"].update(mem_bw=1), "'sources.mem_bw'"),
    (lambda d: d.update(sm_count=132.0), "'sm_count' must be a whole number"),
    (lambda d: d.update(memory_gb=float("nan")), "'memory_gb' is not finite"),
    (lambda d: d.update(aliases="h100"), "'aliases' must be a list"),
    (lambda d: d.update(mem_bw_gbs=3.35e12), "'mem_bw_gbs' must be <= 1e+06"),
])
def test_device_file_problems_name_the_field(mutate: Any, expected: str) -> None:
    data = catalog_yaml("h100")
    mutate(data)
    with pytest.raises(UserError) as e:
        spec_from_dict(data, "mine", "device file mine.yaml")
    msg = one_line(e.value)
    assert msg.startswith("device file mine.yaml: field ") and expected in msg, msg


def test_copy_of_a_catalog_file_keeps_its_packaged_profile(tmp_path: Path) -> None:
    """An unchanged copy of h100.yaml predicts with the calibrated H100 profile, and says so; an edited copy is
    another GPU (the nearest packaged calibration carried to it by the cross-GPU model)."""
    for key in ("h100", "h200"):
        p = tmp_path / f"my-{key}.yaml"
        shutil.copy(DEVICES.joinpath(f"{key}.yaml"), p)
        notes: list[str] = []
        hw = resolve_device(None, p, None, notes)
        assert hw is not None
        spec, prof = hw
        assert spec.key == f"my-{key}" and spec.origin.startswith("device file")
        assert prof == packaged_profile(load_device(key)) and prof.sweep == packaged_profile(load_device(key)).sweep
        assert prof.calibrated and len(notes) == 1 and f"catalog device {key}" in notes[0], notes
    edited = catalog_yaml("h100") | {"mem_bw_gbs": 3000}
    p = tmp_path / "edited.yaml"
    p.write_text(yaml.safe_dump(edited))
    notes = []
    hw = resolve_device(None, p, None, notes)
    assert hw is not None and hw[1].source == "transferred" and notes == []
    assert hw[1].transfer is not None and hw[1].transfer.dst.mem_bw == pytest.approx(3031.7e9)


# any device file either loads and round-trips (YAML text, JSON text, spec_to_dict) or fails with one line
_ANY = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**18), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=12), st.lists(st.integers(0, 9), max_size=3),
                 st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=2))
_FIELDS = sorted(catalog_yaml("h100"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(["h100", "a100", "rtx4090"]),
       changes=st.dictionaries(st.sampled_from([*_FIELDS, "tensor_clock_mhz", "mem_bw_gbz", "extra"]), _ANY,
                               max_size=3),
       drop=st.lists(st.sampled_from(_FIELDS), max_size=2), as_json=st.booleans())
def test_any_device_file_round_trips_or_fails_with_one_line(key: str, changes: dict[str, Any], drop: list[str],
                                                            as_json: bool) -> None:
    data = catalog_yaml(key)
    data.update(changes)
    for f in drop:
        data.pop(f, None)
    try:
        text = json.dumps(data) if as_json else yaml.safe_dump(data)
    except (ValueError, yaml.YAMLError):
        return
    try:
        spec = spec_from_dict(parse_file_text(text, "device file f", as_json), "f", "device file f")
    except UserError as e:
        one_line(e)
        return
    assert all(math.isfinite(v) and v > 0 for v in spec.peaks_by_dtype.values())
    for dumped, is_json in ((yaml.safe_dump(spec_to_dict(spec)), False), (json.dumps(spec_to_dict(spec)), True)):
        again = spec_from_dict(parse_file_text(dumped, "device file f", is_json), "f", "device file f")
        assert again == spec


# ---- model configs ----


def _config(tmp_path: Path, name: str, data: Any) -> str:
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(data))
    return str(p)


def _vision(**clip: Any) -> dict[str, Any]:
    v = copy.deepcopy(OFFICIAL["vision_config"])
    v["width"]["clip-l-14-224"].update(clip)
    return v


@pytest.mark.parametrize(("change", "expected"), [
    ({"hidden_size": -1280}, "'hidden_size' must be > 0"),
    ({"num_hidden_layers": 0}, "'num_hidden_layers' must be > 0"),
    ({"hidden_size": 1280.5}, "'hidden_size' must be a whole number"),
    ({"rms_norm_eps": float("nan")}, "'rms_norm_eps' is not finite"),
    ({"hidden_size": None}, "'hidden_size' is null"),
    ({"num_attention_heads": 7}, "'num_attention_heads' (7) does not divide hidden_size (1280)"),
    ({"num_experts_per_tok": 65}, "'num_experts_per_tok' (65) is above n_routed_experts (64)"),
    ({"vision_config": [1, 2]}, "'vision_config' must be a mapping"),
    ({"vision_config": _vision(heads=5)}, "'vision_config.width.clip-l-14-224.heads' (5) does not divide"),
    ({"num_hidden_layers": 100000}, "'num_hidden_layers' must be <= 512"),
    ({"rope_thetta": 5e5}, "'rope_thetta' is not a field dsocr-trace reads: did you mean 'rope_theta'?"),
])
def test_deepseek_config_problems(change: dict[str, Any], expected: str, tmp_path: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(UserError) as e:
        load_model(_config(tmp_path, "cfg", OFFICIAL | change))
    assert time.perf_counter() - start < 5  # refused before any build (100,000 layers used to hang)
    msg = one_line(e.value)
    assert msg.startswith("model config ") and expected in msg, msg


def test_config_with_only_architectures_is_not_the_official_model(tmp_path: Path) -> None:
    with pytest.raises(UserError) as e:
        load_model(_config(tmp_path, "arch", {"architectures": ["DeepseekOCRForCausalLM"]}))
    assert "is missing" in one_line(e.value) and "official config" in str(e.value)


@pytest.mark.parametrize(("cfg", "expected"), [
    ({"model_type": "bert", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2,
      "intermediate_size": 128, "vocab_size": 100}, "not a decoder with a KV cache"),
    ({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 4,
      "num_hidden_layers": 100000, "intermediate_size": 128, "vocab_size": 100}, "'num_hidden_layers' is 100000"),
    ({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 3,
      "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 100}, "'num_key_value_heads' (3) does not"),
])
def test_generic_config_problems(cfg: dict[str, Any], expected: str, tmp_path: Path) -> None:
    with pytest.raises(UserError) as e:
        load_model(_config(tmp_path, "gen", cfg))
    assert expected in one_line(e.value)


def test_config_that_breaks_the_trace_fails_with_one_line(tmp_path: Path) -> None:
    """Checks pass (heads divide widths), the SAM/CLIP widths still disagree: the trace error becomes one line."""
    path = _config(tmp_path, "clip", OFFICIAL | {"vision_config": _vision(width=512, heads=8)})
    with pytest.raises(UserError) as e:
        run_analysis(path, make_workload("tiny", output_tokens=1))
    assert "cannot be traced (RuntimeError" in one_line(e.value)


# ---- workload bounds ----


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"batch": 1_000_000}, "--batch 1000000 is above 4096 pages"),
    ({"batch": 4000}, "lower --batch to"),
    ({"mode": "gundam", "crops": "2x3", "image_size": "1700x2200"}, "give --crops or --image-size, not both"),
])
def test_workload_bounds(kwargs: dict[str, Any], expected: str) -> None:
    start = time.perf_counter()
    with pytest.raises(UserError) as e:
        make_workload(**({"mode": "base"} | kwargs))
    assert expected in one_line(e.value) and time.perf_counter() - start < 0.1


# ---- measured files and reports (compare, diff) ----


@pytest.fixture()
def report_file(tmp_path: Path, h100_report: dict[str, Any]) -> Path:
    p = tmp_path / "report.json"
    p.write_text(json.dumps(h100_report))
    return p


def _decode_run(**total: Any) -> dict[str, Any]:
    return {"workload": {"mode": "base", "batch": 1, "phase": "decode", "kv_len": None}, "execution": "eager",
            "total": total}


@pytest.mark.parametrize(("doc", "expected"), [
    ({"runs": "x"}, "field 'runs' must be a list"),
    ({"runs": [{"workload": {"mode": "base", "batch": 1, "phase": "decode"}}]}, "'runs[0].total' is missing"),
    ({"runs": [_decode_run(device_s="0.002")]}, "'runs[0].total.device_s' is not a number ('0.002')"),
    ({"runs": [_decode_run(device_s=-1.0)]}, "'runs[0].total.device_s' must be >= 0"),
    ({"runs": [_decode_run(kernels=3)]}, "has neither device_s nor wall_s"),
    ({"runs": [_decode_run(device_s=0.002) | {"totl": {}}]}, "'runs[0].totl' is not a known field: did you mean "
                                                             "'total'?"),
    ({"runs": [_decode_run(device_s=0.002) | {"execution": "cuda-graph"}]}, "'runs[0].execution' must be"),
    ({"runs": [_decode_run(device_s=0.0)]}, "no usable measurement"),
])
def test_measured_file_problems(doc: dict[str, Any], expected: str, report_file: Path, tmp_path: Path) -> None:
    p = tmp_path / "measured.json"
    p.write_text(json.dumps({"schema": "dsocr-trace/measured/1"} | doc))
    with pytest.raises(UserError) as e:
        compare_command(report_file, p, None, tmp_path / "cmp", False)
    assert expected in one_line(e.value), str(e.value)
    assert not (tmp_path / "cmp").exists()


def _broken_report(r: dict[str, Any], how: str) -> dict[str, Any]:
    r = copy.deepcopy(r)
    if how == "empty predictions":
        r["predictions"] = {}
    elif how == "no request":
        del r["predictions"]["request"]
    elif how == "empty stages":
        r["stages"] = {}
    elif how == "stage not a mapping":
        r["stages"]["vision.sam"] = "fast"
    elif how == "string flops":
        r["stages"]["vision.sam"]["tc_flops"] = "1e12"
    elif how == "ttft 0":
        r["predictions"]["request"]["ttft_s"] = 0.0
    return r


@pytest.mark.parametrize(("how", "command", "expected"), [
    ("empty predictions", "compare", "has no predictions: rerun `dsocr-trace analyze` with --device"),
    ("no request", "compare", "field 'predictions.request' is missing"),
    ("empty stages", "diff", "field 'stages' must not be empty"),
    ("stage not a mapping", "diff", "field 'stages.vision.sam' must be a mapping"),
    ("string flops", "diff", "field 'stages.vision.sam.tc_flops' is not a number"),
    ("ttft 0", "diff", "field 'predictions.request.ttft_s' must be > 0"),
])
def test_report_problems(how: str, command: str, expected: str, h100_report: dict[str, Any], report_file: Path,
                         tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_broken_report(h100_report, how)))
    with pytest.raises(UserError) as e:
        if command == "compare":
            compare_command(bad, RESULTS / "measured.json", None, None, False)
        else:
            diff_command(report_file, bad, None, False)
    assert expected in one_line(e.value), str(e.value)


def test_compare_detects_the_phase_of_a_chrome_trace(report_file: Path) -> None:
    trace = RESULTS / "trace_decode_kv1000_b1.json.gz"
    res = compare_command(report_file, trace, None, None, False)
    assert {r["workload"]["phase"] for r in res["runs"]} == {"decode"}
    assert any("phase detected from the trace: decode" in n for n in res["notes"])
    with pytest.raises(UserError) as e:
        compare_command(report_file, trace, "prefill", None, False)
    assert "every step" in one_line(e.value) and "--phase decode" in str(e.value)


def test_compare_pairs_executions_only_when_asked(report_file: Path, tmp_path: Path) -> None:
    m = json.loads((RESULTS / "measured.json").read_text())
    graph = next(r for r in m["runs"] if r["execution"] == "graph" and r["workload"]["mode"] == "base"
                 and r["workload"]["batch"] == 1)
    graph["workload"]["kv_len"] = None
    p = tmp_path / "graph-only.json"
    p.write_text(json.dumps(m | {"runs": [graph]}))
    with pytest.raises(UserError) as e:
        compare_command(report_file, p, None, None, False)
    assert "are graph runs and the report predicts eager" in one_line(e.value)
    res = compare_command(report_file, p, None, None, False, any_execution=True)
    assert [r["execution"] for r in res["runs"]] == ["graph"]


def test_diff_says_what_differs(h100_report: dict[str, Any], counts_report: dict[str, Any], tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(counts_report))
    b.write_text(json.dumps(h100_report))
    res = diff_command(a, b, tmp_path / "d", False)
    assert res["differs"]["device"] == {"a": "none (counts only)", "b": "NVIDIA H100 SXM5 80GB"}
    assert any("only B has predictions" in n for n in res["notes"])
    assert res["request"] is None
    assert all("device_s" not in row for row in res["stages"].values())
    flops = res["module_types"]["prefill"]
    assert flops["metric"] == "flops" and sum(v["a"] for v in flops["types"].values()) > 1e11
    md = (tmp_path / "d" / "diff.md").read_text()
    assert "| device | none (counts only) | NVIDIA H100 SXM5 80GB |" in md and "0.000" not in md
    # the same report twice: said, not silently all zeros; calibrated vs datasheet-only: flagged
    assert "same run" in diff_command(b, b, None, False)["notes"][0]
    datasheet = copy.deepcopy(h100_report)
    datasheet["predictions"]["profile"] = {"source": "spec-default"}
    c = tmp_path / "c.json"
    c.write_text(json.dumps(datasheet))
    res = diff_command(b, c, None, False)
    assert any("A's times come from a calibrated profile, B's from datasheet figures only" in n
               for n in res["notes"]), res["notes"]
    assert res["differs"]["profile"]["b"].startswith("datasheet only")


def test_shipped_measured_schema_is_generated_from_the_checker() -> None:
    from dsocr_trace.validate.inputs import measured_json_schema

    for path in (ROOT / "specs" / "measured-schema.json",
                 ROOT / "src" / "dsocr_trace" / "schemas" / "measured-schema.json"):
        assert json.loads(path.read_text()) == measured_json_schema(), f"regenerate {path}"
