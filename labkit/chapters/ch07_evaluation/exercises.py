"""Lab 07 exercises: a bootstrap interval, McNemar's decision from a 2x2 table, ECE from binned confidences, the
minimum detectable difference, and whether a 1.5-point gain on 200 items means anything."""

from __future__ import annotations

import math

import numpy as np

from ...grading import Args, Exercise, expect_function, expect_value
from .calibration import ece
from .stats import mcnemar_from_table, min_detectable_difference

# ---- q1: a bootstrap confidence interval -----------------------------------------------------------------------------


def _scores(seed: int, n: int) -> list:
    """Seeded per-item scores in [0, 1] (token F1-like: continuous, so interval ends are not tied to a grid)."""
    return np.round(np.random.default_rng(seed).beta(2.0, 1.2, size=n), 4).tolist()


def _kit_ci(values, confidence):
    from scipy.stats import bootstrap

    res = bootstrap((np.asarray(values),), np.mean, confidence_level=confidence, n_resamples=40000,
                    method="percentile", rng=np.random.default_rng(0))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _kit_case(values, confidence, n_resamples):
    return _kit_ci(values, confidence)


BOOT_CASES = [Args(_scores(1, 30), 0.95, 20000), Args(_scores(2, 40), 0.9, 20000), Args(_scores(3, 25), 0.8, 20000)]


def _narrow(values, confidence, n_resamples):  # alpha instead of alpha / 2 at each end
    means = np.random.default_rng(0).choice(values, size=(n_resamples, len(values))).mean(1)
    return float(np.quantile(means, 1 - confidence)), float(np.quantile(means, confidence))


def _data_spread(values, confidence, n_resamples):  # quantiles of the items, not of the resampled means
    a = (1 - confidence) / 2
    return float(np.quantile(values, a)), float(np.quantile(values, 1 - a))


def _no_replacement(values, confidence, n_resamples):  # a permutation has the same mean every time
    return float(np.mean(values)), float(np.mean(values))


q1 = Exercise(
    "q1", lab="lab07", title="A percentile bootstrap interval",
    # the learner's resampling differs from the kit's: with 20000 resamples the ends move by ~0.001, the tolerance
    # is 0.006, and the typical mistakes are off by more than 0.015 on every case
    checker=expect_function(_kit_case, BOOT_CASES, abs_tol=0.006, mistakes=[
        (_narrow, "the interval is too narrow: for a 95% interval cut 2.5% off each end, (1 - confidence) / 2."),
        (_data_spread, ("that is the spread of the items themselves; the interval is for their MEAN: take quantiles "
                       "of the resampled means.")),
        (_no_replacement, "draw WITH replacement: a resample without it has the same mean every time."),
    ]),
    hints=("Resample the items with replacement, n_resamples times, and take the mean of each resample.",
           "rng = np.random.default_rng(0); means = rng.choice(values, size=(n_resamples, len(values))).mean(1)",
           "The ends are the quantiles (1 - confidence) / 2 and 1 - (1 - confidence) / 2 of those means."),
    solution_code="def my_bootstrap_ci(values, confidence, n_resamples):\n"
                  "    rng = np.random.default_rng(0)\n"
                  "    means = rng.choice(values, size=(n_resamples, len(values))).mean(1)\n"
                  "    tail = (1 - confidence) / 2\n"
                  "    return np.quantile(means, tail), np.quantile(means, 1 - tail)",
)

# ---- q2: McNemar's decision from a 2x2 table ------------------------------------------------------------------------

TABLES = [Args([[50, 12], [4, 34]]), Args([[30, 3], [9, 58]]), Args([[61, 9], [2, 28]]), Args([[20, 7], [7, 10]]),
          Args([[10, 0], [0, 5]])]


def _mcnemar_p(table):
    return mcnemar_from_table(table).p_value


def _chi2_p(table):
    from scipy.stats import chi2

    b, c = table[0][1], table[1][0]
    return 1.0 if b + c == 0 else float(chi2.sf((b - c) ** 2 / (b + c), 1))


def _concordant_p(table):
    from scipy.stats import binomtest

    a, d = table[0][0], table[1][1]
    return float(binomtest(a, a + d, 0.5).pvalue)


def _one_sided_p(table):
    from scipy.stats import binomtest

    b, c = table[0][1], table[1][0]
    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5, alternative="greater").pvalue)


q2 = Exercise(
    "q2", lab="lab07", title="McNemar's exact test from a 2x2 table",
    checker=expect_function(_mcnemar_p, TABLES, rel_tol=1e-6, abs_tol=1e-9, mistakes=[
        (_concordant_p, ("the items both runs got right (or both wrong) say nothing about which is better: use only "
                        "the two off-diagonal cells.")),
        (_chi2_p, ("that is the chi-square approximation; this asks for the exact test, a binomial test of b out of "
                  "b + c at one half.")),
        (_one_sided_p, "the question is 'do they differ?', in either direction: a two-sided test."),
    ]),
    hints=("Only the discordant items count: b = A right and B wrong, c = A wrong and B right.",
           "If the runs were equally good, b would be Binomial(b + c, 1/2).",
           "scipy.stats.binomtest(b, b + c, 0.5).pvalue (two-sided); with b + c = 0 there is no evidence: p = 1."),
    solution_code="from scipy.stats import binomtest\n\n"
                  "def my_mcnemar_p(table):\n"
                  "    b, c = table[0][1], table[1][0]\n"
                  "    return 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue",
)

# ---- q3: ECE from binned confidences --------------------------------------------------------------------------------


