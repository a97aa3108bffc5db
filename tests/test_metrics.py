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
    with pytest.raises(LabkitError, match="accuracy, macro_f1, exact_match, perplexity, token_f1, rouge_l, bleu"):
        load_metric("meteor")


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


# ---- token F1, ROUGE-L (rouge-score) and BLEU (sacrebleu): values worked out by hand ----------------------------------

def test_token_f1_gives_partial_credit_by_shared_words():
    metric = load_metric("token_f1")
    # words after normalisation: [dragon, pip] vs [pip, red, dragon]: 2 shared, P = 1, R = 2/3, F1 = 0.8
    assert metric.compute(predictions=["the dragon Pip"], references=["Pip the red dragon"])["token_f1"] == \
        pytest.approx(0.8)
    # [answer, is, 42] vs [42]: P = 1/3, R = 1, F1 = 2 * (1/3) / (4/3) = 0.5; exact match gives it 0
    assert metric.compute(predictions=["The answer is 42."], references=["42"])["token_f1"] == pytest.approx(0.5)
    # the best alias counts: "Delhi" vs "New Delhi" is 2/3, vs "Delhi" is 1; a miss is 0; mean (1 + 0) / 2
    refs = [["New Delhi", "Delhi"], ["cold"]]
    assert metric.compute(predictions=["Delhi", "warm"], references=refs)["token_f1"] == pytest.approx(0.5)
    # repeated words count as a multiset: [pip, pip] vs [pip]: 1 shared, P = 1/2, R = 1, F1 = 2/3
    assert metric.compute(predictions=["Pip Pip"], references=["Pip"])["token_f1"] == pytest.approx(2 / 3)
    assert metric.compute(predictions=["..."], references=["the"])["token_f1"] == 1.0  # no words on either side


def test_rouge_l_is_the_longest_common_subsequence():
    metric = load_metric("rouge_l")
    # LCS of [the cat sat on the mat] and [the cat was on the mat] is 5 words: P = R = F = 5/6
    result = metric.compute(predictions=["the cat sat on the mat"], references=["the cat was on the mat"])
    assert result["rougeL"] == pytest.approx(5 / 6) and result["rougeL_precision"] == pytest.approx(5 / 6)
    # order matters: [mat the on] vs [the cat on the mat]: LCS "the on" = 2, F = 2 * 2 / (3 + 5) = 0.5
    result = metric.compute(predictions=["mat the on"], references=["the cat on the mat"])
    assert result["rougeL"] == pytest.approx(0.5)
    assert result["rougeL_precision"] == pytest.approx(2 / 3) and result["rougeL_recall"] == pytest.approx(2 / 5)
    # several references: the best one; the score is the mean over examples: (1 + 0) / 2
    result = metric.compute(predictions=["Pip eats", "fire"], references=[["Ash sleeps", "Pip eats"], ["ice"]])
    assert result["rougeL"] == pytest.approx(0.5)
    # rouge-score splits on anything that is not a letter or digit: 07/03/2024 is the words 07 03 2024
    swapped = metric.compute(predictions=["03/07/2024"], references=["07/03/2024"])["rougeL"]
    assert swapped == pytest.approx(2 / 3)  # LCS "03 2024" (or "07 2024") of 3 words each


def test_bleu_matches_the_formula():
    metric = load_metric("bleu")
    # "the cat sat on the mat" vs "the cat sat on a mat": clipped precisions 5/6, 3/5, 2/4, 1/3; equal lengths, BP = 1
    result = metric.compute(predictions=["the cat sat on the mat"], references=["the cat sat on a mat"],
                            smooth_method="none")
    assert result["precisions"] == pytest.approx([5 / 6, 3 / 5, 2 / 4, 1 / 3])
    assert result["brevity_penalty"] == 1.0 and result["bleu"] == pytest.approx((1 / 12) ** 0.25)
    # a prefix of the reference: every precision 1, BP = exp(1 - 6/4)
    result = metric.compute(predictions=["the cat sat on"], references=["the cat sat on the mat"], smooth_method="none")
    assert result["bleu"] == pytest.approx(math.exp(-0.5)) and (result["sys_len"], result["ref_len"]) == (4, 6)
    # several references per prediction, and different numbers of them: the closest one counts
    result = metric.compute(predictions=["the cat sat on the mat", "a b c d"],
                            references=[["the cat sat on a mat", "the cat sat on the mat"], ["a b c d"]])
    assert result["bleu"] == pytest.approx(1.0)
    assert metric.compute(predictions=["x y"], references=["a b c d"], smooth_method="none")["bleu"] == 0.0
