"""Lab 06 exercises: each check passes the solution and rejects the typical mistakes, never showing the answer."""

from labkit.chapters.ch06_distributed.exercises import q1, q2, q3, q4


def _status(exercise, answer):
    return exercise.evaluate(answer).status


def _zero(p, n, s):
    return 2 * p / (n if s >= 3 else 1) + 2 * p / (n if s >= 2 else 1) + 12 * p / (n if s >= 1 else 1)


def test_q1_zero_bytes():
    assert _status(q1, _zero) == "correct"
    assert "only ZeRO-3" in q1.evaluate(lambda p, n, s: 16 * p / n).message
    assert "K = 12" in q1.evaluate(
        lambda p, n, s: 2 * p / (n if s >= 3 else 1) + 2 * p / (n if s >= 2 else 1) + 8 * p / (n if s >= 1 else 1)).message
    assert "gradients too" in q1.evaluate(
        lambda p, n, s: 2 * p / (n if s >= 3 else 1) + 2 * p + 12 * p / (n if s >= 1 else 1)).message
    assert _status(q1, lambda p, n, s: ...) == "not attempted"


def test_q2_ring():
    assert _status(q2, lambda b, n: 2 * (n - 1) / n * b) == "correct"
    assert "2(N-1)/N" in q2.evaluate(lambda b, n: 2 * b).message
    assert "reduce-scatter AND" in q2.evaluate(lambda b, n: (n - 1) / n * b).message
    assert _status(q2, lambda b, n: 2 * (n - 1) * b) == "incorrect"


def test_q3_allreduce_time():
    assert _status(q3, lambda b, n, a, bw: 2 * (n - 1) * a + 2 * (n - 1) / n * b / bw) == "correct"
    assert "latency" in q3.evaluate(lambda b, n, a, bw: a + 2 * (n - 1) / n * b / bw).message
    assert "bandwidth term" in q3.evaluate(lambda b, n, a, bw: 2 * (n - 1) * a).message
    assert _status(q3, lambda b, n, a, bw: 2 * (n - 1) * a + b / bw) == "incorrect"


def test_q4_fit_70b():
    assert _status(q4, (3, "optimizer")) == "correct"
    assert "16 bytes" in q4.evaluate((3, "none")).message
    assert "fp16 weights" in q4.evaluate((2, "optimizer")).message
    assert "offloading less" in q4.evaluate((3, "optimizer+params")).message
    outcome = q4.evaluate((0, "none"))
    assert outcome.status == "incorrect" and "optimizer'" not in outcome.message
