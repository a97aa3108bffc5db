"""The cheap-first ladder: walking measured results, the widget, and the classifier runs behind it."""

import datasets
import pandas as pd
import pytest
import torch

from labkit import LabkitError
from labkit.chapters.ch01c_transfer.ladder import ladder_widget, recommendation, run_classifier, walk_ladder

RESULTS = pd.DataFrame([
    # rung, data_size, trainable_params, train_time_s, test_accuracy, shift_accuracy
    ("probe", 50, 4_616, 0.1, 0.70, 0.40),
    ("lora", 50, 465_000, 10.0, 0.80, 0.50),
    ("partial", 50, 20_000_000, 20.0, 0.81, 0.45),
    ("full", 50, 134_000_000, 40.0, 0.90, 0.60),
    ("probe", 200, 4_616, 0.2, 0.95, 0.50),
    ("full", 200, 134_000_000, 40.0, 0.96, 0.70),
    ("lora", 200, 465_000, 10.0, 0.95, 0.55),
], columns=["rung", "data_size", "trainable_params", "train_time_s", "test_accuracy", "shift_accuracy"])


def test_walk_stops_at_the_first_rung_close_enough_to_the_best():
    walk = walk_ladder(RESULTS, 50)
    assert list(walk["rung"]) == ["probe", "lora", "partial", "full"]
    assert list(walk["verdict"]) == ["climb", "climb", "climb", "stop here"]
    walk = walk_ladder(RESULTS, 50, tolerance=0.10)
    assert list(walk["verdict"]) == ["climb", "stop here", "not needed", "not needed"]
    walk = walk_ladder(RESULTS, 200)  # rows in any order come back cheapest first; a missing rung is skipped
    assert list(walk["rung"]) == ["probe", "lora", "full"]
    assert list(walk["verdict"]) == ["stop here", "not needed", "not needed"]
    assert list(walk_ladder(RESULTS, 200, eval_set="shift")["verdict"]) == ["climb", "climb", "stop here"]


def test_recommendation_names_the_rung_and_its_share_of_parameters():
    text = recommendation(walk_ladder(RESULTS, 50, tolerance=0.10))
    assert text.startswith("Stop at lora: accuracy 0.800")
    assert "465,000 trainable" in text and "0.347%" in text


@pytest.mark.parametrize("kwargs, says", [
    ({"data_size": 100}, "measured sizes are \\[50, 200\\]"),
    ({"data_size": 50, "eval_set": "valid"}, "one of \\['test', 'shift'\\]"),
    ({"data_size": 50, "tolerance": 2}, "between 0 and 1"),
])
def test_walk_refuses_bad_choices(kwargs, says):
    with pytest.raises(LabkitError, match=says):
        walk_ladder(RESULTS, **kwargs)


def test_walk_refuses_a_table_without_the_columns():
    with pytest.raises(LabkitError, match="missing \\['train_time_s'\\]"):
        walk_ladder(RESULTS.drop(columns="train_time_s"), 50)


def test_widget_follows_its_controls():
    panel = ladder_widget(RESULTS, eval_labels={"test": "in-domain test", "shift": "domain shift"})
    assert panel.data_size.value == 200 and "Stop at probe" in panel.message.value
    panel.eval_set.value = "shift"
    assert "Stop at full" in panel.message.value
    panel.data_size.value = 50
    panel.tolerance.value = 0.15
    assert "Stop at lora" in panel.message.value
    assert panel.figure.data[0].marker.color[1] == "#2a9d8f"  # the stopping bar is highlighted
    assert "lk-ladder" in panel.table.value
    assert "application/vnd.jupyter.widget-view+json" in panel._repr_mimebundle_()


# ---- runs on the tiny model -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def intents():
    torch.set_num_threads(1)
    rows = [{"text": f"my dragon {w} needs food", "label": "feed"} for w in ("Pip", "Ash", "Moss", "Ember")]
    rows += [{"text": f"please book {w} a flight", "label": "book_flight"} for w in ("Pip", "Ash", "Moss", "Ember")]
    return datasets.Dataset.from_list(rows)


