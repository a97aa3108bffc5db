"""Lab 01d formulations: framing, the runs on the tiny model, and every training path learning on SmolLM2."""

import datasets
import pytest

import labkit as lk
from labkit.chapters.ch01d_tasks.formulations import SETUPS, RunConfig, first_answer_tokens, frame, run_formulation
from labkit.core import LabkitError
from labkit.data import INTENT_LABELS

KNOWN = [label for label in INTENT_LABELS if label != "billing"]


@pytest.fixture(scope="module")
def data():
    intents = lk.load_intents()
    known = intents["train"].filter(lambda row: row["label"] in KNOWN).shuffle(seed=1)
    new = intents["validation"].filter(lambda row: row["label"] == "billing").select(range(2))
    return {"train": known.select(range(8)), "eval": known.select(range(8, 12)), "new": new}


def test_frame_poses_each_formulation():
    rows = datasets.Dataset.from_list([{"text": "Pip is hungry", "label": "feed"}])
    assert frame(rows, "classification", KNOWN)[0] == {"text": "Pip is hungry", "label": "feed"}
    assert frame(rows, "generation", KNOWN)[0] == {"instruction": "Pip is hungry", "answer": "feed"}
    posed = frame(rows, "instruction", ["feed", "heal"])[0]
    assert posed["instruction"].startswith("Classify this help-desk message as one of: feed, heal.")
    assert posed["instruction"].endswith("Message: Pip is hungry") and posed["answer"] == "feed"
    with pytest.raises(LabkitError, match="Unknown formulation 'regression': use one of classification"):
        frame(rows, "regression", KNOWN)
    with pytest.raises(LabkitError, match="needs text/label rows"):
        frame([{"question": "?", "answer": "!"}], "generation", KNOWN)


def test_intent_labels_start_with_distinct_tokens():
    tokenizer = lk.load_model("tiny-llama")[1]
    assert len(set(first_answer_tokens(tokenizer, INTENT_LABELS))) == len(INTENT_LABELS)
    with pytest.raises(LabkitError, match="start with the same token"):
        first_answer_tokens(tokenizer, ["book_flight", "book_hotel"])


@pytest.mark.parametrize("formulation, setup, trainable", [
    ("classification", "probe", 64 * 7 + 7),  # the head on the tiny model's 64-wide hidden state
    ("classification", "lora", 2 * (8 * 64 + 64 * 8 + 8 * 64 + 32 * 8) + 64 * 7 + 7),  # LoRA r=8 on q, v + head
    ("generation", "lora", 2 * (8 * 64 + 64 * 8 + 8 * 64 + 32 * 8)),
    ("instruction", "zero-shot", 0),
    ("instruction", "lora", 2 * (8 * 64 + 64 * 8 + 8 * 64 + 32 * 8)),
])
def test_each_formulation_runs_and_is_measured(data, formulation, setup, trainable, one_thread):
    run = run_formulation(formulation, data["train"], data["eval"], labels=KNOWN, setup=setup,
                          eval_labels=list(INTENT_LABELS), new_label_data=data["new"], new_label="billing",
                          model_name="tiny-llama", num_steps=1, batch_size=4, max_new_tokens=2, progress=False)
    row = run.row
    assert row["trainable_params"] == trainable and row["formulation"] == formulation
    assert row["num_outputs"] == (7 if formulation == "classification" else 8)
    assert len(run.predictions) == len(run.answers) == len(run.references) == 4
    assert 0 <= row["accuracy"] <= 1 and 0 <= row["new_label_recall"] <= 1
    offered = KNOWN if formulation == "classification" else INTENT_LABELS
    assert set(run.predictions) <= set(offered)
    if formulation == "classification":
        assert row["new_label_recall"] == 0.0 and run.answers == run.predictions  # a head cannot say "billing"
    assert (run.result is None) == (setup == "zero-shot")


def test_a_shared_base_is_copied_for_lora_and_shared_by_a_probe(data, one_thread):
    import torch

    base = lk.load_model("tiny-llama")
    before = {name: p.detach().clone() for name, p in base[0].named_parameters()}
    common = {"labels": KNOWN, "num_steps": 2, "batch_size": 4, "max_new_tokens": 2, "progress": False, "base": base}
    lora = run_formulation("generation", data["train"], data["eval"], setup="lora", keep_model=True, **common)
    assert lora.model is not base[0] and not any("lora" in name for name, _ in base[0].named_parameters())
    probe = run_formulation("classification", data["train"], data["eval"], setup="probe", keep_model=True, **common)
    assert probe.model.backbone is base[0]
    assert all(torch.equal(before[name], p) for name, p in base[0].named_parameters())  # neither run changed it


