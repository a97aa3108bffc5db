"""Lab 11 exercises: each check passes the solution and rejects the typical mistakes, never showing the answer."""

import math

import pytest

from labkit.chapters.ch11_cost.exercises import q1, q2, q3, q4


def _status(exercise, answer):
    return exercise.evaluate(answer).status


def test_q1_mfu():
    assert _status(q1, lambda n, t, p: 6 * n * t / (p * 1e12)) == "correct"
    assert q1.evaluate(lambda n, t, p: 2 * n * t / (p * 1e12)).message.startswith("that counts only the forward")
    assert "1e12" in q1.evaluate(lambda n, t, p: 6 * n * t / p).message
    assert _status(q1, lambda n, t, p: 4 * n * t / (p * 1e12)) == "incorrect"
    assert _status(q1, lambda n, t, p: ...) == "not attempted"


def test_q2_spot_cost():
    assert _status(q2, lambda w, u, r, e, s: u * w / (1 - r * (e / 2 + s))) == "correct"
    assert "ignores preemptions" in q2.evaluate(lambda w, u, r, e, s: u * w).message
    assert "half a checkpoint" in q2.evaluate(lambda w, u, r, e, s: u * w / (1 - r * (e + s))).message
    assert _status(q2, lambda w, u, r, e, s: u * w * (1 + r * (e / 2 + s))) == "incorrect"


def test_q3_break_even():
    def right(f, o, h):
        return math.inf if h <= o else f / (h - o) * 1e6

    assert _status(q3, right) == "correct"
    assert "per token too" in q3.evaluate(lambda f, o, h: f / h * 1e6).message
    assert "math.inf" in q3.evaluate(lambda f, o, h: f / abs(h - o) * 1e6).message
    assert _status(q3, lambda f, o, h: f / (h - o) if h > o else math.inf) == "incorrect"


@pytest.mark.parametrize(("answer", "fragment"), [
    (lambda c: (math.sqrt(c / 20), 20 * math.sqrt(c / 20)), "the 6 is missing"),
    (lambda c: (20 * math.sqrt(c / 120), math.sqrt(c / 120)), "swapped"),
    (lambda c: (c / 120, 20 * c / 120), "square root"),
    (lambda c: math.sqrt(c / 120), "not right yet"),
])
def test_q4_chinchilla_rejects(answer, fragment):
    outcome = q4.evaluate(answer)
    assert outcome.status == "incorrect" and fragment in outcome.message


def test_q4_chinchilla_accepts_and_never_shows_the_answer():
    assert _status(q4, lambda c: (math.sqrt(c / 120), 20 * math.sqrt(c / 120))) == "correct"
    assert _status(q4, lambda c: [math.sqrt(c / 120), 20 * math.sqrt(c / 120)]) == "correct"
    outcome = q4.evaluate(lambda c: (1.0, 2.0))
    assert outcome.status == "incorrect" and str(round(math.sqrt(5.76e23 / 120))) not in outcome.message
    assert _status(q4, lambda c: ...) == "not attempted"
