"""The "which to pick?" advisor: the rules on hard-coded cases, the numbers behind them, bad input, the panel."""

import pytest

from labkit.chapters.ch01a_paradigms.advisor import AdvisorPanel, candidates_table, recommend
from labkit.core import LabkitError
from labkit.plots import advice_figure

LLAMA8B = "meta-llama/Llama-3.1-8B"


@pytest.mark.parametrize("gpu, reshape, latency, num_tasks, method, settings", [
    ("T4", "moderate", "relaxed", 1, "qlora", {"rank": 16}),  # the 16-bit base alone is ~15 GiB
    ("L4", "moderate", "relaxed", 1, "lora", {"rank": 16}),
    ("L4", "heavy", "relaxed", 1, "qlora", {"rank": 64, "target_modules": "all-linear"}),
    ("H100", "heavy", "relaxed", 10, "lora", {"rank": 64, "target_modules": "all-linear"}),
    ("A100-80GB", "heavy", "relaxed", 1, "lora", {"rank": 64, "target_modules": "all-linear"}),  # full: ~120 GiB
])
def test_recommendations_for_an_8b_model(gpu, reshape, latency, num_tasks, method, settings):
    advice = recommend(LLAMA8B, gpu=gpu, reshape=reshape, latency=latency, num_tasks=num_tasks)
    assert (advice.method, advice.settings) == (method, settings)
    assert advice.table.loc[method, "chosen"] and advice.table["chosen"].sum() == 1
    assert advice.table.loc[method, "fits"]


def test_small_model_heavy_task_gets_full_fine_tuning_unless_there_are_many_tasks():
    assert recommend("smollm2-135m", gpu="T4", reshape="heavy").method == "full"
    many = recommend("smollm2-135m", gpu="T4", reshape="heavy", num_tasks=5)
    assert many.method == "lora"
    assert any("5 tasks" in r and "copy per task" in r for r in many.reasons)


def test_strict_latency_leaves_out_methods_that_run_at_inference():
    relaxed = recommend("smollm2-135m", gpu="T4", reshape="light", latency="relaxed")
    strict = recommend("smollm2-135m", gpu="T4", reshape="light", latency="strict")
    assert relaxed.method == strict.method == "lora"
    assert "left out prompt" in strict.reasons[0]
    assert not strict.table.loc[strict.method, "adds_latency"]


def test_nothing_fits_says_what_to_try():
    advice = recommend(LLAMA8B, gpu="T4", reshape="heavy", batch_size=8, seq_len=4096)
    assert advice.method is None and not advice.table["chosen"].any()
    assert "Try a bigger GPU" in advice.reasons[-1]
    assert str(advice).startswith("Nothing fits")


def test_numbers_come_from_the_meters():
    from labkit import meters

    table = candidates_table(LLAMA8B, "T4", reshape="moderate", num_tasks=4)
    report = meters.will_it_fit(LLAMA8B, "qlora", "T4", rank=16, batch_size=1, seq_len=512)
    assert table.loc["qlora", "need_gib"] == pytest.approx(report.need_gib)
    assert table.loc["lora", "storage_per_task_bytes"] == 2 * meters.analytic_trainable_params(
        meters.resolve_config(LLAMA8B), "lora", rank=16)  # bf16 adapters on a GPU
    assert table.loc["full", "storage_all_tasks_bytes"] == 4 * table.loc["full", "storage_per_task_bytes"]
    assert table.loc["full", "trainable_pct"] == pytest.approx(100.0)


def test_latency_and_rank_come_from_the_registry():
    table = candidates_table(LLAMA8B, "T4", reshape="light")
    assert table["adds_latency"].to_dict() == {"lora": False, "ia3": False, "prompt": True, "qlora": False,
                                               "dora": False, "adapter": True, "full": False}
    assert table["rank"].dropna().to_dict() == {"lora": 8, "qlora": 8, "dora": 8}  # the methods whose knob is rank


@pytest.mark.parametrize("kwargs, says", [
    ({"num_tasks": 0}, "num_tasks"),
    ({"num_tasks": 2.5}, "num_tasks"),
    ({"reshape": "huge"}, "reshape must be one of"),
    ({"latency": "fast"}, "'relaxed' or 'strict'"),
    ({"gpu": "RTX-9999"}, "Unknown hardware"),
])
def test_bad_input_is_explained(kwargs, says):
    with pytest.raises(LabkitError, match=says):
        recommend(LLAMA8B, **kwargs)


def test_figure_marks_the_recommendation():
    advice = recommend(LLAMA8B, gpu="T4")
    fig = advice_figure(advice.table)
    bar = fig.data[0]
    assert list(bar.x) == list(advice.table.index)
    assert bar.marker.color[list(bar.x).index("qlora")] == "#2a9d8f"


def test_panel_follows_its_controls():
    panel = AdvisorPanel(LLAMA8B, gpu="T4")
    assert panel.advice.method == "qlora"
    assert 'data-method="qlora"' in panel.readout.value
    panel.gpu.value = "L4"
    assert panel.advice.method == "lora" and 'data-method="lora"' in panel.readout.value
    panel.reshape.value = "heavy"
    assert panel.advice.method == "qlora"
    panel.model.value = "HuggingFaceTB/SmolLM2-135M"
    assert panel.advice.method == "full"
    assert list(panel.figure.data[0].y) == pytest.approx(list(panel.advice.table["need_gib"]))
    assert "lk-advisor-table" in panel.table.value
