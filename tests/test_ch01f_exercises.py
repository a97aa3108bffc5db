"""Lab 01f exercises: each check passes the solution and rejects the typical mistakes, never showing the answer."""

import math
import random

import numpy as np
import torch

from labkit.chapters.ch01f_hardware.exercises import q1, q2, q3, q4
from labkit.chapters.ch01f_hardware.repro import RECORD_FIELDS


def _status(exercise, answer):
    return exercise.evaluate(answer).status


def test_q1_seed_everything():
    def right(seed):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    assert _status(q1, right) == "correct"
    assert "`random`" in q1.evaluate(lambda s: (np.random.seed(s), torch.manual_seed(s))).message
    assert "numpy" in q1.evaluate(lambda s: (random.seed(s), torch.manual_seed(s))).message
    assert "torch" in q1.evaluate(lambda s: (random.seed(s), np.random.seed(s))).message
    assert "constant" in q1.evaluate(lambda s: right(0)).message
    assert _status(q1, lambda s: ...) == "not attempted"
    assert _status(q1, 3) == "incorrect"


def test_q2_missing_fields():
    def right(record):
        return [k for k in RECORD_FIELDS if record.get(k) in (None, "", {}, [])]

    assert _status(q2, right) == "correct"
    assert "empty" in q2.evaluate(lambda r: [k for k in RECORD_FIELDS if k not in r]).message
    assert "seed 0" in q2.evaluate(lambda r: [k for k in RECORD_FIELDS if not r.get(k)]).message
    assert "order" in q2.evaluate(lambda r: sorted(right(r))).message
    assert _status(q2, lambda r: []) == "incorrect"


def test_q3_exposure():
    assert _status(q3, lambda r, n: math.log2(n) - math.log2(r)) == "correct"
    assert "base 2" in q3.evaluate(lambda r, n: math.log(n) - math.log(r)).message
    assert "rank 1" in q3.evaluate(lambda r, n: math.log2(r)).message
    assert "start at 1" in q3.evaluate(lambda r, n: math.log2(n) - math.log2(r + 1)).message
    assert _status(q3, lambda r, n: ...) == "not attempted"


def test_q4_dpo_loss():
    def right(lc, lr, rc, rr, b):
        return math.log1p(math.exp(-b * ((lc - rc) - (lr - rr))))

    assert _status(q4, right) == "correct"
    assert "reference" in q4.evaluate(lambda lc, lr, rc, rr, b: math.log1p(math.exp(-b * (lc - lr)))).message
    assert "sign" in q4.evaluate(lambda lc, lr, rc, rr, b: math.log1p(math.exp(b * ((lc - rc) - (lr - rr))))).message
    assert "beta" in q4.evaluate(lambda lc, lr, rc, rr, b: math.log1p(math.exp(-((lc - rc) - (lr - rr))))).message
    assert _status(q4, lambda *a: ...) == "not attempted"


def test_messages_never_reveal_the_answer():
    for exercise, wrong in ((q2, lambda r: ["x"]), (q3, lambda r, n: 1.0), (q4, lambda *a: 0.0)):
        message = exercise.evaluate(wrong).message
        assert "returned" in message and "which is not right yet" in message
