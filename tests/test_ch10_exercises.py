"""Lab 10 exercises: each passes on its solution, rejects typical mistakes, and says "not attempted" on `...`."""

import re

import pytest

from labkit.chapters.ch10_debugging.exercises import MYSTERY, q1, q2, q3, q4
from labkit.grading import CORRECT, INCORRECT, NOT_ATTEMPTED
from labkit.units import IGNORE_INDEX


def run_solution(exercise) -> dict:
    namespace = {"IGNORE_INDEX": IGNORE_INDEX}
    exec(exercise.solution_code, namespace)  # noqa: S102  (our own solution)
    return namespace


@pytest.mark.parametrize("exercise", [q1, q2, q3, q4])
def test_placeholders_are_not_attempted(exercise):
    assert exercise.evaluate(...).status == NOT_ATTEMPTED


def test_function_stubs_are_not_attempted():
    def stub(*args):
        return ...

    def raises(*args):
        raise NotImplementedError

    for exercise in (q2, q3):
        assert exercise.evaluate(stub).status == NOT_ATTEMPTED
        assert exercise.evaluate(raises).status == NOT_ATTEMPTED
    assert q4.evaluate({"a": ..., "b": ..., "c": ..., "d": ...}).status == NOT_ATTEMPTED


def test_q1_passes_on_solution_and_rejects_other_members():
    assert q1.evaluate(run_solution(q1)["mystery_bug"]).status == CORRECT
    for wrong, says in [("loss_on_prompt", "masked"), ("missing_eos", "end-of-turn"), ("healthy", "equal"),
                        ("right_padding", "labels where they belong"), ("off_by_two", "name of a zoo member")]:
        outcome = q1.evaluate(wrong)
        assert outcome.status == INCORRECT and says in outcome.message and MYSTERY not in outcome.message


def test_q2_passes_on_solution():
    assert q2.evaluate(run_solution(q2)["answer_only_labels"]).status == CORRECT


@pytest.mark.parametrize("wrong, says", [
    (lambda ids, n: list(ids), "still in the loss"),
    (lambda ids, n: [IGNORE_INDEX] * n + list(ids[n + 1:]) + [IGNORE_INDEX], "shifted by one"),
    (lambda ids, n: [0] * n + list(ids[n:]), "not 0"),
    (lambda ids, n: [IGNORE_INDEX] * (n + 1) + list(ids[n + 1:]), "first answer token"),
    (lambda ids, n: [IGNORE_INDEX] * max(n - 1, 0) + list(ids[max(n - 1, 0):]), "last prompt token"),
    (lambda ids, n: list(ids[:n]) + [IGNORE_INDEX] * (len(ids) - n), "upside down"),
    (lambda ids, n: [IGNORE_INDEX] * n, "one label per input token"),
    (lambda ids, n: 1 / 0, "ZeroDivisionError"),
    ("labels", "function itself"),
])
def test_q2_rejects_typical_mistakes(wrong, says):
    outcome = q2.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message


def test_q3_passes_on_solution():
    assert q3.evaluate(run_solution(q3)["step_loss"]).status == CORRECT


@pytest.mark.parametrize("wrong, says", [
    (lambda m, n: sum(m) / len(m), "mean of the micro-batch means"),
    (lambda m, n: sum(a * b for a, b in zip(m, n)) / len(m), "not by the number of micro-batches"),
    (lambda m, n: sum(m), "sum of means"),
    (lambda m, n: sum(a * b for a, b in zip(m, n)), "summed token loss"),
    (lambda m, n: max(m), "not right yet"),
    (lambda m, n: "loss", "one number"),
])
def test_q3_rejects_typical_mistakes(wrong, says):
    outcome = q3.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message
    assert not re.search(r"\b1\.75\b", outcome.message)  # the first case's answer is never shown


def test_q4_passes_on_solution():
    assert q4.evaluate(run_solution(q4)["caught_by"]).status == CORRECT


@pytest.mark.parametrize("wrong, says", [
    ({"a": "template_match", "b": "optimizer_covers", "c": "generation_padding", "d": "eval_deterministic"},
     "a: that check would pass"),
    ({"a": "eos_in_labels", "b": "gradient_flow", "c": "generation_padding", "d": "eval_deterministic"},
     "b: that check would pass"),
    ({"a": "eos_in_labels", "b": "optimizer_covers", "c": "padding", "d": "eval_deterministic"},
     "not a pre-flight check"),
    ({"a": "eos_in_labels"}, "missing"),
    ("eos_in_labels", "dict"),
])
def test_q4_rejects_typical_mistakes(wrong, says):
    outcome = q4.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message
    assert "optimizer_covers" not in outcome.message or "b" not in wrong
