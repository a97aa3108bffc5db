"""Lab 09 exercises: each check passes the solution and rejects the typical mistakes, never showing the answer."""

import math

from labkit.chapters.ch09_future import exercises as ex
from labkit.chapters.ch09_future.exercises import q1, q2, q3, q4


def _status(exercise, answer):
    return exercise.evaluate(answer).status


def test_q1_top_k_gates():
    assert _status(q1, ex.top_k_gates) == "correct"
    assert "sum to 1" in q1.evaluate(ex._no_renorm).message
    assert "keeps every expert" in q1.evaluate(lambda logits, k: ex._softmax(logits)).message
    assert "LARGEST" in q1.evaluate(ex._lowest).message
    assert _status(q1, lambda logits, k: ...) == "not attempted"
    assert ex.top_k_gates([1.0, 3.0, 0.5, 2.0], 2)[0] == 0.0  # hard-coded: experts 1 and 3 win
    assert math.isclose(sum(ex.top_k_gates([1.0, 3.0, 0.5, 2.0], 2)), 1.0)


def test_q2_switch_loss():
    assert _status(q2, ex.switch_loss) == "correct"
    assert "number of experts" in q2.evaluate(lambda i, p, n: ex.switch_loss(i, p, n) / n).message
    wrong = q2.evaluate(lambda i, p, n: n * sum((sum(e == k for e in i) / len(i)) ** 2 for k in range(n)))
    assert "not differentiable" in wrong.message
    assert _status(q2, lambda i, p, n: 1.0) == "incorrect"
    # a perfectly balanced router scores 1: f = P = 1/N
    assert math.isclose(ex.switch_loss([1, 0], [[0.5, 0.5], [0.5, 0.5]], 2), 1.0)


def test_q3_backward_transfer():
    assert _status(q3, ex.bwt) == "correct"
    assert "leave the last task out" in q3.evaluate(
        lambda m: sum(m[-1][j] - m[j][j] for j in range(len(m))) / len(m)).message
    assert "sign" in q3.evaluate(lambda m: -ex.bwt(m)).message
    assert "diagonal" in q3.evaluate(lambda m: sum(m[-1][j] - m[0][j] for j in range(len(m) - 1)) / (len(m) - 1)).message
    assert math.isclose(ex.bwt([[0.8, 0.1, 0.2], [0.5, 0.9, 0.1], [0.4, 0.6, 0.7]]), -0.35)


def test_q4_ties_merge():
    assert _status(q4, ex.ties_merge) == "correct"
    assert "plain mean" in q4.evaluate(lambda vs: [sum(v) / len(v) for v in zip(*vs)]).message
    assert "SUM" in q4.evaluate(ex._majority_sign).message
    assert _status(q4, lambda vs: [0.0] * len(vs[0])) == "incorrect"
    assert ex.ties_merge([[1.0, -1.0], [-3.0, 0.5], [0.5, 0.2]]) == [-3.0, -1.0]  # sums -1.5, -0.3: both negative


def test_messages_never_show_the_expected_value():
    for exercise, wrong in ((q1, lambda logits, k: [0.0] * len(logits)), (q3, lambda m: 0.123),
                            (q4, lambda vs: [9.0] * len(vs[0]))):
        outcome = exercise.evaluate(wrong)
        assert outcome.status == "incorrect"
    assert "-0.35" not in q3.evaluate(lambda m: 0.123).message
