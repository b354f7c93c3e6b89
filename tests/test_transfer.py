"""The cross-GPU model (kernels.transfer) and the figures it reads: partitions, measured catalog figures,
usable memory and the memory-utilization setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from attrs import evolve

from dsocr_trace.errors import UserError
from dsocr_trace.hardware.profile import packaged_profile, transfer_profile
from dsocr_trace.hardware.spec import (
    MEMORY_UTILIZATION,
    GpuFigures,
    load_device,
    load_device_file,
    partition_of,
    spec_to_dict,
)
from dsocr_trace.kernels.base import Estimate
from dsocr_trace.kernels.query import Query
from dsocr_trace.kernels.transfer import bandwidth_share, carry, tiled_units

H200 = GpuFigures(786e12, 4155e9, 132, 1.98e9, 1.9e-6, 989.4e12)


def fig(sms: int, tc: float, bw: float, floor: float = 1.9e-6) -> GpuFigures:
    return GpuFigures(tc, bw, sms, 1.98e9, floor, 989.4e12 * sms / 132)


def elementwise(nbytes: float) -> Query:
    return Query("memory", ("aten.add", "elementwise", "ff", "bf16,bf16>bf16"), (nbytes,), 0.0, nbytes / 6,
                 nbytes)


def gemm(m: int, n: int, k: int) -> Query:
    return Query("gemm", ("addmm", n, k, 1, True, "bf16"), (float(m),), 2.0 * m * n * k, 0.0,
                 2.0 * (m * k + n * k + m * n), 1, (m, n, k, 1))


def at(q: Query, seconds: float, src: GpuFigures = H200) -> Estimate:
    """A source estimate of `seconds` whose ideals are the roofline at the source's figures."""
    return Estimate(seconds, q.tc_flops / src.tc_flops, q.bytes / src.mem_bw, 0.0, "class")


def test_same_gpu_is_the_identity() -> None:
    for q, sec in ((elementwise(64e6), 20e-6), (gemm(4096, 4096, 4096), 200e-6), (elementwise(4096), 2.5e-6)):
        assert carry(at(q, sec), q, H200, H200).seconds == pytest.approx(sec)


def test_a_streaming_kernel_on_fewer_sms_follows_the_sms_not_the_bandwidth() -> None:
    """Measured on 16 of 132 SMs: a large element-wise kernel is 8.0x slower while the copy bandwidth falls
    3.5x; the SM-side limit must carry that."""
    q = elementwise(256e6)
    src_s = q.bytes / (0.96 * H200.mem_bw)  # at the card's copy bandwidth: fully streaming
    assert bandwidth_share(at(q, src_s)) == 1.0
    ratio = carry(at(q, src_s), q, H200, fig(16, 111e12, 1193e9)).seconds / src_s
    assert 4.0 < ratio < 8.5  # more than the bandwidth's 3.5x: the 16 SMs cannot issue the bytes faster


def test_same_sms_more_bandwidth_moves_only_the_streaming_time() -> None:
    h100 = GpuFigures(805.7e12, 3031.7e9, 132, 1.98e9, 1.94e-6, 989.4e12)
    q = elementwise(256e6)
    src_s = q.bytes / (0.9 * h100.mem_bw)
    moved = carry(at(q, src_s, h100), q, h100, H200).seconds
    assert 0.70 < moved / src_s < 0.80  # the bandwidth ratio is 0.73
    # a latency-bound kernel (far from the bandwidth) does not move
    small = elementwise(1e6)
    assert carry(at(small, 10e-6, h100), small, h100, H200).seconds == pytest.approx(10e-6, rel=0.02)


def test_a_kernel_at_the_floor_takes_the_targets_floor() -> None:
    q = elementwise(512)
    assert carry(at(q, 1.9e-6), q, H200, fig(16, 111e12, 1193e9, floor=1.5e-6)).seconds == pytest.approx(1.5e-6)


