"""Lab 03 exercises: each passes on its solution, rejects typical mistakes, and says "not attempted" on `...`."""

import math

import pandas as pd
import pytest

from labkit.chapters.ch03_peft_methods.exercises import q1, q2, q3, q4, q5
from labkit.grading import CORRECT, INCORRECT, NOT_ATTEMPTED

PLACEMENTS = pd.DataFrame({"placement": ["attention only", "MLP only", "all-linear"], "trainable": [100, 120, 110],
                           "eval_loss": [2.0, 1.5, 1.8], "final_loss": [1.0, 1.9, 1.7]})


def run_solution(exercise) -> dict:
    namespace = {"placement_table": PLACEMENTS}  # one namespace, as a notebook has: imports reach the functions
    exec(exercise.solution_code, namespace)  # noqa: S102  (our own solution)
    return namespace


def test_placeholders_are_not_attempted():
    for exercise in (q1, q2, q3, q4):
        assert exercise.evaluate(...).status == NOT_ATTEMPTED
    assert q5.evaluate(..., PLACEMENTS).status == NOT_ATTEMPTED
    assert q1.evaluate(lambda *args: ...).status == NOT_ATTEMPTED


def test_solutions_pass():
    assert q1.evaluate(run_solution(q1)["my_vera_count"]).status == CORRECT
    assert q2.evaluate(run_solution(q2)["lokr_q_proj"]).status == CORRECT
    assert q3.evaluate(run_solution(q3)["my_scale"]).status == CORRECT
    assert q4.evaluate(run_solution(q4)["my_effective_rank"]).status == CORRECT
    assert q5.evaluate(run_solution(q5)["best_placement"], PLACEMENTS).status == CORRECT


@pytest.mark.parametrize("wrong, says", [
    (lambda i, o, r: r * (i + o), "LoRA's count"), (lambda i, o, r: i + r, "fan_out, not fan_in"),
    (lambda i, o, r: o + i, "one entry per rank"), (lambda i, o, r: 0, "not right"), (5, "function itself"),
])
def test_q1_rejects_typical_mistakes(wrong, says):
    outcome = q1.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message


@pytest.mark.parametrize("wrong, says", [(1152, "split at rank 8"), (9216, "LoRA at rank 8"), (576, "first factor"),
                                         (384, "W1 (24 x 24) trains too"), ("960", "number")])
def test_q2_rejects_typical_mistakes_without_revealing_the_answer(wrong, says):
    outcome = q2.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message and "960" not in outcome.message


@pytest.mark.parametrize("wrong, says", [
    (lambda a, r, rs: a / r, "square root"), (lambda a, r, rs: a / math.sqrt(r), "rank itself"),
    (lambda a, r, rs: math.sqrt(a) / r if rs else a / r, "not of alpha"),
])
def test_q3_rejects_typical_mistakes(wrong, says):
    outcome = q3.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message


def _by_sigma(values, energy=0.9):
    total, running = sum(values), 0.0
    for k, v in enumerate(values, start=1):
        running += v
        if running >= energy * total:
            return k
    return len(values)


def _strict(values, energy=0.9):
    total, running = sum(v * v for v in values), 0.0
    for k, v in enumerate(values, start=1):
        running += v * v
        if running > energy * total:
            return k
    return len(values)


@pytest.mark.parametrize("wrong, says", [(_by_sigma, "squared"), (_strict, ">=, not >"),
                                         (lambda v, e=0.9: len([x for x in v if x > 0]), "90%-energy rank")])
def test_q4_rejects_typical_mistakes(wrong, says):
    outcome = q4.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message


@pytest.mark.parametrize("wrong, says", [("attention only", "lowest training loss"), ("all-linear", "eval_loss"),
                                         ("top half", "one of the placement names"), (3, "placement names")])
def test_q5_rejects_typical_mistakes_without_revealing_the_answer(wrong, says):
    outcome = q5.evaluate(wrong, PLACEMENTS)
    assert outcome.status == INCORRECT and says in outcome.message and "MLP only" not in outcome.message.split(":")[0]


def test_q5_reads_the_table_it_is_given():
    other = PLACEMENTS.assign(eval_loss=[1.0, 1.5, 1.8])
    assert q5.evaluate("attention only", other).status == CORRECT
    assert q5.evaluate("MLP only", other).status == INCORRECT
