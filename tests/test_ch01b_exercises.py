"""Lab 01b exercises: each passes on its solution, rejects typical mistakes, and says "not attempted" on `...`."""

import re

import pandas as pd
import pytest
import torch

from labkit.chapters.ch01b_pretraining import objectives
from labkit.chapters.ch01b_pretraining.exercises import q1, q2, q3, q4
from labkit.grading import CORRECT, INCORRECT, NOT_ATTEMPTED


def run_solution(exercise, **namespace) -> dict:
    from labkit.chapters.ch01b_pretraining import objectives

    exec(exercise.solution_code, {"lk": __import__("labkit"), "objectives": objectives}, namespace)  # noqa: S102
    return namespace


def assert_not_revealed(message: str, *values) -> None:
    for value in values:
        text = f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
        assert not re.search(rf"(?<![\d.]){re.escape(text)}", message), f"{message!r} reveals {value}"


def curve(points):
    return pd.DataFrame({"tokens": [float(t) for t, _ in points], "eval_loss": [x for _, x in points]})


SCRATCH = curve([(0, 10.8), (40_000, 7.0), (80_000, 5.2), (120_000, 4.4), (160_000, 4.0)])
PRETRAINED = curve([(0, 4.8), (10_000, 2.5), (20_000, 2.0)])  # scratch crosses 4.8 between 80k and 120k (100k)
SCORES = {"before": 0.75, "full": 0.50, "lora": 0.70}  # full drops 25 points, LoRA 5: LoRA forgot 20 fewer


@pytest.mark.parametrize("exercise, context", [(q1, ()), (q3, ()), (q2, (SCRATCH, PRETRAINED)), (q4, (SCORES,))])
def test_placeholders_are_not_attempted(exercise, context):
    assert exercise.evaluate(..., *context).status == NOT_ATTEMPTED


# ---- q1: the label shift -----------------------------------------------------------------------------------------------

def test_q1_passes_on_solution_lists_and_tensors():
    assert q1.evaluate(run_solution(q1)["next_token_pairs"]).status == CORRECT
    as_tensors = lambda ids: (torch.tensor(ids)[:-1], torch.tensor(ids)[1:])
    assert q1.evaluate(as_tensors).status == CORRECT


@pytest.mark.parametrize("wrong, says", [
    (lambda ids: (ids, ids), "copy the current token"),
    (lambda ids: (ids[1:], ids[:-1]), "wrong way"),
    (lambda ids: (ids, ids[1:]), "same length"),
    (lambda ids: (ids[:-1], ids[:-1]), "one position later"),
    (lambda ids: (ids[:-2], ids[2:]), "not right yet"),
    (lambda ids: ids[1:], "two lists"),
    (lambda ids: ids[99], "IndexError"),
])
def test_q1_rejects_typical_mistakes(wrong, says):
    outcome = q1.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message, outcome


def test_q1_placeholders_inside_the_function():
    def raises(ids):
        raise NotImplementedError

    for answer in (lambda ids: ..., raises):
        assert q1.evaluate(answer).status == NOT_ATTEMPTED
    assert "no parentheses" in q1.evaluate(([1], [2])).message


# ---- q3: 6·N·D -------------------------------------------------------------------------------------------------------

def test_q3_passes_on_solution():
    assert q3.evaluate(run_solution(q3)["training_flops"]).status == CORRECT


@pytest.mark.parametrize("wrong, says", [
    (lambda n, d: 2 * n * d, "forward pass only"),
    (lambda n, d: 4 * n * d, "two matmuls per weight"),
    (lambda n, d: 6 * n, "one token"),
    (lambda n, d: n * d, "more than one FLOP"),
    (lambda n, d: 8 * n * d, "not right yet"),
])
def test_q3_rejects_typical_mistakes(wrong, says):
    outcome = q3.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message, outcome


# ---- q2: tokens to match, read off the run's curves -----------------------------------------------------------------

def test_q2_passes_on_solution_and_on_a_reading_from_the_plot():
    ns = run_solution(q2, scratch_curve=SCRATCH, pretrained_curve=PRETRAINED)
    assert ns["tokens_needed"] == pytest.approx(100_000)
    for answer in (ns["tokens_needed"], 85_000, 110_000, 120_000, 80_000):  # anywhere between the measured points
        assert q2.evaluate(answer, SCRATCH, PRETRAINED).status == CORRECT, answer


@pytest.mark.parametrize("answer, says", [
    (40_000, "too early"), (160_000, "too late"), (88, "steps"), (4.8, "loss"), (None, "does cross"),
    ("100k", "number of tokens"),
])
def test_q2_rejects_typical_mistakes_without_revealing(answer, says):
    outcome = q2.evaluate(answer, SCRATCH, PRETRAINED)
    assert outcome.status == INCORRECT and says in outcome.message, outcome
    assert_not_revealed(outcome.message, 100_000, 80_000, 120_000)


def test_q2_when_the_run_never_matches_the_answer_is_none():
    short = curve([(0, 10.8), (40_000, 7.0), (80_000, 5.2)])
    assert q2.evaluate(None, short, PRETRAINED).status == CORRECT
    assert run_solution(q2, scratch_curve=short, pretrained_curve=PRETRAINED)["tokens_needed"] is None
    outcome = q2.evaluate(80_000, short, PRETRAINED)
    assert outcome.status == INCORRECT and "answer None" in outcome.message


def test_q2_checks_against_the_kits_analysis_of_the_same_curves():
    other = curve([(0, 3.0), (10_000, 2.0)])  # another pretrained start: the answer moves with the run
    assert objectives.tokens_to_match(SCRATCH, other).reached is False
    assert q2.evaluate(100_000, SCRATCH, other).status == INCORRECT


# ---- q4: forgetting ---------------------------------------------------------------------------------------------------

def test_q4_passes_on_solution_for_each_outcome():
    for scores in (SCORES, {"before": 0.7, "full": 0.68, "lora": 0.5}, {"before": 0.7, "full": 0.6, "lora": 0.6}):
        ns = run_solution(q4, scores=scores)
        assert q4.evaluate((ns["forgot_less"], ns["by_points"]), scores).status == CORRECT, scores
    assert q4.evaluate(["LoRA ", 20], SCORES).status == CORRECT


@pytest.mark.parametrize("answer, says", [
    (("full", 20.0), "compare the drops"),
    (("tie", 0.0), "compare the drops"),
    (("lora", 0.2), "percentage points"),
    (("lora", 25.0), "one method's drop"),
    (("lora", 5.0), "one method's drop"),
    (("lora", 12.0), "not right yet"),
    (("adapter", 20.0), "'full', 'lora' or 'tie'"),
    (("lora", "twenty"), "should be a number"),
    ("lora", "pair"),
])
def test_q4_rejects_typical_mistakes_without_revealing(answer, says):
    outcome = q4.evaluate(answer, SCORES)
    assert outcome.status == INCORRECT and says in outcome.message, outcome
    assert_not_revealed(outcome.message, 20.0, 0.2)


def test_q4_placeholders_and_bad_scores():
    assert q4.evaluate((..., ...), SCORES).status == NOT_ATTEMPTED
    assert "could not be checked" in q4.evaluate(("lora", 20), {"before": 0.7}).message