def test_gemm_waves_follow_tiles_per_sm() -> None:
    q = gemm(4096, 4096, 4096)
    assert tiled_units(q, (128, 128)) == 32 * 32
    src_s = q.tc_flops / 700e12
    ratio = carry(at(q, src_s), q, H200, fig(32, 219e12, 2194e9), (128, 128)).seconds / src_s
    # 1024 tiles: 8 waves on 132 SMs, 32 on 32 SMs, at the measured per-SM rates of a long kernel
    assert ratio == pytest.approx(32 / 8 * (786 / 132) / (219 / 32), rel=0.02)


def grouped(rows: list[int], n: int = 1792, k: int = 1280) -> Query:
    flops = 2.0 * sum(rows) * n * k
    return Query("grouped_gemm", ("bf16", n, k), (float(sum(rows)),), flops, 0.0,
                 2.0 * (sum(rows) * k + len([r for r in rows if r]) * n * k), 1, (tuple(rows), n, k))


def decode(b: int, tk: int, h: int = 10) -> Query:
    nbytes = 2.0 * 2 * b * h * tk * 128
    return Query("attention", (h, 128, False, "none", True), (float(b * h), 1.0, float(tk)), 4.0 * b * h * tk * 128,
                 0.0, nbytes, 1, (b, h, 1, tk, 128))


def partition(sms: int, tc: float, bw: float) -> GpuFigures:
    """A green-context partition: the device still reports the card's 132 SMs."""
    return evolve(fig(sms, tc, bw), reported_sms=132)


def test_a_persistent_grouped_gemm_keeps_the_reported_grid_on_a_partition() -> None:
    """Measured (benchmarks/results/h200-partition-families): prefill-sized grouped GEMMs are as slow on 100 of
    132 SMs as on 66 (two rounds of the 132-CTA grid); on a real 100-SM GPU the grid has 100 CTAs."""
    q = grouped([600] * 64)  # 64 experts x 600 rows: 640 tiles of 64 x 128
    e = Estimate(300e-6, q.tc_flops / H200.tc_flops, q.bytes / H200.mem_bw, 0.0, "class", (64, 128))
    p66 = carry(e, q, H200, partition(66, 480e12, 3696e9), (64, 128)).seconds
    p100 = carry(e, q, H200, partition(100, 655e12, 3900e9), (64, 128)).seconds
    real100 = carry(e, q, H200, fig(100, 655e12, 3900e9), (64, 128)).seconds
    assert p100 > 0.9 * p66 and real100 < 0.8 * p100
    # decode's one row per expert does not pay the extra rounds: close to the plain waves
    d = grouped([1] * 24 + [0] * 40)
    ed = Estimate(40e-6, d.tc_flops / H200.tc_flops, d.bytes / H200.mem_bw, 0.0, "class", (64, 128))
    part = carry(ed, d, H200, partition(16, 111e12, 1193e9), (64, 128)).seconds
    plain = carry(ed, d, H200, fig(16, 111e12, 1193e9), (64, 128)).seconds
    assert part == pytest.approx(plain, rel=0.3)


def test_decode_attention_waves_follow_batch_times_heads() -> None:
    """Without a split, one CTA per (batch, head): 240 of them are 2 waves on 132 SMs and 15 on 16 (measured
    6.0x at batch 24, KV 100); a split-KV kernel fills the reported SMs with co-resident CTAs."""
    q = decode(24, 100)
    e = Estimate(6.8e-6, 0.0, q.bytes / H200.mem_bw, 0.0, "class", (64, 0))
    ratio = carry(e, q, H200, partition(16, 111e12, 1193e9)).seconds / 6.8e-6
    assert 4.5 < ratio < 7.0
    one = decode(1, 3000)
    e1 = Estimate(9.6e-6, 0.0, one.bytes / H200.mem_bw, 0.0, "class", (16, 0), split_kv=True)
    on100 = carry(e1, one, H200, partition(100, 655e12, 3900e9)).seconds
    on16 = carry(e1, one, H200, partition(16, 111e12, 1193e9)).seconds
    assert on100 == pytest.approx(9.6e-6, rel=0.1) and 2.0 < on16 / 9.6e-6 < 4.0  # measured 0.97x and 2.9x


