"""The kit's local evaluate metrics: hard-coded values, wrong answers score lower, bad input is refused."""

from __future__ import annotations

import math

import pytest

from labkit.core import LabkitError
from labkit.metrics import METRIC_NAMES, load_metric


@pytest.fixture(scope="module", params=METRIC_NAMES)
def any_metric(request):
    return load_metric(request.param)


def test_every_metric_loads_offline(any_metric, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert any_metric.name in METRIC_NAMES


def test_unknown_metric_lists_the_names():
    with pytest.raises(LabkitError, match="accuracy, macro_f1, exact_match, perplexity"):
        load_metric("bleu")


def test_accuracy_on_ids_and_names():
    metric = load_metric("accuracy")
    assert metric.compute(predictions=[0, 1, 2, 2], references=[0, 1, 2, 1]) == {"accuracy": 0.75}
    assert metric.compute(predictions=["feed", "heal"], references=["feed", "heal"]) == {"accuracy": 1.0}
    assert metric.compute(predictions=["feed", "adopt"], references=["feed", "heal"]) == {"accuracy": 0.5}


def test_macro_f1_punishes_a_missed_class_more_than_accuracy():
    metric = load_metric("macro_f1")
    refs = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    always_zero = [0] * 10
    assert load_metric("accuracy").compute(predictions=always_zero, references=refs)["accuracy"] == 0.8
    assert metric.compute(predictions=always_zero, references=refs)["macro_f1"] == pytest.approx(4 / 9)
    assert metric.compute(predictions=refs, references=refs) == {"macro_f1": 1.0}
    assert metric.compute(predictions=[0, 0, 1, 1], references=[0, 1, 1, 1])["macro_f1"] == pytest.approx(11 / 15)
    with_unseen = metric.compute(predictions=["a", "b"], references=["a", "b"], labels=["a", "b", "c"])
    assert with_unseen["macro_f1"] == pytest.approx(2 / 3)


def test_exact_match_normalisation_and_aliases():
    metric = load_metric("exact_match")
    assert metric.compute(predictions=[" 3000 ", "07/03/2024"], references=["3000", "07/03/2024"]) == {
        "exact_match": 1.0}
    assert metric.compute(predictions=["3000", "03/07/2024"], references=["3000", "07/03/2024"]) == {
        "exact_match": 0.5}
    assert metric.compute(predictions=["paris"], references=["Paris"])["exact_match"] == 0.0
    assert metric.compute(predictions=["paris"], references=["Paris"], ignore_case=True)["exact_match"] == 1.0
    assert metric.compute(predictions=["Paris."], references=["Paris"], ignore_punctuation=True)["exact_match"] == 1.0
    refs = [["8", "eight"], ["New Delhi", "Delhi"], ["cold"]]
    assert metric.compute(predictions=["eight", "Delhi", "warm"], references=refs)["exact_match"] == pytest.approx(2 / 3)


def test_exact_match_contains_needs_whole_words():
    metric = load_metric("exact_match")
    kw = {"ignore_case": True, "ignore_punctuation": True, "contains": True}
    preds = ["The capital of France is Paris.", "12 / 3 = 124", "It is cold outside"]
    refs = [["Paris"], ["4", "four"], ["cold"]]
    assert metric.compute(predictions=preds, references=refs, **kw)["exact_match"] == pytest.approx(2 / 3)
    assert metric.compute(predictions=preds, references=refs)["exact_match"] == 0.0


def test_exact_match_keeps_json_punctuation_by_default():
    metric = load_metric("exact_match")
    answer = '{"age":4,"name":"Pip","species":"Emberwing"}'
    assert metric.compute(predictions=[answer], references=[answer])["exact_match"] == 1.0
    spaced = '{"age": 4, "name": "Pip", "species": "Emberwing"}'
    assert metric.compute(predictions=[spaced], references=[answer])["exact_match"] == 0.0


def test_perplexity_weights_losses_by_tokens():
    metric = load_metric("perplexity")
    result = metric.compute(losses=[2.0, 4.0], num_tokens=[30, 10])
    assert result["mean_loss"] == pytest.approx(2.5) and result["num_tokens"] == 40
    assert result["perplexity"] == pytest.approx(math.exp(2.5))
    unweighted = math.exp(3.0)
    assert result["perplexity"] != pytest.approx(unweighted)
    per_token = metric.compute(losses=[math.log(4)] * 5, num_tokens=[1] * 5)
    assert per_token["perplexity"] == pytest.approx(4.0)


@pytest.mark.parametrize(("losses", "num_tokens"), [([float("nan")], [3]), ([1.0], [0]), ([1.0, 2.0], [5, -1])])
def test_perplexity_rejects_bad_input(losses, num_tokens):
    with pytest.raises(LabkitError):
        load_metric("perplexity").compute(losses=losses, num_tokens=num_tokens)
