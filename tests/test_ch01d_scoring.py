"""Lab 01d metrics: one entry point that refuses the wrong kind of predictions, and the planted pairs."""

import math

import pytest

from labkit.chapters.ch01d_tasks import scoring
from labkit.core import LabkitError


def test_score_each_kind():
    assert scoring.score("accuracy", ["feed", "heal"], ["feed", "feed"], labels=["feed", "heal"]) == 0.5
    assert scoring.score("macro_f1", ["feed"] * 4, ["feed"] * 3 + ["heal"], labels=["feed", "heal"]) == \
        pytest.approx((6 / 7) / 2)  # feed: P 3/4, R 1 -> 6/7; heal: 0
    assert scoring.score("exact_match", ["Feed", "feed."], ["feed", "feed"]) == 0.5  # case ignored, not punctuation
    assert scoring.score("contains", ["I think: feed.", "heal"], ["feed", "feed"]) == 0.5
    assert scoring.score("token_f1", ["the answer is 42"], ["42"]) == pytest.approx(0.5)
    assert scoring.score("rouge_l", ["a b c"], ["a c"]) == pytest.approx(0.8)  # LCS 2: 2 * 2 / (3 + 2)
    assert scoring.score("bleu", ["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(1.0)
    assert scoring.score("perplexity", [[math.log(2)] * 3, [math.log(8)]]) == pytest.approx(2 ** 1.5)


@pytest.mark.parametrize("metric, predictions, labels, says", [
    ("macro_f1", ["The intent is feed.", "feed"], ["feed", "heal"], "not among the labels"),
    ("accuracy", ["feed", "heal"], None, "pass labels="),
    ("bleu", [0, 1], None, "compares text, but a prediction is a int"),
    ("token_f1", [0.5, "x"], None, "compares text"),
    ("perplexity", ["feed", "heal"], None, "per-token losses"),
    ("meteor", ["feed", "heal"], None, "Unknown metric 'meteor'"),
])
def test_the_wrong_kind_of_predictions_is_refused(metric, predictions, labels, says):
    with pytest.raises(LabkitError, match=says):
        scoring.score(metric, predictions, ["feed", "heal"], labels=labels)


def test_lengths_must_match():
    with pytest.raises(LabkitError, match="2 predictions but 1 references"):
        scoring.score("exact_match", ["a", "b"], ["a"])


def test_every_planted_pair_fools_its_metric_and_not_the_right_one():
    table = scoring.pair_table(scoring.planted_pairs())
    assert (table["fooled_prefers"] == "A").all() and (table["right_prefers"] == "B").all()
    assert set(table["fooled"]) == set(scoring.METRICS) - {"macro_f1"}  # every metric but macro-F1 is fooled once
    rare = table.set_index("pair").loc["rare class ignored"]
    assert (rare["fooled_a"], rare["fooled_b"]) == pytest.approx((0.9, 0.85))  # 18/20 vs 17/20
    assert rare["right_a"] == pytest.approx(18 / 19 / 2)  # feed F1 = 2 * 18 / (2 * 18 + 2) = 18/19; billing 0
    fluent = table.set_index("pair").loc["fluent but wrong"]
    assert fluent["fooled_a"] == pytest.approx(math.exp((30 * 0.1 + 3.0) / 31))


def test_metric_grid_marks_what_does_not_apply():
    grid = scoring.metric_grid(scoring.planted_pairs(n=4))
    assert grid.loc["chatty but right", "accuracy"] == "-" and grid.loc["fluent but wrong", "bleu"] == "-"
    assert grid.loc["rare class ignored", "macro_f1"] == "B"


def test_prefers_knows_that_lower_perplexity_is_better():
    assert scoring.prefers("perplexity", 2.0, 3.0) == "A" and scoring.prefers("accuracy", 2.0, 3.0) == "B"
    assert scoring.prefers("bleu", 0.5, 0.5) == "tie"


def test_token_losses_split_prompt_and_answer():
    from labkit.models import load_model

    model, tokenizer = load_model("tiny-llama")
    posed = [{"instruction": "Say feed", "answer": "feed"}, {"instruction": "Say heal now", "answer": "heal"}]
    found = scoring.token_losses(model, tokenizer, posed)
    from labkit.batches import tokenize

    examples = tokenize(posed, tokenizer, "sft", seq_len=160)
    answers = sum(sum(1 for t in ex["labels"] if t != -100) for ex in examples)
    assert len(found["answer"]) == answers
    assert len(found["prompt"]) + answers == sum(len(ex["input_ids"]) - 1 for ex in examples)
    ppl = scoring.perplexities(model, tokenizer, posed)
    assert ppl["answer"] == pytest.approx(math.exp(sum(found["answer"]) / answers), rel=1e-6)
