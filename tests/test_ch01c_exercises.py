"""Lab 01c exercises: each passes on its solution, rejects typical mistakes, and says "not attempted" on `...`."""

import re

import numpy as np
import pandas as pd
import pytest

from labkit.chapters.ch01c_transfer.exercises import q1, q2, q3, q4, q5
from labkit.grading import CORRECT, INCORRECT, NOT_ATTEMPTED
from labkit.models import load_model


def run_solution(exercise, **namespace) -> dict:
    exec(exercise.solution_code, {"np": np, "pd": pd, **namespace}, namespace)  # noqa: S102  (our own solution)
    return namespace


def assert_not_revealed(message: str, *values) -> None:
    for value in values:
        text = f"{value:.3f}".rstrip("0") if isinstance(value, float) else str(value)
        assert not re.search(rf"(?<![\d.]){re.escape(text)}", message), f"{message!r} reveals {value}"


@pytest.fixture(scope="module")
def tokenizer():
    return load_model("tiny-llama")[1]  # the real SmolLM2 tokenizer


@pytest.mark.parametrize("exercise, context", [(q1, ()), (q2, (None, None)), (q3, ()), (q5, (None,)), (q4, (None,))])
def test_placeholders_are_not_attempted(exercise, context):
    assert exercise.evaluate(..., *context).status == NOT_ATTEMPTED


# ---- q1: explain the probe curve ------------------------------------------------------------------------------------

def test_q1_passes_on_solution():
    assert q1.evaluate(run_solution(q1)["probe_explanation"]).status == CORRECT
    assert q1.evaluate(" b ").status == CORRECT


@pytest.mark.parametrize("wrong, says", [("A", "flat"), ("C", "chance"), ("D", "generation"),
                                         ("E", "one letter"), (2, "one letter")])
def test_q1_rejects_wrong_statements(wrong, says):
    outcome = q1.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message and "'B'" not in outcome.message


# ---- q2: freeze depth under a budget --------------------------------------------------------------------------------

SWEEP = pd.DataFrame({
    "k": [0, 10, 20, 24, 28, 30],
    "trainable_params": [134_000_000, 70_000_000, 35_000_000, 21_000_000, 7_000_000, 5_000],
    "validation_accuracy": [0.95, 0.96, 0.94, 0.90, 0.90, 0.70],
})
BUDGET = 25_000_000


def test_q2_passes_on_solution():
    assert run_solution(q2, sweep=SWEEP, budget_params=BUDGET)["chosen_k"] == 28
    assert q2.evaluate(28, SWEEP, BUDGET).status == CORRECT
    assert q2.evaluate(np.int64(28), SWEEP, BUDGET).status == CORRECT
    assert q2.evaluate(10, SWEEP, 80_000_000).status == CORRECT  # a bigger budget moves the answer


@pytest.mark.parametrize("wrong, says", [
    (10, "more parameters than the budget"),  # best overall, ignores the budget
    (24, "tie"),  # tied accuracy, more expensive
    (30, "cheapest"),  # cheapest within budget
    (12, "k values that the sweep measured"),
    (2.5, "whole number"),
])
def test_q2_rejects_typical_mistakes(wrong, says):
    outcome = q2.evaluate(wrong, SWEEP, BUDGET)
    assert outcome.status == INCORRECT and says in outcome.message
    assert_not_revealed(outcome.message, 28)


def test_q2_says_when_another_depth_is_better():
    sweep = SWEEP.assign(validation_accuracy=[0.95, 0.96, 0.94, 0.93, 0.90, 0.91])
    assert q2.evaluate(30, sweep, BUDGET).message.startswith("that is the cheapest")
    outcome = q2.evaluate(28, sweep, BUDGET)
    assert outcome.status == INCORRECT and "higher validation accuracy" in outcome.message


# ---- q3: linear CKA -------------------------------------------------------------------------------------------------

def test_q3_passes_on_solution():
    assert q3.evaluate(run_solution(q3)["my_linear_cka"]).status == CORRECT


def _no_centre(x, y):
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def _not_squared(x, y):
    a, b = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(b.T @ a) / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b))


def _squared_norms(x, y):
    a, b = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(b.T @ a) ** 2 / (np.linalg.norm(a.T @ a) ** 2 * np.linalg.norm(b.T @ b) ** 2)


@pytest.mark.parametrize("wrong, says", [
    (_no_centre, "centre each matrix"),
    (_not_squared, "square the numerator"),
    (_squared_norms, "not their squares"),
    (lambda x, y: float(np.corrcoef(x[:, 0], y[:, 0])[0, 1]), "not right yet"),
    (lambda x, y: "high", "one number"),
    (lambda x, y: 1 / 0, "ZeroDivisionError"),
    (0.5, "function itself"),
])
def test_q3_rejects_typical_mistakes(wrong, says):
    outcome = q3.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message


def test_q3_not_attempted_inside_the_function():
    def stub(x, y):
        raise NotImplementedError

    assert q3.evaluate(stub).status == NOT_ATTEMPTED
    assert q3.evaluate(lambda x, y: ...).status == NOT_ATTEMPTED


# ---- q5: tokens per word --------------------------------------------------------------------------------------------

def test_q5_passes_on_solution(tokenizer):
    assert q5.evaluate(run_solution(q5)["my_tokens_per_word"], tokenizer).status == CORRECT


@pytest.mark.parametrize("wrong, says", [
    (lambda tok, t: len(t.split()) / len(tok(t, add_special_tokens=False)["input_ids"]), "upside down"),
    (lambda tok, t: len(t) / len(tok(t, add_special_tokens=False)["input_ids"]), "characters per token"),
    (lambda tok, t: sum(len(tok(w, add_special_tokens=False)["input_ids"]) for w in t.split()) / len(t.split()),
     "leading space"),
    (lambda tok, t: 1.0, "not right yet"),
])
def test_q5_rejects_typical_mistakes(tokenizer, wrong, says):
    outcome = q5.evaluate(wrong, tokenizer)
    assert outcome.status == INCORRECT and says in outcome.message


def test_q5_needs_the_tokenizer():
    assert "call it as q5.check(your_answer, tokenizer)" in q5.evaluate(lambda tok, t: 1.0).message


# ---- q4: the layer fine-tuning changed most -------------------------------------------------------------------------

DIAG = np.array([1.0, 0.99, 0.98, 0.97, 0.80, 0.90, 0.95])


def test_q4_passes_on_solution():
    assert q4.evaluate(run_solution(q4, cka_diagonal=DIAG)["most_changed_layer"], DIAG).status == CORRECT


@pytest.mark.parametrize("wrong, says", [(0, "changed least"), (5, "off by one"), (3, "off by one"),
                                         (1, "another layer"), (7, "run from 0"), (4.5, "whole number")])
def test_q4_rejects_typical_mistakes(wrong, says):
    outcome = q4.evaluate(wrong, DIAG)
    assert outcome.status == INCORRECT and says in outcome.message
    assert_not_revealed(outcome.message, 4)
