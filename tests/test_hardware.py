"""The device catalog and calibration profiles: figures, validation messages, round trips."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from dsocr_trace.errors import UserError
from dsocr_trace.hardware import (
    catalog,
    default_profile,
    load_device,
    load_profile,
)
from dsocr_trace.hardware.profile import TIMED_KINDS
from dsocr_trace.hardware.spec import OPTIONAL_NUMBERS, REQUIRED_NUMBERS

# dense BF16 (FP32 accumulate) TFLOP/s and memory GB/s from the research notes
EXPECTED = {
    "rtx5090": (209.5, 1792, 170),
    "h100": (989.4, 3350, 132),
    "h200": (989.4, 4800, 132),
    "a100": (312, 2039, 108),
    "l40s": (362.05, 864, 142),
    "rtx4090": (165.2, 1008, 128),
}


def test_catalog_has_every_device():
    assert [s.key for s in catalog()] == sorted(EXPECTED)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_catalog_figures(key):
    tflops, gbs, sms = EXPECTED[key]
    s = load_device(key)
    assert s.tc_flops == tflops * 1e12
    assert s.peaks_by_dtype["bf16"] == s.tc_flops
    assert s.mem_bw == gbs * 1e9
    assert s.sm_count == sms
    # every figure in the file carries a source
    numeric = [*REQUIRED_NUMBERS, *OPTIONAL_NUMBERS]
    assert set(s.sources) <= set(numeric)
    assert set(REQUIRED_NUMBERS) <= set(s.sources)
    assert all(s.sources.values())


def test_geforce_fp32_accumulate_is_half_rate():
    for key in ("rtx5090", "rtx4090"):
        s = load_device(key)
        assert s.peaks_by_dtype["fp16_fp16acc"] == pytest.approx(2 * s.tc_flops, rel=1e-3)
        assert s.peaks_by_dtype["fp16"] == s.tc_flops  # torch accumulates fp16 GEMMs in FP32


def test_a100_has_no_fp8_and_hopper_has_2x():
    assert "fp8" not in load_device("a100").peaks_by_dtype
    h = load_device("h100")
    assert h.peaks_by_dtype["fp8"] == 1978.9e12


def test_units():
    h = load_device("h100")
    assert h.cc_flops == 66.9e12
    assert h.mem_bytes == 80 * 2**30
    assert h.l2_bytes == 50 * 2**20
    assert load_device("h200").mem_bytes == 141 * 2**30


@pytest.mark.parametrize("alias,key", [("H100-SXM", "h100"), ("h100 sxm5", "h100"), ("4090", "rtx4090"),
                                       ("rtx_5090", "rtx5090"), ("A100", "a100"), ("h200-sxm", "h200")])
def test_aliases(alias, key):
    assert load_device(alias).key == key


def test_unknown_device_lists_keys():
    with pytest.raises(UserError) as e:
        load_device("b200")
    msg = str(e.value)
    assert "\n" not in msg
    for key in EXPECTED:
        assert key in msg
    assert "--device-file" in msg


def _catalog_yaml(key: str) -> dict:
    from importlib import resources

    text = resources.files("dsocr_trace.hardware").joinpath("devices", f"{key}.yaml").read_text()
    return yaml.safe_load(text)


def test_user_file_roundtrip(tmp_path: Path):
    data = _catalog_yaml("h100")
    data["mem_bw_gbs"] = 3000
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump(data))
    s = load_device(str(p))
    assert s.key == "mine" and s.mem_bw == 3000e9 and s.tc_flops == 989.4e12
    # the same content as JSON
    j = tmp_path / "mine.json"
    j.write_bytes(orjson.dumps(data))
    assert load_device(str(j)).mem_bw == 3000e9


def _broken(tmp_path: Path, mutate) -> str:
    data = _catalog_yaml("rtx4090")
    mutate(data)
    p = tmp_path / "my.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError) as e:
        load_device(str(p))
    msg = str(e.value)
    assert "\n" not in msg, msg
    assert "my.yaml" in msg, msg
    return msg


def test_missing_field(tmp_path):
    msg = _broken(tmp_path, lambda d: d.pop("mem_bw_gbs"))
    assert "'mem_bw_gbs' is missing" in msg and "GB/s" in msg


def test_negative_field(tmp_path):
    msg = _broken(tmp_path, lambda d: d.update(tc_bf16_dense_tflops=-165.2))
    assert "'tc_bf16_dense_tflops'" in msg and "> 0" in msg


def test_zero_field(tmp_path):
    assert "'sm_count'" in _broken(tmp_path, lambda d: d.update(sm_count=0))


def test_non_numeric_field(tmp_path):
    msg = _broken(tmp_path, lambda d: d.update(l2_mb="72 MB"))
    assert "'l2_mb' is not a number" in msg


def test_bool_is_not_a_number(tmp_path):
    assert "'memory_gb' is not a number" in _broken(tmp_path, lambda d: d.update(memory_gb=True))


def test_fractional_sm_count(tmp_path):
    assert "'sm_count'" in _broken(tmp_path, lambda d: d.update(sm_count=127.5))


def test_null_required_and_nullable_fp8(tmp_path):
    assert "'tf32_dense_tflops' is null" in _broken(tmp_path, lambda d: d.update(tf32_dense_tflops=None))
    data = _catalog_yaml("rtx4090")
    data["tc_fp8_dense_tflops"] = None
    p = tmp_path / "nofp8.yaml"
    p.write_text(yaml.safe_dump(data))
    assert "fp8" not in load_device(str(p)).peaks_by_dtype


def test_missing_name(tmp_path):
    assert "'name'" in _broken(tmp_path, lambda d: d.pop("name"))


def test_bad_yaml(tmp_path):
    p = tmp_path / "my.yaml"
    p.write_text("name: [unclosed\nsm_count: 3\n")
    with pytest.raises(UserError) as e:
        load_device(str(p))
    assert "my.yaml" in str(e.value) and "not valid YAML" in str(e.value) and "\n" not in str(e.value)


def test_not_a_mapping(tmp_path):
    p = tmp_path / "my.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(UserError) as e:
        load_device(str(p))
    assert "my.yaml" in str(e.value) and "mapping" in str(e.value) and "\n" not in str(e.value)


def test_missing_file():
    with pytest.raises(UserError) as e:
        load_device("/nonexistent/dev.yaml")
    assert "/nonexistent/dev.yaml" in str(e.value)


# -- profiles ------------------------------------------------------------------------------------------------
def test_default_profile_is_spec_derived():
    h = load_device("h100")
    p = default_profile(h)
    assert p.source == "spec-default" and not p.calibrated
    assert (p.tc_flops, p.cc_flops, p.mem_bw) == (h.tc_flops, h.cc_flops, h.mem_bw)
    assert set(p.curves) == set(TIMED_KINDS)
    # reference device: the documented points hold exactly
    assert p.curves["gemm"].compute.points[0] == (1e6, 0.10)
    assert p.curves["gemm"].compute.points[-1] == (1e11, 0.75)
    assert p.curves["copy"].memory.points == ((4096, 0.05), (2**20, 0.50), (64 * 2**20, 0.85))
    # a slower memory reaches the same efficiency at proportionally fewer bytes (Little's law)
    g = default_profile(load_device("rtx4090"))
    assert g.curves["copy"].memory.points[1][0] == pytest.approx(2**20 * 1008 / 3350)
    assert g.curves["gemm"].compute.points[0][0] == pytest.approx(1e6 * 128 / 132)


def test_profile_bad_json(tmp_path):
    p = tmp_path / "prof.json"
    p.write_text("{not json")
    with pytest.raises(UserError) as e:
        load_profile(p, load_device("h100"))
    assert "not valid JSON" in str(e.value) and "\n" not in str(e.value)
