"""Lab 01e on real models: each training path (lk.train through train_lora, the range test's own loop) learns on
SmolLM2 after the calls the lab makes first; the dynamics panel predicts, trains and draws (tiny model)."""

import pytest

import labkit as lk
from labkit.chapters.ch01e_baselines import baselines, dynamics, instruct
from labkit.chapters.ch01e_baselines.panel import dynamics_panel
from labkit.training import evaluate_loss


@pytest.fixture(scope="module")
def smollm2():
    return lk.load_model("smollm2-135m")


@pytest.fixture(scope="module")
def rows():
    return instruct.per_family(lk.load_instructions()["train"], 1)[:4]  # one fixed batch of four families


def test_train_lora_learns_after_the_labs_calls(smollm2, rows):
    # the lab scores prompts and generates with the base model before it trains a copy
    baselines.few_shot_table(*smollm2, rows, rows[:1], ks=(0, 1), task="instructions", max_new_tokens=4)
    instruct.family_scores(*smollm2, rows[:2], max_new_tokens=4)
    before = evaluate_loss(*smollm2, rows, objective="sft", seq_len=96)["eval_loss"]
    model, result = dynamics.train_lora(smollm2, rows, num_steps=6, batch_size=4, seq_len=96, lr=3e-3, progress=False,
                                        eval_data=rows, eval_every=3)
    after = evaluate_loss(model, smollm2[1], rows, objective="sft", seq_len=96)["eval_loss"]
    assert after < 0.5 * before, (before, after)
    assert evaluate_loss(*smollm2, rows, objective="sft", seq_len=96)["eval_loss"] == pytest.approx(before)  # untouched
    assert dynamics.early_stopping(result.history)["best_step"] in (3, 6)


def test_range_test_learns_on_a_fixed_batch(smollm2, rows):
    table = dynamics.lr_range_test(smollm2, rows, lr_min=1e-3, lr_max=3e-3, num_steps=6, batch_size=4, seq_len=96)
    assert len(table) == 6 and table["lr"].is_monotonic_increasing
    assert table["loss"].iloc[-1] < 0.5 * table["loss"].iloc[0], list(table["loss"])


def test_dynamics_panel_predicts_trains_and_draws(rows, one_thread):
    base = lk.load_model("tiny-llama")
    panel = dynamics_panel(base, rows, rows[:2], tokens_per_s=100.0, trainable_params=1000, batch_size=2, seq_len=96,
                           eval_every=1, max_steps=4)
    panel.data_size.value, panel.epochs.value = 4, 1.0
    first = panel.message.value
    panel.epochs.value = 2.0
    assert "4 steps" in panel.message.value and panel.message.value != first
    row = panel.train()
    assert row["num_steps"] == 4 and row["measured_s"] > 0 and len(panel.figure.data) == 3
    assert len(panel.table()) == 1
    panel.epochs.value = 20.0
    assert "refuses" in panel.message.value
    with pytest.raises(lk.LabkitError, match="over this panel's limit"):
        panel.train()
    with pytest.raises(lk.LabkitError, match="measured positive speed"):
        dynamics_panel(base, rows, rows, tokens_per_s=0, trainable_params=1)
    with pytest.raises(lk.LabkitError, match="training rows and validation rows"):
        dynamics_panel(base, rows, [], tokens_per_s=1.0, trainable_params=1)
