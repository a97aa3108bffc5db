"""Lab 07 exercises: each check passes the solution and rejects the typical mistakes, never showing the answer."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from labkit.chapters.ch07_evaluation import exercises as ex
from labkit.chapters.ch07_evaluation.exercises import q1, q2, q3, q4, q5


def _status(exercise, answer):
    return exercise.evaluate(answer).status


@pytest.mark.parametrize("seed", [0, 1, 7, 123])
def test_q1_bootstrap_ci_passes_with_any_seed(seed):
    def right(values, confidence, n_resamples):
        means = np.random.default_rng(seed).choice(values, size=(n_resamples, len(values))).mean(1)
        tail = (1 - confidence) / 2
        return np.quantile(means, tail), np.quantile(means, 1 - tail)

    assert _status(q1, right) == "correct"


def test_q1_rejects_the_typical_mistakes():
    assert "too narrow" in q1.evaluate(ex._narrow).message
    assert "MEAN" in q1.evaluate(ex._data_spread).message
    assert "WITH replacement" in q1.evaluate(ex._no_replacement).message
    assert _status(q1, lambda v, c, n: (0.0, 1.0)) == "incorrect"
    assert _status(q1, lambda v, c, n: ...) == "not attempted"


def test_q2_mcnemar():
    def right(table):
        b, c = table[0][1], table[1][0]
        return 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue

    assert _status(q2, right) == "correct"
    assert "off-diagonal" in q2.evaluate(ex._concordant_p).message
    assert "exact test" in q2.evaluate(ex._chi2_p).message
    assert "two-sided" in q2.evaluate(ex._one_sided_p).message
    no_empty_case = lambda t: binomtest(t[0][1], t[0][1] + t[1][0], 0.5).pvalue
    assert _status(q2, no_empty_case) == "incorrect"


def test_q3_ece():
    def right(confidence, correct, n_bins):
        conf, correct = np.asarray(confidence, float), np.asarray(correct, float)
        bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
        return sum((bins == k).mean() * abs(correct[bins == k].mean() - conf[bins == k].mean())
                   for k in range(n_bins) if (bins == k).any())

    assert _status(q3, right) == "correct"
    assert "weight each bin" in q3.evaluate(ex._unweighted).message
    assert "maximum calibration error" in q3.evaluate(ex._max_gap).message
    assert "per bin first" in q3.evaluate(ex._overall).message


def test_q4_mdd():
    def right(n, p, alpha=0.05, power=0.8):
        return (norm.ppf(1 - alpha / 2) + norm.ppf(power)) * math.sqrt(2 * p * (1 - p) / n)

    assert _status(q4, right) == "correct"
    assert "2·p(1-p)/n" in q4.evaluate(ex._one_sample).message
    assert "z_power" in q4.evaluate(ex._no_power).message
    assert "two-sided" in q4.evaluate(ex._one_sided).message


def test_q5_significance():
    assert _status(q5, False) == "correct"
    message = q5.evaluate(True).message
    assert "minimum detectable difference" in message and "False" not in message
    assert _status(q5, ...) == "not attempted"


def test_messages_never_reveal_the_expected_values():
    cases = [(q1, lambda v, c, n: (0.0, 1.0), f"{ex._kit_ci(*ex.BOOT_CASES[0].args[:2])[0]:.3f}"),
             (q3, lambda c, k, b: 0.5, f"{ex.ece(*ex.ECE_CASES[0].args):.3f}"),
             (q4, lambda n, p, **k: 0.5, f"{ex._mdd(*ex.MDD_CASES[0].args):.3f}")]
    for exercise, wrong, expected in cases:
        outcome = exercise.evaluate(wrong)
        assert outcome.status == "incorrect"
        assert expected not in outcome.message, (exercise.name, outcome.message)
