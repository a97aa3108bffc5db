"""Lab 04's model paths on the real SmolLM2, after the calls the lab makes first: teacher-forced exact match agrees
with greedy generation, pool scoring gives finite IFD and hidden states, a LoRA run from the shared adapter learns
and leaves the adapter as it found it, and the intent probe learns on the model's features."""

import math

import numpy as np
import pytest
import torch

import labkit as lk
from labkit.chapters.ch04_data_curation import intents as probe_lab
from labkit.chapters.ch04_data_curation import runs, selection
from labkit.core import LabkitError


@pytest.fixture(scope="module")
def smollm():
    return lk.load_model("smollm2-135m")


def test_teacher_forced_exact_match_is_greedy_generation(smollm):
    model, tokenizer = smollm
    question = "What is the capital of France?"
    said = lk.training.generate_answers(model, tokenizer, [question], max_new_tokens=24)[0]
    rows = [{"instruction": question, "answer": said}, {"instruction": question, "answer": said + " Indeed."},
            {"instruction": question, "answer": "Lyon."}]
    scores = runs.answer_scores(model, tokenizer, rows)
    assert scores.exact == [True, False, False], said
    assert scores.loss[0] < scores.loss[2] and len(scores.tokens) == 3
    with pytest.raises(LabkitError, match="'instruction' and 'answer'"):
        runs.answer_scores(model, tokenizer, [{"text": "hi"}])


def test_lora_runs_learn_from_the_same_adapter(smollm):
    import copy

    model, tokenizer = copy.deepcopy(smollm[0]), smollm[1]
    data = lk.load_instructions()["train"].select(range(4))
    pool = data.add_column("id", list(range(4)))
    with pytest.raises(LabkitError, match="apply LoRA first"):
        runs.Runner(torch.nn.Linear(2, 2).requires_grad_(False), tokenizer, num_steps=1, batch_size=4)
    model = lk.apply_method(model, "lora")
    scores = selection.score_pool(model, tokenizer, pool)  # the lab scores the pool before it trains
    assert all(math.isfinite(v) and v > 0 for v in scores.ifd) and scores.hidden.shape == (4, 576)
    before = runs.answer_scores(model, tokenizer, data)
    runner = runs.Runner(model, tokenizer, num_steps=5, batch_size=4)
    row = runner.run(data, eval_sets={"fixed": data}, label="fixed batch")
    start = float(np.mean(before.loss))
    assert row["loss_fixed"] < 0.7 * start, (start, row)  # the answer loss on the batch falls within 5 steps
    again = runs.answer_scores(model, tokenizer, data)  # restored: the adapter is back at its initial state
    assert again.loss == pytest.approx(before.loss, rel=1e-5)


def test_the_intent_probe_learns_on_the_models_features(smollm):
    model, tokenizer = smollm
    intents = lk.load_intents()
    train, test = intents["train"].select(range(64)), intents["test"].select(range(32))
    x_train, x_test = (probe_lab.embed(model, tokenizer, ds["text"]) for ds in (train, test))
    y_train = np.array([lk.data.label2id[label] for label in train["label"]])
    y_test = np.array([lk.data.label2id[label] for label in test["label"]])
    probe = probe_lab.Probe(8).fit(x_train, y_train)
    assert probe.accuracy(x_train, y_train) > 0.95 and probe.accuracy(x_test, y_test) > 0.4  # chance: 0.125
