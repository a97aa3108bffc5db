"""Lab 04 exercises: each passes on its solution, rejects typical mistakes without revealing the answer, and says
"not attempted" on `...`."""

import math

import pytest

from labkit.chapters.ch04_data_curation import cleaning
from labkit.chapters.ch04_data_curation.exercises import leak_scores, near_pool, near_scores, q1, q2, q3, q4
from labkit.data import load_instructions, load_raw_instructions, load_raw_truth
from labkit.grading import CORRECT, INCORRECT, NOT_ATTEMPTED


def run_solution(exercise, **namespace) -> dict:
    exec(exercise.solution_code, namespace)  # noqa: S102  (our own solution)
    return namespace


@pytest.fixture(scope="module")
def near_solution():
    return run_solution(q2, cleaning=cleaning, near_pool=near_pool)["near_pairs"]


@pytest.fixture(scope="module")
def leak_solution():
    return run_solution(q4, raw=load_raw_instructions(), test=load_instructions()["test"])["leaked"]


@pytest.mark.parametrize("exercise", [q1, q2, q3, q4])
def test_placeholders_are_not_attempted(exercise):
    assert exercise.evaluate(...).status == NOT_ATTEMPTED
    if exercise in (q1, q3):
        assert exercise.evaluate(lambda *args: ...).status == NOT_ATTEMPTED


def test_solutions_pass(near_solution, leak_solution):
    assert q1.evaluate(run_solution(q1)["my_jaccard"]).status == CORRECT
    assert q2.evaluate(near_solution).status == CORRECT
    assert q3.evaluate(run_solution(q3)["my_ifd"]).status == CORRECT
    assert q4.evaluate(leak_solution).status == CORRECT


@pytest.mark.parametrize("wrong, says", [
    (lambda a, b: len(set(a) & set(b)) / min(len(a), len(b)) if a and b else 0.0, "overlap coefficient"),
    (lambda a, b: len(set(a) & set(b)) / len(a) if a else 0.0, "containment"),
    (lambda a, b: 2 * len(set(a) & set(b)) / (len(a) + len(b)), "Dice"),
    (lambda a, b: len(set(a) & set(b)) / (len(a) + len(b)), "twice"),
    (lambda a, b: len(set(a) & set(b)), "not right yet"),
    (0.5, "function itself"),
])
def test_q1_rejects_typical_mistakes(wrong, says):
    outcome = q1.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message


def test_q2_grades_on_precision_and_recall(near_solution):
    pool_ids = near_pool()["id"]
    truth = cleaning.truth_map(load_raw_truth("instructions"))
    pool = set(pool_ids)  # a source whose exact copy came first in the file left with exact dedup
    planted = [(i, truth[i][1]) for i in pool_ids if truth[i][0] == "near_duplicate" and truth[i][1] in pool]
    assert q2.evaluate(dict(planted)).status == CORRECT  # the log itself passes
    half = q2.evaluate(planted[: len(planted) // 3])
    assert half.status == INCORRECT and "recall" in half.message
    greedy = [(pool_ids[i], pool_ids[i - 1]) for i in range(1, len(pool_ids))]  # every row paired with its neighbour
    assert "precision" in q2.evaluate(greedy).message
    assert "not in near_pool" in q2.evaluate([(10**6, 1)]).message
    assert "itself" in q2.evaluate([(pool_ids[0], pool_ids[0])]).message
    assert "pairs" in q2.evaluate(42).message
    assert "no pairs" in q2.evaluate([]).message
    s = near_scores(near_solution)
    assert s["precision"] >= 0.6 and s["recall"] >= 0.6
    assert half.message.startswith("precision 1.00 but recall 0.3")  # the learner's own scores, never the pairs


def test_q3_rejects_typical_mistakes():
    for wrong, says in [(lambda a, b: math.exp(b) / math.exp(a), "upside down"),
                        (lambda a, b: a / b, "ratio of the two mean losses"),
                        (lambda a, b: a - b, "log IFD"),
                        (lambda a, b: math.exp(a - b) - 1, "no -1")]:
        outcome = q3.evaluate(wrong)
        assert outcome.status == INCORRECT and says in outcome.message


def test_q4_grades_on_precision_and_recall(leak_solution):
    planted = {row["source"] for row in load_raw_truth("instructions") if row["defect"] == "contamination"}
    assert q4.evaluate(planted).status == CORRECT
    few = q4.evaluate(set(sorted(planted)[:10]))
    assert few.status == INCORRECT and "recall" in few.message
    assert "precision" in q4.evaluate(planted | set(range(40))).message
    assert "0 to 299" in q4.evaluate({400}).message
    assert "empty" in q4.evaluate(set()).message
    assert "whole numbers" in q4.evaluate(["a"]).message
    assert leak_scores(leak_solution)["recall"] == 1.0
    assert few.message.startswith("recall 0.33:")  # the learner's own score, never the planted indices