def test_copies_stream_faster_per_sm_than_element_wise_math() -> None:
    """A 164 MB KV-cache cat on 16 SMs runs at the partition's copy bandwidth; an add is held by the SMs."""
    cat = Query("memory", ("aten.cat", "copy", "fb/f", "bf16>bf16"), (164e6,), 0.0, 0.0, 164e6)
    add = elementwise(164e6)
    src_s = 164e6 / (0.96 * H200.mem_bw)
    p16 = fig(16, 111e12, 1193e9)
    t_cat = carry(at(cat, src_s), cat, H200, p16).seconds
    t_add = carry(at(add, src_s), add, H200, p16).seconds
    assert t_cat == pytest.approx(164e6 / 1193e9, rel=0.25) and t_add > 1.25 * t_cat


def test_split_kv_is_read_from_the_kernel_names() -> None:
    from dsocr_trace.kernels.attention import AttentionFamily, is_split_kv
    from dsocr_trace.kernels.base import Hw, Point

    assert is_split_kv(["cudnn_generated_fort_native_sdpa_sm80_flash_fprop_wmma_f16_knob_35_16x128x128_1x4x1",
                        "void cudnn::fusion::lean_reduction_kernel<false, false, false>(void*)"])
    assert is_split_kv(["void flash_fwd_splitkv_combine_kernel<Flash_fwd_kernel_traits<128, 64, 128, 4>>()"])
    assert not is_split_kv(["cudnn_generated_fort_native_sdpa_sm80_flash_fprop_wmma_f16_knob_3_64x64x128_4x1x1"])
    hw = Hw(786e12, 4155e9, 132)
    pts = [Point(decode(1, 3000), 9.6e-6, ("sdpa_fprop", "lean_reduction_kernel")),
           Point(decode(24, 3000), 87e-6, ("sdpa_fprop",))]
    fam = AttentionFamily(pts, hw)
    assert fam.predict(decode(1, 5000)).split_kv and not fam.predict(decode(32, 4000)).split_kv  # type: ignore[union-attr]


def test_partition_of_scales_compute_not_memory() -> None:
    card = load_device("h200")
    p = partition_of(card, 33)
    assert p.sm_count == 33 and p.tc_flops == pytest.approx(card.tc_flops / 4)
    assert p.reported_sms == 132 and p.gpu_figures.grid_sms == 132 and card.gpu_figures.grid_sms == 132
    assert p.mem_bw == card.mem_bw and p.l2_bytes == card.l2_bytes
    assert p.assumed_figures() == ["measured_matmul_tflops", "measured_copy_gbs", "kernel_floor_us",
                                   "usable_memory_gib"]
    assert packaged_profile(p).transfer is not None  # never the full card's own calibration
    for bad in (0, 133):
        with pytest.raises(UserError, match="1 to 132 SMs"):
            partition_of(card, bad)


def test_an_uncalibrated_gpu_is_carried_from_the_nearest_calibration() -> None:
    prof = packaged_profile(load_device("rtx5090"))
    assert prof.source == "transferred" and prof.transfer is not None
    assert prof.transfer.source_device == "h200"  # 235/1530 TFLOP per TB/s is nearest the H200's balance
    assert prof.transfer.assumed == ("kernel_floor_us",)
    assert prof.provenance()["assumed_figures"] == ["kernel_floor_us"]
    assert "transferred to rtx5090" in prof.label and "kernel_floor_us assumed" in prof.label
    with pytest.raises(ValueError):
        transfer_profile(prof, load_device("h100"))


def test_catalog_cards_carry_measured_figures_with_sources() -> None:
    for key in ("h100", "h200", "rtx5090"):
        spec = load_device(key)
        for name in ("measured_matmul_tflops", "measured_copy_gbs", "usable_memory_gib"):
            assert spec.measured(name) and name in spec.sources
    h100 = load_device("h100")
    assert h100.usable_bytes == pytest.approx(79.18 * 2**30)
    assert h100.achievable_tc_flops == pytest.approx(805.7e12)
    a100 = load_device("a100")
    assert a100.achievable_mem_bw == pytest.approx(a100.mem_bw * 0.895)  # assumed: nobody measured it here


def test_memory_utilization_scales_the_fit_check() -> None:
    h100 = load_device("h100")
    assert h100.capacity_bytes == pytest.approx(79.18 * 2**30)
    tok = MEMORY_UTILIZATION.set(0.9)
    try:
        assert h100.capacity_bytes == pytest.approx(0.9 * 79.18 * 2**30)
    finally:
        MEMORY_UTILIZATION.reset(tok)


