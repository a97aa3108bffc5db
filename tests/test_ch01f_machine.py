"""Lab 01f, know your machine: cores, bandwidth, matmul speed, roofline, the training step, will_it_fit grid."""

import math

import pytest

from labkit.chapters.ch01f_hardware import machine
from labkit.core import LabkitError


def test_cpu_info_counts_cores_and_threads():
    info = machine.cpu_info()
    assert info["logical_cpus"] >= 1 and info["torch_threads"] >= 1
    assert info["physical_cores"] is None or 1 <= info["physical_cores"] <= info["logical_cpus"]
    assert {"avx512_bf16", "amx_bf16", "avx2"} <= set(info)


def test_measure_machine_small():
    measured = machine.measure_machine(size=128, size_mib=8, repeats=1)
    assert measured["copy_gbs"] > 0 and measured["fp32_tflops"] > 0 and measured["bf16_tflops"] > 0
    assert math.isclose(measured["bf16_speedup"], measured["bf16_tflops"] / measured["fp32_tflops"])


def test_roofline_table_and_attainable():
    table = machine.roofline_table({"copy_gbs": 10.0, "fp32_tflops": 0.1, "bf16_tflops": 0.05})
    assert table.iloc[0]["device"] == "this machine" and len(table) == 1 + len(machine.GPU_BANDWIDTH_GBS)
    t4 = table[table["device"] == "T4"].iloc[0]
    assert t4["half_dtype"] == "fp16" and t4["half_tflops"] == 65.0  # the table's T4: fp16, no bf16
    # 10 GB/s x 1 FLOP/B = 0.01 TFLOP/s (memory-bound); 10 GB/s x 1e5 FLOP/B is capped at the 0.1 peak
    assert machine.attainable_tflops(0.1, 10.0, [1.0, 1e5]).tolist() == pytest.approx([0.01, 0.1])
    fig = machine.plot_roofline(table, {"point": (1.0, 0.01)})
    assert len(fig.data) == len(table) + 2


@pytest.mark.parametrize("bad", [{}, {"copy_gbs": 0, "fp32_tflops": 1.0}, {"copy_gbs": 5.0}])
def test_roofline_table_rejects_bad_measurements(bad):
    with pytest.raises(LabkitError, match="measure_machine"):
        machine.roofline_table(bad)


def test_attainable_rejects_non_positive():
    with pytest.raises(LabkitError, match="positive"):
        machine.attainable_tflops(0, 10.0, 1.0)


def test_step_prediction_and_errors():
    import torch

    model = torch.nn.Linear(10, 10)  # 110 parameters, all trainable: 6 FLOPs each per token
    step = machine.step_prediction(model, 1e9, 1.0, tokens_per_step=8)
    assert step["flops_per_token"] == 6 * 110
    assert step["predicted_tokens_per_s"] == pytest.approx(1e12 / 660)
    assert step["mfu"] == pytest.approx(1e9 / (1e12 / 660))
    assert step["intensity_flop_per_byte"] == pytest.approx(660 * 8 / (3 * 440))
    assert machine.decode_intensity(model) == pytest.approx(0.5)  # 2 FLOPs per 4-byte weight
    with pytest.raises(LabkitError, match="measured"):
        machine.step_prediction(model, 0, 1.0)
    with pytest.raises(LabkitError, match="tokens_per_step"):
        machine.step_prediction(model, 1.0, 1.0, tokens_per_step=0)


def test_fit_grid_across_the_table():
    grid = machine.fit_grid(models=["mistralai/Mistral-7B-v0.3"], methods=["full", "qlora"], gpus=["T4", "H200"])
    assert len(grid) == 4
    fits = {(r.method, r.gpu): r.fits for r in grid.itertuples()}
    assert fits[("qlora", "T4")] and not fits[("full", "T4")]
    assert machine.plot_fit_grid(grid).data[0].z.shape == (2, 2)
    with pytest.raises(LabkitError, match="at least one"):
        machine.fit_grid(models=[])


def test_bf16_on_t4_says_fp16():
    assert "fp16" in machine.bf16_on("T4") and "GradScaler" in machine.bf16_on("T4")
    assert "bf16 at 312" in machine.bf16_on("A100-80GB")
