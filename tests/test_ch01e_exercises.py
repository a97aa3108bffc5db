"""Lab 01e exercises: each passes on its solution, rejects typical mistakes without revealing the answer, and says
"not attempted" on the placeholder."""

import math

import pandas as pd
import pytest

from labkit.chapters.ch01e_baselines import splits
from labkit.chapters.ch01e_baselines.exercises import _stop_step, best_lr, q1, q2, q3, q4
from labkit.grading import CORRECT, INCORRECT, NOT_ATTEMPTED

SWEEP = pd.DataFrame({"lr": [3e-4, 1e-3, 3e-3, 3e-4, 1e-3, 3e-3], "batch_size": [2, 2, 2, 4, 4, 4],
                      "final_loss": [1.2, 0.6, 0.7, 1.1, 0.5, 0.9],
                      "steps_to_target": [math.nan, 12.0, 9.0, math.nan, 10.0, math.nan]})


def run_solution(exercise, **namespace) -> dict:
    exec(exercise.solution_code, {"Counter": __import__("collections").Counter, "splits": splits}, namespace)  # noqa: S102
    return namespace


@pytest.mark.parametrize("exercise", [q1, q2, q3])
def test_placeholders_are_not_attempted(exercise):
    assert exercise.evaluate(...).status == NOT_ATTEMPTED
    assert exercise.evaluate(lambda *args: ...).status == NOT_ATTEMPTED
    assert q4.evaluate(..., SWEEP, 2).status == NOT_ATTEMPTED


def test_solutions_pass():
    assert q1.evaluate(run_solution(q1)["my_majority_accuracy"]).status == CORRECT
    assert q2.evaluate(run_solution(q2)["my_near_dup_pairs"]).status == CORRECT
    assert q3.evaluate(run_solution(q3)["my_best_step"]).status == CORRECT
    for batch in (2, 4):
        answer = run_solution(q4, sweep=SWEEP, Q4_BATCH=batch)["my_best_lr"]
        assert q4.evaluate(answer, SWEEP, batch).status == CORRECT


def test_best_lr():
    assert best_lr(SWEEP, 2) == 3e-3  # fewest steps to target
    assert best_lr(SWEEP, 4) == 1e-3  # the only one that reached it
    assert best_lr(SWEEP.assign(steps_to_target=math.nan), 2) == 1e-3  # none reached: lowest final loss


def _says(exercise, answer, *context, text):
    outcome = exercise.evaluate(answer, *context)
    assert outcome.status == INCORRECT and text in outcome.message, outcome.message
    return outcome.message


@pytest.mark.parametrize("wrong, says", [
    (lambda tr, te: pd.Series(te).value_counts().iloc[0] / len(te), "test set's most common"),
    (lambda tr, te: sum(x == pd.Series(tr).mode()[0] for x in te), "that is a count"),
    (lambda tr, te: pd.Series(tr).value_counts().iloc[0] / len(tr), "share of the training labels"),
    (lambda tr, te: 0.125, "not right yet"),
])
def test_q1_rejects_typical_mistakes(wrong, says):
    message = _says(q1, wrong, text=says)
    assert "0.25" not in message


@pytest.mark.parametrize("wrong, says", [
    (lambda tr, te, t: sum(1 for b in te if any(splits.jaccard(a, b) >= t for a in tr)), "at least one"),
    (lambda tr, te, t: sum(1 for a in tr for b in te if splits.jaccard(a, b) > t), "use >="),
    (lambda tr, te, t: sum(1 for a in tr for b in te if a == b), "exact copies"),
])
def test_q2_rejects_typical_mistakes(wrong, says):
    _says(q2, wrong, text=says)


@pytest.mark.parametrize("wrong, says", [
    (lambda s, v, p: s[v.index(min(v))], "lowest loss of the whole run"),
    (_stop_step, "where training stops"),
    (lambda s, v, p: s[-1], "last step"),
])
def test_q3_rejects_typical_mistakes(wrong, says):
    _says(q3, wrong, text=says)


def test_q4_rejects_typical_mistakes():
    _says(q4, 1e-3, SWEEP, 2, text="fewer steps")
    _says(q4, 3e-3, SWEEP, 4, text="largest learning rate")
    _says(q4, 0.5, SWEEP, 2, text="pick one of the learning rates")
    message = _says(q4, "fast", SWEEP, 2, text="a number")
    assert "0.003" not in message