@pytest.mark.parametrize("setup, kwargs, trainable", [
    ("full", {}, 3_219_776 + 520),  # the tiny model (tied head counted once) + the 64 x 8 + 8 head
    ("partial", {"freeze_k": 2}, 64 + 520),  # final norm + head
    ("lora", {"lora_layers": [1], "rank": 2}, (2 * 64 + 64 * 2) + (2 * 64 + 32 * 2) + 520),  # q, v of block 1 + head
])
def test_run_classifier_measures_each_setup(intents, setup, kwargs, trainable):
    run = run_classifier(setup, intents, {"test": intents}, model_name="tiny-llama", num_steps=2, batch_size=4,
                         progress=False, keep_model=True, **kwargs)
    row = run.row
    assert row["trainable_params"] == trainable
    assert row["train_size"] == 8 and row["setup"] == setup and 0 <= row["test_accuracy"] <= 1
    assert row["time_per_step_s"] > 0 and run.result.num_steps == 2 and run.model is not None


def test_run_classifier_refuses_mixed_up_settings(intents):
    with pytest.raises(LabkitError, match="Unknown setup"):
        run_classifier("probe", intents, {}, model_name="tiny-llama")
    with pytest.raises(LabkitError, match="freeze_k goes with"):
        run_classifier("partial", intents, {}, model_name="tiny-llama")
    with pytest.raises(LabkitError, match="freeze_k goes with"):
        run_classifier("full", intents, {}, model_name="tiny-llama", freeze_k=1)
    with pytest.raises(LabkitError, match="lora_layers goes with"):
        run_classifier("full", intents, {}, model_name="tiny-llama", lora_layers=[0])


# ---- building the results table -------------------------------------------------------------------------------------

def test_probe_rung_fits_on_the_first_examples_and_scores_every_other_set():
    import numpy as np

    from labkit.chapters.ch01c_transfer.ladder import ladder_table, probe_rung

    rng = np.random.default_rng(0)
    y = ["a", "b"] * 20
    x = rng.normal(size=(2, 40, 3))
    x[1, :, 0] += 8 * (np.array(y) == "a")
    feats = {"train": x, "validation": x[:, :10]}
    labels = {"train": y, "validation": y[:10]}
    row = probe_rung(feats, labels, layer=1, size=20, feature_time_s=4.0)
    assert row["rung"] == "probe" and row["data_size"] == 20 and row["trainable_params"] == 3 + 1  # binary: one row
    assert row["validation_accuracy"] == 1.0 and row["train_time_s"] >= 2.0  # half of the 40 messages' 4 s
    with pytest.raises(LabkitError, match="between 1 and the 40"):
        probe_rung(feats, labels, layer=1, size=41, feature_time_s=4.0)
    table = ladder_table([{**row, "rung": "full"}, row])
    assert list(table["rung"]) == ["probe", "full"]
    assert list(table.columns) == ["rung", "data_size", "trainable_params", "train_time_s", "validation_accuracy"]


def test_rung_row_refuses_an_unknown_rung():
    from labkit.chapters.ch01c_transfer.ladder import rung_row

    with pytest.raises(LabkitError, match="Unknown rung"):
        rung_row("adapters", 50, None)


def test_run_classifier_puts_lora_on_the_named_modules_of_every_block(intents):
    run = run_classifier("lora", intents, {}, model_name="tiny-llama", num_steps=1, batch_size=4, progress=False,
                         rank=2, target_modules=["o_proj"], keep_model=True)
    names = {n for n, p in run.model.named_parameters() if p.requires_grad}
    assert len(names) == 2 * 2 + 2 and all("o_proj" in n or n.startswith("head.") for n in names)
    assert run.row["trainable_params"] == 2 * (2 * 64 + 64 * 2) + 520


def test_run_classifier_repeats_with_the_same_seed(intents):
    def loss(seed):
        return run_classifier("partial", intents, {}, model_name="tiny-llama", freeze_k=2, num_steps=1, batch_size=4,
                              progress=False, seed=seed).row["final_loss"]

    assert loss(0) == loss(0) != loss(1)