@pytest.mark.parametrize(("field", "value", "hint"), [
    ("mem_bw_gbs", 3.35, "did you mean 3350 GB/s"),
    ("boost_clock_mhz", 1.98, "did you mean 1980 MHz"),
    ("measured_copy_gbs", 9000.0, "cannot outrun the memory"),
    ("measured_matmul_tflops", 4000.0, "over twice the dense datasheet peak"),
    ("usable_memory_gib", 200.0, "more than the card's"),
])
def test_implausible_device_figures_say_what_was_meant(tmp_path: Path, field: str, value: float, hint: str) -> None:
    doc = spec_to_dict(load_device("h100"))
    doc[field] = value
    f = tmp_path / "gpu.yaml"
    f.write_text(yaml.safe_dump(doc))
    with pytest.raises(UserError, match=hint):
        load_device_file(f)


def test_a_users_copy_with_measured_figures_is_used(tmp_path: Path) -> None:
    doc = spec_to_dict(evolve(load_device("a100")))
    doc["measured_copy_gbs"] = 1700.0
    f = tmp_path / "my-a100.yaml"
    f.write_text(yaml.safe_dump(doc))
    spec = load_device_file(f)
    assert spec.achievable_mem_bw == pytest.approx(1.7e12)
    assert "measured_copy_gbs" not in spec.assumed_figures()


def test_cli_refuses_an_impossible_memory_utilization() -> None:
    r = subprocess.run([sys.executable, "-m", "dsocr_trace", "sweep", "--gpu-memory-utilization", "1.5"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "(0, 1]" in r.stderr and not r.stdout


def test_device_file_aliases_bytes_and_size_are_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]"
              for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="aliases"):
        load_device_file(bomb)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        load_device_file(latin)
    huge = tmp_path / "huge.yaml"
    huge.write_text("# " + "x" * (2 << 20))
    with pytest.raises(UserError, match="not a device file"):
        load_device_file(huge)


def test_a_gpu_outside_the_catalog_is_calibrated_as_itself(tmp_path: Path) -> None:
    """What `calibrate` records for an unknown card becomes its own spec (and a device file that round-trips),
    never an H100's."""
    from dsocr_trace.validate.offline import device_for

    doc = {"sm_count": 84, "memory_bytes": 47.5 * 2**30, "l2_bytes": 96 * 2**20, "max_sm_clock": "2505 MHz",
           "peaks": {"tc_flops": 290e12, "mem_bw": 760e9}, "probes": {"launch_s": 2.2e-6}}
    assert device_for("NVIDIA RTX 6000 Ada Generation") is None
    spec = device_for("NVIDIA RTX 6000 Ada Generation", doc)
    assert spec is not None and spec.key == "nvidia-rtx-6000-ada-generation" and spec.sm_count == 84
    assert spec.achievable_tc_flops == pytest.approx(290e12) and spec.achievable_mem_bw == pytest.approx(760e9)
    assert spec.kernel_floor_s == pytest.approx(2.2e-6) and spec.boost_clock_hz == pytest.approx(2.505e9)
    assert spec.usable_bytes == pytest.approx(47.5 * 2**30) and spec.assumed_figures() == []
    assert "replace with the datasheet figure" in spec.sources["tc_bf16_dense_tflops"]
    f = tmp_path / "gpu.device.yaml"
    f.write_text(yaml.safe_dump(spec_to_dict(spec), sort_keys=False))
    again = load_device_file(f)
    assert again.tc_flops == spec.tc_flops and again.sm_count == 84
    assert device_for("NVIDIA H100 80GB HBM3", doc) == load_device("h100")  # catalog cards stay themselves


