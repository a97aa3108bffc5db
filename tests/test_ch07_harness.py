"""Lab 07's lm-eval tasks: written from the kit's data, run offline with simple_evaluate on an in-memory model and
on a LoRA adapter folder (peft=), and compared item by item with the kit's own scoring."""

import numpy as np
import pytest

from labkit.chapters.ch07_evaluation import harness, scoring
from labkit.core import LabkitError


@pytest.fixture(scope="module")
def tiny(one_thread):
    import labkit as lk

    return lk.load_model("tiny-llama")


def test_write_tasks(tmp_path):
    import yaml

    folder = harness.write_tasks(tmp_path)
    for task in harness.TASKS:
        config = yaml.safe_load((folder / f"{task}.yaml").read_text())
        assert config["task"] == task and config["dataset_path"] == "json"
        assert (folder / f"{task}.jsonl").is_file()
    first = harness.task_rows("lab07_intents")[0]
    assert first["choices"][first["target"]] in first["choices"] and "Message:" in first["prompt"]
    assert len(harness.task_rows("lab07_probe")) == 118


def test_unwritable_task_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(LabkitError, match="Cannot write"):
        harness.write_tasks(blocker / "tasks")


def test_lm_eval_runs_offline_on_the_kit_tasks_and_on_a_lora_folder(tiny, tmp_path):
    import labkit as lk

    model, tokenizer = tiny
    run = harness.run_harness(model, tokenizer, list(harness.TASKS), limit=2, folder=tmp_path / "tasks")
    assert set(run.scores["task"]) == set(harness.TASKS) and (run.scores["n"] == 2).all()
    assert run.scores["value"].between(0, 1).all()
    intents = run.samples["lab07_intents"]
    assert list(intents["doc_id"]) == [0, 1] and set(intents.columns) >= {"prediction", "correct", "correct_norm"}
    table = harness.with_intervals(run)
    assert (table["low"] <= table["value"]).all() and (table["value"] <= table["high"]).all()
    kit_table, kit_score = scoring.kit_scores(model, tokenizer, "lab07_intents", limit=2)
    both = scoring.compare_items(kit_table, intents)
    assert len(both) == 2 and both["target"].tolist() == intents["target"].tolist()
    assert kit_score == kit_table["correct"].mean()

    base_dir, adapter_dir = tmp_path / "base", tmp_path / "adapter"
    fresh, _ = lk.load_model("tiny-llama")
    fresh.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    lora = lk.apply_method(fresh, "lora", rank=4)
    lora.save_pretrained(adapter_dir)
    peft_run = harness.run_harness(pretrained=str(base_dir), peft=str(adapter_dir), tasks="lab07_intents", limit=2,
                                   folder=tmp_path / "tasks")
    assert peft_run.samples["lab07_intents"]["doc_id"].tolist() == [0, 1]


@pytest.mark.parametrize("kwargs", [
    {"tasks": ["lab07_unknown"]},
    {"tasks": []},
    {"limit": 0},
    {"limit": 2.5},
    {"pretrained": "somewhere"},  # and a model: give one or the other
    {"model": None, "pretrained": None},
    {"tokenizer": None},
])
def test_run_harness_rejects_bad_input(tiny, kwargs):
    model, tokenizer = tiny
    call = {"model": model, "tokenizer": tokenizer, "tasks": ["lab07_intents"], **kwargs}
    with pytest.raises(LabkitError):
        harness.run_harness(**call)


def test_peft_folder_without_adapter(tmp_path):
    with pytest.raises(LabkitError, match="adapter"):
        harness.run_harness(pretrained=str(tmp_path), peft=str(tmp_path), tasks="lab07_intents")


def test_kit_scores_and_compare_reject_bad_input(tiny):
    import pandas as pd

    model, tokenizer = tiny
    with pytest.raises(LabkitError):
        scoring.kit_scores(model, tokenizer, "nope")
    a = pd.DataFrame({"doc_id": [0, 1], "target": ["x", "y"], "prediction": ["x", "z"], "correct": [True, False]})
    with pytest.raises(LabkitError, match="different items"):
        scoring.compare_items(a, a.iloc[[1, 0]])
    with pytest.raises(LabkitError):
        scoring.label_logits(model, tokenizer, [])


@pytest.mark.parametrize("n_texts", [1, 5])
def test_label_logits_with_the_shared_prefix_cached_match_full_forward_passes(tiny, n_texts):
    """The prompts' common prefix runs once and its cache is reused; each message's logits must equal a plain
    forward pass of its whole prompt (fp32, different summation order: far below 1e-4)."""
    import torch

    from labkit.batches import prompt_text
    from labkit.data import INTENT_LABELS

    model, tokenizer = tiny
    texts = ["hi", "my dragon ran off last night", "the bill is wrong", "book me a flight to the coast please", "fire"]
    texts = texts[:n_texts]
    got = scoring.label_logits(model, tokenizer, texts, batch_size=2)  # a partial last batch, padding in each
    firsts = scoring.label_first_tokens(tokenizer, INTENT_LABELS)
    for row, text in enumerate(texts):
        prompt = prompt_text(tokenizer, scoring.INTENT_PROMPT.format(labels=", ".join(INTENT_LABELS), text=text))
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            want = model(input_ids=ids).logits[0, -1, firsts].numpy()
        np.testing.assert_allclose(got[row], want, atol=1e-4, rtol=0)