def test_bad_settings_are_explained(data):
    common = {"labels": KNOWN, "model_name": "tiny-llama", "num_steps": 1, "progress": False}
    with pytest.raises(LabkitError, match="Unknown formulation"):
        run_formulation("ranking", data["train"], data["eval"], **common)
    with pytest.raises(LabkitError, match="has no setup 'probe'"):
        run_formulation("instruction", data["train"], data["eval"], setup="probe", **common)
    with pytest.raises(LabkitError, match="together with new_label"):
        run_formulation("generation", data["train"], data["eval"], new_label_data=data["new"], **common)
    with pytest.raises(LabkitError, match="must be one of eval_labels"):
        run_formulation("generation", data["train"], data["eval"], new_label_data=data["new"], new_label="billing",
                        **common)
    with pytest.raises(LabkitError, match="a head has no prompt"):
        run_formulation("classification", data["train"], data["eval"], answer_only=False, **common)
    with pytest.raises(LabkitError, match="takes no loss settings"):
        run_formulation("instruction", data["train"], data["eval"], setup="zero-shot", smoothing=0.1,
                        **common)
    with pytest.raises(LabkitError, match="one weight per class"):
        run_formulation("classification", data["train"], data["eval"], setup="probe",
                        class_weights=[1.0, 2.0], **common)
    with pytest.raises(LabkitError, match="class_weights go with the classification formulation"):
        run_formulation("generation", data["train"], data["eval"], class_weights=[1.0] * 7, **common)
    with pytest.raises(LabkitError, match="has no setting num_step"):
        run_formulation("generation", data["train"], data["eval"], num_step=3, labels=KNOWN)
    with pytest.raises(LabkitError, match="not both"):
        run_formulation("generation", data["train"], data["eval"], labels=KNOWN, config=RunConfig(), num_steps=2)


@pytest.mark.parametrize("kwargs, says", [
    ({"setup": "full"}, "Unknown setup 'full'"), ({"num_steps": 0}, "num_steps must be a positive whole number"),
    ({"batch_size": 2.5}, "batch_size must be"), ({"lr": -1e-3}, "lr must be a positive number"),
    ({"smoothing": 1.0}, "smoothing must be a number from 0"), ({"reduction": "sum"}, "Unknown reduction 'sum'"),
    ({"answer_only": "yes"}, "answer_only must be True or False"),
])
def test_run_config_refuses_bad_settings(kwargs, says):
    with pytest.raises(LabkitError, match=says):
        RunConfig(**kwargs)
    assert RunConfig(smoothing=0.1, reduction="sequence").loss == {"smoothing": 0.1, "reduction": "sequence"}
    assert SETUPS == {"classification": ("probe", "lora"), "generation": ("lora",),
                      "instruction": ("zero-shot", "lora")}


# ---- every training path of the lab learns on the real model --------------------------------------------------------
# One fixed batch (batch_size = the number of training rows, so every step sees the same examples), a few steps, a
# higher learning rate than the lab's; the loss must fall below the stated factor of its first value. Seen on the
# course machine (first -> last loss): probe 2.85 -> 0.07, probe with smoothing and class weights 2.86 -> 0.88,
# LoRA + head 3.01 -> 0.29, generation 9.68 -> 4.37, instruction 2.78 -> 0.19, whole sequence 4.87 -> 3.57 (its
# prompt tokens are most of the loss and are hard to predict, so it falls least).

@pytest.fixture(scope="module")
def smollm2():
    return lk.load_model("smollm2-135m")


@pytest.mark.parametrize("formulation, setup, kwargs, steps, factor", [
    ("classification", "probe", {}, 6, 0.2),
    ("classification", "probe", {"smoothing": 0.1, "class_weights": [1, 2, 1, 1, 1, 2, 1]}, 6, 0.5),
    ("classification", "lora", {"batch_size": 2}, 3, 0.3),
    ("generation", "lora", {"batch_size": 2}, 3, 0.7),
    ("instruction", "lora", {"batch_size": 2}, 3, 0.3),
    ("instruction", "lora", {"batch_size": 2, "answer_only": False}, 3, 0.85),
])
def test_training_path_learns_on_smollm2(data, smollm2, formulation, setup, kwargs, steps, factor):
    kwargs = dict(kwargs)
    batch_size = kwargs.pop("batch_size", 8)
    train = data["train"].select(range(batch_size))
    base = {"base": smollm2} if setup == "probe" else {}
    if setup == "probe":  # the lab evaluates probes on the shared backbone before the next probe trains on it
        run_formulation("classification", train, data["eval"], labels=KNOWN, setup="probe", num_steps=1,
                        batch_size=batch_size, progress=False, **base)
    lr = {"probe": 1e-2, "lora": 5e-3}[setup]
    run = run_formulation(formulation, train, data["eval"].select(range(2)), labels=KNOWN, setup=setup,
                          num_steps=steps, batch_size=batch_size, lr=lr, seq_len=160 if formulation != "classification"
                          else 64, max_new_tokens=2, progress=False, **base, **kwargs)
    losses = run.result.history["loss"].tolist()
    assert losses[-1] < factor * losses[0], losses
