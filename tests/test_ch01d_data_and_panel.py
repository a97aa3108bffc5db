"""Lab 01d data characteristics and the formulation panel: hard-coded counts, the panel driven from code."""

from types import SimpleNamespace

import datasets
import pytest

from labkit.chapters.ch01d_tasks import datastats
from labkit.chapters.ch01d_tasks.panel import formulation_panel, rank_runs
from labkit.core import LabkitError
from labkit.models import load_model


@pytest.fixture(scope="module")
def tokenizer():
    return load_model("tiny-llama")[1]  # the real SmolLM2 tokenizer


def test_length_table_counts_what_seq_len_cuts(tokenizer):
    texts = ["one two three", "one two three four five six seven eight"]
    data = datasets.Dataset.from_list([{"text": t, "label": "feed"} for t in texts])
    lengths = [len(tokenizer(t)["input_ids"]) for t in texts]
    table, found = datastats.length_table(tokenizer, {"train": data}, "classification", seq_len=lengths[0],
                                          labels=["feed"])
    row = table.iloc[0]
    assert found["train"] == lengths and row["max_tokens"] == lengths[1]
    assert row["truncated_pct"] == 50.0
    assert row["tokens_lost_pct"] == pytest.approx(100 * (lengths[1] - lengths[0]) / sum(lengths))
    sft, _ = datastats.length_table(tokenizer, {"train": data}, "instruction", seq_len=10_000, labels=["feed"])
    assert sft.iloc[0]["mean_tokens"] > row["mean_tokens"] + 20  # the chat template and the label list cost tokens
    with pytest.raises(LabkitError, match="seq_len must be a positive whole number"):
        datastats.length_table(tokenizer, {"train": data}, "classification", seq_len=0, labels=["feed"])
    with pytest.raises(LabkitError, match="Unknown formulation 'regression'"):
        datastats.length_table(tokenizer, {"train": data}, "regression", seq_len=8, labels=["feed"])


def test_label_balance_and_the_imbalanced_subsample():
    table = datastats.label_balance(["a", "a", "a", "b"], ["a", "b", "c"])
    assert list(table["count"]) == [3, 1, 0] and table.attrs["imbalance_ratio"] == float("inf")
    assert datastats.label_balance(["a", "a", "b"]).attrs["imbalance_ratio"] == 2.0
    data = datasets.Dataset.from_list([{"text": f"{label} {i}", "label": label} for label in "abcd" for i in range(20)])
    sub = datastats.imbalanced_subsample(data, minority=["a"], size=40, minority_share=0.1)
    counts = datastats.label_balance(sub["label"], list("abcd")).set_index("label")["count"]
    assert counts.to_dict() == {"a": 4, "b": 12, "c": 12, "d": 12}
    with pytest.raises(LabkitError, match="minority must name some"):
        datastats.imbalanced_subsample(data, minority=["z"], size=40, minority_share=0.1)
    with pytest.raises(LabkitError, match="minority_share must be between 0 and 1"):
        datastats.imbalanced_subsample(data, minority=["a"], size=40, minority_share=1.5)


def test_duplicates_and_vocabulary(tokenizer):
    rates = datastats.duplicate_rates(["Feed Pip!", "feed pip", "Heal Ash"], {"test": ["HEAL ash.", "new"]})
    assert rates == {"train_duplicates_pct": pytest.approx(100 / 3), "test_in_train_pct": 50.0}
    summary, table = datastats.vocab_coverage(tokenizer, ["the dragon Quillothrax", "the dragon"])
    assert summary["words"] == 5 and summary["distinct_words"] == 3
    assert table.iloc[0]["word"] == "Quillothrax" and table.iloc[0]["tokens"] >= 3
    assert summary["split_3plus_pct"] == pytest.approx(100 / 3)


def _run(label, formulation, loss, predictions, answers, references):
    return SimpleNamespace(row={"label": label, "formulation": formulation, "loss": loss}, predictions=predictions,
                           answers=answers, references=references)


REFS = ["feed", "feed", "feed", "heal"]
RUNS = [
    _run("head", "classification", "CE", ["feed"] * 4, ["feed"] * 4, REFS),  # acc 0.75, ignores heal
    _run("chatty", "instruction", "CE", ["feed", "feed", "heal", "heal"],
         ["It is feed.", "feed, surely", "heal", "heal"], REFS),  # acc 0.75, exact match 0.5, contains 0.75
    _run("weighted", "classification", "CE + class weights", ["feed", "heal", "feed", "heal"],
         ["feed", "heal", "feed", "heal"], REFS),  # acc 0.75, macro-F1 higher than the head's
]


def test_rank_runs_rescore_the_stored_predictions():
    by_f1 = rank_runs(RUNS, "macro_f1", labels=["feed", "heal"])
    assert list(by_f1["run"])[-1] == "head" and by_f1["rank"].tolist() == [1, 1, 3]
    by_em = rank_runs(RUNS, "exact_match", labels=["feed", "heal"])
    assert by_em.set_index("run")["score"].to_dict() == {"head": 0.75, "weighted": 0.75, "chatty": 0.25}
    assert by_em.set_index("run").loc["chatty", "moved"] == -2  # tied first by accuracy, last by exact match
    only = rank_runs(RUNS, "accuracy", labels=["feed", "heal"], formulation="classification", loss="CE")
    assert list(only["run"]) == ["head"]
    with pytest.raises(LabkitError, match="Unknown panel metric 'bleu'"):
        rank_runs(RUNS, "bleu", labels=["feed", "heal"])
    with pytest.raises(LabkitError, match="Unknown formulation"):
        rank_runs(RUNS, "accuracy", labels=["feed", "heal"], formulation="regression")


def test_panel_follows_its_controls():
    panel = formulation_panel(RUNS, labels=["feed", "heal"])
    assert "the same order as accuracy" in panel.message.value
    panel.metric.value = "exact_match"
    assert "accuracy orders them" in panel.message.value and panel.table.iloc[-1]["run"] == "chatty"
    assert len(panel.figure.data[0].y) == 3
    panel.formulation.value = "instruction"
    assert list(panel.table["run"]) == ["chatty"] and len(panel.figure.data[0].y) == 1
    panel.loss.value = "CE + class weights"
    assert panel.table.empty and "No run matches" in panel.message.value
    assert "application/vnd.jupyter.widget-view+json" in panel._repr_mimebundle_()
    with pytest.raises(LabkitError, match="No runs"):
        formulation_panel([], labels=["feed"])


def test_empty_input_is_explained(tokenizer):
    with pytest.raises(LabkitError, match="No labels to count"):
        datastats.label_balance([])
    with pytest.raises(LabkitError, match="No words found"):
        datastats.vocab_coverage(tokenizer, ["123 !!"])
    with pytest.raises(LabkitError, match="No training texts"):
        datastats.duplicate_rates([])
