"""Lab 01e baselines: prompts built by the kit, the classical baselines, scoring, and their bad-input errors."""

import pytest

import labkit as lk
from labkit.chapters.ch01e_baselines import baselines

INTENTS = [{"text": "the hay store is on fire", "label": "report_fire"},
           {"text": "fire in the kitchen", "label": "report_fire"},
           {"text": "how much cod for my dragon", "label": "feed"},
           {"text": "what should Pip eat", "label": "feed"},
           {"text": "I was charged twice", "label": "billing"}]
INSTR = [{"instruction": "What is 2 + 3?", "answer": "5", "family": "arithmetic"},
         {"instruction": "What is 4 + 4?", "answer": "8", "family": "arithmetic"},
         {"instruction": "Sort ascending: 3, 1.", "answer": "1, 3", "family": "sort_list"}]


def test_few_shot_prompt_lists_labels_shots_and_query():
    prompt = baselines.few_shot_prompt(INTENTS, "smoke in the barn", 2, task="intents", labels=["feed", "report_fire"])
    assert prompt.startswith("Classify this help-desk message as one of: feed, report_fire.\n\n")
    assert prompt.count("Label: ") == 2 and prompt.endswith("Message: smoke in the barn\nLabel:")
    assert baselines.few_shot_prompt(INTENTS, "x", 0, task="intents", labels=["feed"]).count("Message:") == 1


def test_instruction_shots_come_from_the_same_family():
    query = {"instruction": "What is 1 + 1?", "family": "arithmetic"}
    prompt = baselines.few_shot_prompt(INSTR, query, 2, task="instructions")
    assert "Sort" not in prompt and prompt.count("Answer: ") == 2 and prompt.endswith("Task: What is 1 + 1?\nAnswer:")
    assert baselines.few_shot_prompt(INSTR, query, 0, task="instructions") == "What is 1 + 1?"


def test_shots_are_seeded():
    a = baselines.pick_shots(INTENTS, 3, seed=1)
    assert a == baselines.pick_shots(INTENTS, 3, seed=1) and len(a) == 3


@pytest.mark.parametrize("call, says", [
    (lambda: baselines.pick_shots(INTENTS, 6), "larger than the training set"),
    (lambda: baselines.pick_shots(INSTR, 2, family="sort_list"), "of family 'sort_list'"),
    (lambda: baselines.pick_shots(INTENTS, -1), "0 or more"),
    (lambda: baselines.few_shot_prompt(INTENTS, "x", 1, task="poems"), "Unknown task"),
    (lambda: baselines.knn_predict([[1.0], [0.0]], ["a", "b"], [[1.0]], k=3), "larger than the training set"),
    (lambda: baselines.knn_predict([[1.0], [0.0]], ["a", "b"], [[1.0]], k=0), "positive whole number"),
    (lambda: baselines.majority_predict([], 3, task="intents"), "empty"),
    (lambda: baselines.bow_logreg(INTENTS[:2], INTENTS, task="intents"), "two different labels"),
])
def test_bad_input_is_explained(call, says):
    with pytest.raises(lk.LabkitError, match=says):
        call()


def test_classical_baselines():
    assert baselines.majority_predict(INTENTS, 2, task="intents") in (["report_fire"] * 2, ["feed"] * 2)
    assert set(baselines.random_predict(INTENTS, 50, task="intents")) == {"report_fire", "feed", "billing"}
    preds, _ = baselines.bow_logreg(INTENTS, [{"text": "fire fire", "label": "report_fire"}], task="intents")
    assert preds == ["report_fire"]
    assert baselines.knn_predict([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]], ["a", "b", "a"], [[1.0, 0.05]], k=1) == ["a"]


def test_scores_use_the_kits_metrics():
    assert baselines.accuracy(["a", "b", "b", "c"], ["a", "b", "c", "c"]) == pytest.approx(0.75)
    assert baselines.exact_match([" 5", "8 ", "1,3"], ["5", "8", "1, 3"]) == pytest.approx(2 / 3)
    assert baselines.score("instructions", ["5"], ["5"]) == 1.0


def test_few_shot_table_measures_prompt_length_and_cost(one_thread):
    model, tokenizer = lk.load_model("tiny-llama")
    table = baselines.few_shot_table(model, tokenizer, INTENTS, INTENTS[:2], ks=(0, 2), task="intents")
    assert list(table["k"]) == [0, 2] and table["prompt_tokens"].is_monotonic_increasing
    assert table["gflops_per_query"].iloc[1] > table["gflops_per_query"].iloc[0] > 0
    assert ((table["score"] >= 0) & (table["score"] <= 1)).all()
    assert baselines.embed(model, tokenizer, ["a b", "c"]).shape[0] == 2