def _conf_case(seed: int, n: int, shrink: float):
    rng = np.random.default_rng(seed)
    conf = np.round(rng.uniform(0.2, 1.0, size=n), 3)
    correct = (rng.random(n) < conf * shrink).astype(int)
    return Args(conf.tolist(), correct.tolist(), 10)


ECE_CASES = [_conf_case(1, 200, 0.8), _conf_case(2, 120, 1.0), Args([0.95, 0.9, 0.85, 0.3, 1.0], [1, 0, 1, 0, 1], 5),
             _conf_case(3, 80, 0.6)]


def _unweighted(conf, correct, n_bins):
    conf, correct = np.asarray(conf, float), np.asarray(correct, float)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    gaps = [abs(correct[bins == k].mean() - conf[bins == k].mean()) for k in range(n_bins) if (bins == k).any()]
    return float(np.mean(gaps))


def _max_gap(conf, correct, n_bins):
    conf, correct = np.asarray(conf, float), np.asarray(correct, float)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    return float(max(abs(correct[bins == k].mean() - conf[bins == k].mean()) for k in range(n_bins)
                     if (bins == k).any()))


def _overall(conf, correct, n_bins):
    return float(abs(np.mean(correct) - np.mean(conf)))


q3 = Exercise(
    "q3", lab="lab07", title="Expected calibration error from binned confidences",
    checker=expect_function(ece, ECE_CASES, rel_tol=1e-6, abs_tol=1e-9, mistakes=[
        (_unweighted, "weight each bin's gap by the share of items in it: a bin with 2 items should count little."),
        (_max_gap, "that is the maximum calibration error (the worst bin); ECE averages the gaps, weighted."),
        (_overall, ("over-confidence in one bin and under-confidence in another cancel out that way: take the gap per "
                   "bin first.")),
    ]),
    hints=("Split [0, 1] into n_bins equal bins by confidence (a confidence of exactly 1.0 goes in the last).",
           "In each non-empty bin: gap = |accuracy in the bin - mean confidence in the bin|.",
           ("ECE = sum over bins of (items in the bin / all items) * gap. "
           "bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)")),
    solution_code="def my_ece(confidence, correct, n_bins):\n"
                  "    conf, correct = np.asarray(confidence, float), np.asarray(correct, float)\n"
                  "    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)\n"
                  "    total = 0.0\n"
                  "    for k in range(n_bins):\n"
                  "        inside = bins == k\n"
                  "        if inside.any():\n"
                  "            total += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())\n"
                  "    return total",
)

# ---- q4: the minimum detectable difference --------------------------------------------------------------------------

MDD_CASES = [Args(200, 0.7), Args(1000, 0.5), Args(50, 0.9), Args(400, 0.8, alpha=0.01), Args(300, 0.6, power=0.9)]


def _mdd(n, p, alpha=0.05, power=0.8):
    return min_detectable_difference(n, p, alpha=alpha, power=power)


def _one_sample(n, p, alpha=0.05, power=0.8):
    from scipy.stats import norm

    return (norm.ppf(1 - alpha / 2) + norm.ppf(power)) * math.sqrt(p * (1 - p) / n)


def _no_power(n, p, alpha=0.05, power=0.8):
    from scipy.stats import norm

    return norm.ppf(1 - alpha / 2) * math.sqrt(2 * p * (1 - p) / n)


def _one_sided(n, p, alpha=0.05, power=0.8):
    from scipy.stats import norm

    return (norm.ppf(1 - alpha) + norm.ppf(power)) * math.sqrt(2 * p * (1 - p) / n)


q4 = Exercise(
    "q4", lab="lab07", title="The minimum detectable difference",
    checker=expect_function(_mdd, MDD_CASES, rel_tol=1e-4, mistakes=[
        (_one_sample, "two runs means two noisy scores: the variance of their difference is 2·p(1-p)/n."),
        (_no_power, ("with z for alpha only, a real gain of that size is detected just half the time: add "
                    "z_power = norm.ppf(power).")),
        (_one_sided, "the test is two-sided ('do they differ?'): use norm.ppf(1 - alpha / 2)."),
    ]),
    hints=("The standard error of one accuracy on n items is sqrt(p(1-p)/n); of a difference of two, sqrt(2p(1-p)/n).",
           "A gain is detectable when it stands z_{1-alpha/2} standard errors from zero, with power: add z_power.",
           "MDD = (norm.ppf(1 - alpha/2) + norm.ppf(power)) * sqrt(2 * p * (1 - p) / n), scipy.stats.norm."),
    solution_code="from scipy.stats import norm\n\n"
                  "def my_mdd(n, p, alpha=0.05, power=0.8):\n"
                  "    return (norm.ppf(1 - alpha / 2) + norm.ppf(power)) * math.sqrt(2 * p * (1 - p) / n)",
)

# ---- q5: is this 1.5-point gain at n = 200 significant? --------------------------------------------------------------

q5 = Exercise(
    "q5", lab="lab07", title="Is a 1.5-point gain on 200 items real?",
    checker=expect_value(min_detectable_difference(200, 0.7) <= 0.015, mistakes=[
        (True, "compare 0.015 with the minimum detectable difference at n = 200 and p = 0.7 (your q4 function).")]),
    hints=("Compute the minimum detectable difference for n = 200 items at a base accuracy of 0.7.",
           "A gain below it cannot be told apart from noise with this test set."),
    solution_code="gain_is_detectable = my_mdd(200, 0.7) <= 0.015  # False: the MDD is far larger than 1.5 points",
)