@pytest.mark.parametrize(("names", "tile"), [
    (["nvjet_sm90_tst_128x256_64x4_2x1_v_bz_coop_TNN"], (128, 256)),
    (["nvjet_sm90_tst_64x8_64x16_2x1_v_bz_TNT"], (8, 64)),
    (["nvjet_sm120_tst_128x64_64x4_1x2_h_bz_TNN"], (128, 64)),
    (["sm80_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x32_stage4_warpsize2x2x1_tensor16x8x16_kernel"],
     (128, 128)),
    (["sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_cluster1x2x1_execute_segment_k_off_kernel"],
     (128, 256)),
    (["void cutlass::Kernel2<cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_64x4_nn_align8>(Params)"], (64, 64)),
    (["cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_128x256_32x3_nn_align8"], (128, 256)),
    (["ampere_bf16_s16816gemm_bf16_128x64_ldg8_f2f_stages_64x3_tn"], (128, 64)),
    (["void gemvx::kernel<int, int, __nv_bfloat16, __nv_bfloat16, __nv_bfloat16, float, false, true, true, false, "
      "7, false, cublasGemvParamsEx<int, cublasGemvTensorStridedBatched<__nv_bfloat16 const>>>(T13, T5, T5)"], None),
    (["void gemv2T_kernel_val<int, int, __nv_bfloat16, __nv_bfloat16, float, float, 128, 16, 4, 4, false, false>"],
     None),
    (["void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>"], None),
])
def test_gemm_tiles_from_kernel_names_of_every_architecture(names: list[str], tile: tuple[int, int] | None) -> None:
    from dsocr_trace.kernels.gemm import is_gemv, tile_of

    assert tile_of(names) == tile
    assert is_gemv(names) == ("gemv" in names[0])


@pytest.mark.parametrize(("names", "rows"), [
    (["void pytorch_flash::flash_fwd_kernel<pytorch_flash::Flash_fwd_kernel_traits<64, 128, 128, 4, false, false, "
      "cutlass::bfloat16_t, Flash_kernel_traits<64, 128, 128, 4, cutlass::bfloat16_t>>, false, true, false>"], 128),
    (["void pytorch_flash::flash_fwd_splitkv_kernel<pytorch_flash::Flash_fwd_kernel_traits<128, 64, 128, 4, false, "
      "false, cutlass::bfloat16_t>, true>", "void pytorch_flash::flash_fwd_splitkv_combine_kernel<...>"], 64),
    (["cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x128x128_4x1x1_kernel0_0"], 64),
    (["fmha_cutlassF_bf16_aligned_64x128_rf_sm80(PyTorchMemEffAttention::AttentionKernel<...>::Params)"], 64),
    (["void at::native::vectorized_elementwise_kernel<4>"], None),
])
def test_attention_query_rows_per_block_from_kernel_names(names: list[str], rows: int | None) -> None:
    from dsocr_trace.kernels.attention import q_rows_of

    assert q_rows_of(names) == rows


def test_cost_per_page_from_the_catalog_price_or_the_option() -> None:
    from dsocr_trace.hardware.spec import PRICES
    from dsocr_trace.request import throughput_of

    h100 = load_device("h100")
    t = throughput_of(4, 2.0, h100)  # 2 pages/s
    assert t["pages_per_gpu_day"] == pytest.approx(2 * 86400)
    assert t["price_per_hour_usd"] == 4.76 and "RunPod" in t["price_source"]
    assert t["usd_per_million_pages"] == pytest.approx(4.76 / 3600 / 2 * 1e6)
    tok = PRICES.set({"h100": 2.0})
    try:
        t = throughput_of(4, 2.0, h100)
        assert t["price_per_hour_usd"] == 2.0 and t["price_source"] == "--price-per-hour"
        assert throughput_of(4, 2.0, load_device("h200"))["price_per_hour_usd"] == 6.35
    finally:
        PRICES.reset(tok)
    bare = evolve(h100, figures={k: v for k, v in h100.figures.items() if k != "price_per_hour_usd"})
    assert throughput_of(1, 1.0, bare)["usd_per_page"] is None
    # a price is not hardware: a copy that changes only the price keeps its calibration
    from dsocr_trace.hardware.spec import same_hardware
    assert same_hardware(bare, h100)


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "h100=", "2000"])
def test_cli_refuses_a_bad_price(bad: str) -> None:
    r = subprocess.run([sys.executable, "-m", "dsocr_trace", "sweep", "--price-per-hour", bad],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--price-per-hour" in r.stderr and not r.stdout
