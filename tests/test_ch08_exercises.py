"""Lab 08 exercises: each check passes the solution and rejects the typical mistakes, never showing the answer."""

import pytest

from labkit.chapters.ch08_deployment.exercises import q1, q2, q3, q4


def _status(exercise, answer):
    return exercise.evaluate(answer).status


def test_q1_kv_bytes():
    assert _status(q1, lambda L, h, kv, d, b: 2 * L * kv * d * b) == "correct"
    assert "keys and values" in q1.evaluate(lambda L, h, kv, d, b: L * kv * d * b).message
    assert "kv_heads" in q1.evaluate(lambda L, h, kv, d, b: 2 * L * h * d * b).message
    assert "factor of 8" in q1.evaluate(lambda L, h, kv, d, b: 16 * L * kv * d * b).message
    assert _status(q1, lambda L, h, kv, d, b: ...) == "not attempted"
    assert "46080" not in q1.evaluate(lambda L, h, kv, d, b: 1).message


def test_q2_roofline():
    assert _status(q2, lambda n, b, bw: bw * 1e9 / (n * b)) == "correct"
    assert "1e9" in q2.evaluate(lambda n, b, bw: bw / (n * b)).message
    assert "bytes, not the count" in q2.evaluate(lambda n, b, bw: bw * 1e9 / n).message
    assert "compute roof" in q2.evaluate(lambda n, b, bw: bw * 1e9 / (2 * n * b)).message
    assert _status(q2, lambda n, b, bw: n * b / bw) == "incorrect"


def test_q3_p95_target():
    def right(levels, p95, target):
        ok = [c for c, p in zip(levels, p95) if p <= target]
        return max(ok) if ok else None

    assert _status(q3, right) == "correct"
    assert "highest" in q3.evaluate(lambda lv, p, t: min([c for c, x in zip(lv, p) if x <= t], default=None)).message
    assert "<=" in q3.evaluate(lambda lv, p, t: max([c for c, x in zip(lv, p) if x < t], default=None)).message
    assert "None" in q3.evaluate(lambda lv, p, t: max([c for c, x in zip(lv, p) if x <= t], default=lv[0])).message
    assert _status(q3, lambda lv, p, t: lv[-1]) == "incorrect"


@pytest.mark.parametrize(("answer", "fragment"), [
    (lambda n, m, mem, mix: "adapters", "single task"),
    (lambda n, m, mem, mix: "merged", "count the memory"),
    (lambda n, m, mem, mix: "merged" if n == 1 or not mix else "adapters", "count the memory"),
    (lambda n, m, mem, mix: "merged" if n == 1 or n * m <= mem else "adapters", "mixes tasks"),
])
def test_q4_deployment_rejects(answer, fragment):
    outcome = q4.evaluate(answer)
    assert outcome.status == "incorrect" and fragment in outcome.message


def test_q4_deployment_accepts():
    def right(n, m, mem, mix):
        if n == 1:
            return "merged"
        return "adapters" if n * m > mem or mix else "merged"

    assert _status(q4, right) == "correct"
    assert _status(q4, lambda n, m, mem, mix: ...) == "not attempted"
