"""Lab 01e dynamics without a model: early stopping, steps to target, the range test's pick, cost predictions, the
instruction families and the panel's plan; each with its bad-input error."""

import math

import pandas as pd
import pytest

import labkit as lk
from labkit.chapters.ch01e_baselines import dynamics, instruct, panel

HISTORY = pd.DataFrame({"step": [1, 2, 3, 4, 5, 6], "loss": [3.0, 2.0, 1.5, 1.0, 0.6, 0.4],
                        "tokens": [100, 200, 300, 400, 500, 600], "time_s": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                        "eval_loss": [None, 2.0, None, 1.8, None, 1.9]})


def test_early_stopping():
    assert dynamics.early_stopping(HISTORY, patience=1) == {"best_step": 4, "best_eval_loss": 1.8, "stop_step": 6,
                                                            "final_eval_loss": 1.9}
    assert dynamics.early_stopping(HISTORY)["stop_step"] is None
    row = dynamics.overfit_row("run", type("R", (), {"history": HISTORY})())
    assert row["overfit_gap"] == pytest.approx(0.1) and row["best_step"] == 4


@pytest.mark.parametrize("call, says", [
    (lambda: dynamics.early_stopping(HISTORY.drop(columns="eval_loss")), "No validation losses"),
    (lambda: dynamics.early_stopping(HISTORY, patience=0), "patience"),
    (lambda: dynamics.curves(pd.DataFrame({"step": [1]})), "'loss' column"),
    (lambda: dynamics.suggest_lr(pd.DataFrame({"lr": [], "smooth": []})), "empty"),
    (lambda: dynamics.lr_range_test(None, [], lr_min=1e-2, lr_max=1e-3), "lr_min < lr_max"),
    (lambda: dynamics.lr_range_test(None, [], num_steps=1), "2 or more"),
    (lambda: instruct.family_split([{"family": "arithmetic"}], "poetry"), "no task family 'poetry'"),
    (lambda: instruct.per_family([{"family": "arithmetic"}], 0), "rows per family"),
    (lambda: panel.plan(data_size=0, epochs=1, batch_size=4, tokens_per_example=10), "data_size"),
    (lambda: panel.plan(data_size=4, epochs=0, batch_size=4, tokens_per_example=10), "epochs"),
])
def test_bad_input_is_explained(call, says):
    with pytest.raises(lk.LabkitError, match=says):
        call()


def test_steps_and_time_to_target():
    # smoothed (pandas ewm, alpha 0.3, bias-corrected): 3.0, 2.412, 1.995, 1.602, 1.241, 0.955
    assert dynamics.steps_to_target(HISTORY, 2.0) == 3
    assert dynamics.at_target(HISTORY, 1.3) == {"steps_to_target": 5.0, "tokens_to_target": 500.0,
                                                "time_to_target_s": 5.0}
    assert math.isnan(dynamics.steps_to_target(HISTORY, 0.1))


def test_range_test_pick():
    table = pd.DataFrame({"lr": [1e-4, 1e-3, 1e-2, 1e-1], "smooth": [3.0, 2.0, 1.5, 4.0]})
    assert dynamics.suggest_lr(table) == pytest.approx(1e-3)


def test_predicted_time_uses_the_meters():
    config = lk.meters.resolve_config("smollm2-135m")
    pred = dynamics.predicted_time(config, 1000, 250.0, trainable_params=10_000)
    assert pred["predicted_here_s"] == pytest.approx(4.0)
    assert 0 < pred["predicted_A100-80GB_s"] < 1 and pred["cost_A100-80GB_usd"] > 0
    assert dynamics.lora_trainable_params(config) == lk.meters.analytic_trainable_params(
        config, "lora", rank=8, target_modules=["q_proj", "v_proj"])


def test_families_and_mixes():
    rows = [{"instruction": f"q{i}", "answer": "a", "family": f} for f in ("string", "arithmetic") for i in range(5)]
    assert instruct.families(rows) == ["arithmetic", "string"]  # the kit's order
    rest, held = instruct.family_split(rows, "string")
    assert {r["family"] for r in rest} == {"arithmetic"} and len(held) == 5
    assert [r["family"] for r in instruct.mix(rows, 4)].count("string") == 2
    assert len(instruct.per_family(rows, 2)) == 4


def test_plan():
    assert panel.plan(data_size=10, epochs=2, batch_size=4, tokens_per_example=50) == {"num_steps": 5, "tokens": 1000}
