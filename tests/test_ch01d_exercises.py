"""Lab 01d exercises: each passes on its solution, rejects typical mistakes, and says "not attempted" on `...`."""

import re

import pytest

from labkit.chapters.ch01d_tasks.exercises import q1, q2, q3, q4
from labkit.grading import CORRECT, INCORRECT, NOT_ATTEMPTED


def run_solution(exercise, **namespace) -> dict:
    exec(exercise.solution_code, {}, namespace)  # noqa: S102  (our own solution)
    return namespace


@pytest.mark.parametrize("exercise", [q1, q2, q3, q4])
def test_placeholders_are_not_attempted(exercise):
    assert exercise.evaluate(...).status == NOT_ATTEMPTED
    if exercise is not q4:
        assert exercise.evaluate(lambda *args: ...).status == NOT_ATTEMPTED


def test_solutions_pass():
    assert q1.evaluate(run_solution(q1)["my_macro_f1"]).status == CORRECT
    assert q2.evaluate(run_solution(q2)["my_answer_labels"]).status == CORRECT
    assert q3.evaluate(run_solution(q3)["my_smoothed_targets"]).status == CORRECT
    assert q4.evaluate(run_solution(q4)["best_metric"]).status == CORRECT


# ---- q1: macro-F1 from a confusion matrix ---------------------------------------------------------------------------

def _accuracy(m):
    return sum(m[i][i] for i in range(len(m))) / sum(map(sum, m))


def _weighted(m):
    n, total = len(m), sum(map(sum, m))
    out = 0.0
    for c in range(n):
        tp, fp, fn = m[c][c], sum(m[r][c] for r in range(n)) - m[c][c], sum(m[c]) - m[c][c]
        out += (2 * tp / (2 * tp + fp + fn) if tp else 0.0) * sum(m[c]) / total
    return out


def _crashes_on_empty_class(m):
    n = len(m)
    scores = []
    for c in range(n):
        tp = m[c][c]
        precision = tp / sum(m[r][c] for r in range(n))
        recall = tp / sum(m[c])
        scores.append(2 * precision * recall / (precision + recall))
    return sum(scores) / n


@pytest.mark.parametrize("wrong, says", [
    (_accuracy, "that is accuracy"), (_weighted, "weighted F1"), (_crashes_on_empty_class, "ZeroDivisionError"),
    (lambda m: 0.5, "not right yet"), (0.5, "function itself"),
])
def test_q1_rejects_typical_mistakes(wrong, says):
    outcome = q1.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message


def test_q1_checks_mean_precision_recall_f1():
    def f1_of_means(m):
        n = len(m)
        tp = [m[c][c] for c in range(n)]
        col = [sum(m[r][c] for r in range(n)) for c in range(n)]
        p = sum(t / s if s else 0.0 for t, s in zip(tp, col)) / n
        r = sum(t / sum(m[c]) if sum(m[c]) else 0.0 for c, t in enumerate(tp)) / n
        return 2 * p * r / (p + r)

    assert "average the per-class F1" in q1.evaluate(f1_of_means).message


# ---- q2: answer-only labels -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("wrong, says", [
    (lambda ids, n: [-100] * (n - 1) + list(ids[n - 1:]) if n else list(ids), "mask exactly prompt_len"),
    (lambda ids, n: [-100] * (n + 1) + list(ids[n + 1:]), "first answer token"),
    (lambda ids, n: list(ids[:n]) + [-100] * (len(ids) - n), "masks the answer"),
    (lambda ids, n: [0] * n + list(ids[n:]), "ignore index -100"),
    (lambda ids, n: list(ids[n:]), "as long as input_ids"),
    (lambda ids, n: list(ids), "not right yet"),
])
def test_q2_rejects_typical_mistakes(wrong, says):
    outcome = q2.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message


# ---- q3: label-smoothed targets -------------------------------------------------------------------------------------

@pytest.mark.parametrize("wrong, says", [
    (lambda y, k, e: [(1 - e) if c == y else e / (k - 1) for c in range(k)], "other k - 1 classes"),
    (lambda y, k, e: [(1 - e) * (c == y) for c in range(k)], "no longer sum to 1"),
    (lambda y, k, e: [(c == y) + e / k for c in range(k)], "sum to more than 1"),
    (lambda y, k, e: [e * (c == y) + (1 - e) / k for c in range(k)], "swapped"),
    (lambda y, k, e: 1 - e, "list of num_classes"),
    (lambda y, k, e: [1 / k] * k, "not right yet"),
])
def test_q3_rejects_typical_mistakes(wrong, says):
    outcome = q3.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message


def test_q3_accepts_a_tensor():
    import torch

    assert q3.evaluate(lambda y, k, e: (1 - e) * torch.nn.functional.one_hot(torch.tensor(y), k) + e / k).status \
        == CORRECT


# ---- q4: the metric that ranks the planted pair right ---------------------------------------------------------------

@pytest.mark.parametrize("answer", ["contains", "token_f1", " ROUGE_L "])
def test_q4_accepts_every_metric_that_ranks_b_first(answer):
    assert q4.evaluate(answer).status == CORRECT


@pytest.mark.parametrize("wrong, says", [
    ("exact_match", "prefers system A"), ("bleu", "the same"), ("macro_f1", "does not apply"),
    ("perplexity", "per-token losses"), ("recall", "one metric name"),
])
def test_q4_rejects_typical_mistakes(wrong, says):
    outcome = q4.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message
    assert not re.search(r"'contains'|token_f1", outcome.message) or "one metric name" in outcome.message
