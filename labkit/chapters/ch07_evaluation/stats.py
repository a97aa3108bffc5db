"""Intervals and tests for scores: scipy's bootstrap for confidence intervals, a paired bootstrap of a difference,
McNemar's exact test (scipy's binomial test on the discordant pairs) and the minimum detectable difference.

>>> ci = bootstrap_ci(correct, "accuracy")  # doctest: +SKIP
>>> ci.low, ci.value, ci.high  # doctest: +SKIP
>>> mcnemar(lora_correct, probe_correct).p_value  # doctest: +SKIP
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from ...core import LabkitError

METRICS = ("accuracy", "macro_f1", "exact_match", "mean")  # "mean": any per-item score (a probability, token F1)
N_RESAMPLES = 2000  # bootstrap resamples: the percentile endpoints move by well under a point between seeds


@dataclass
class Interval:
    """A score with its bootstrap confidence interval."""

    metric: str  # which score
    value: float  # the score on all items
    low: float  # lower end of the interval
    high: float  # upper end
    confidence: float  # e.g. 0.95
    n: int  # items scored

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] ({self.confidence:.0%} CI, n={self.n})"


def check_confidence(confidence) -> float:
    """``confidence`` as a float in (0, 1), or a LabkitError."""
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0 < confidence < 1:
        raise LabkitError(f"confidence must be a level strictly between 0 and 1 (e.g. 0.95 for a 95% interval), "
                          f"got {confidence!r}.")
    return float(confidence)


def macro_f1(y_true, y_pred, labels, axis=-1):
    """Macro-F1 over ``labels`` along the last axis (many resamples at once); one value per row.

    The same score as ``sklearn.metrics.f1_score(average="macro", labels=labels, zero_division=0)`` (a test holds
    them equal), counted with numpy so that thousands of bootstrap resamples take milliseconds.
    """
    import numpy as np

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    scores = []
    for k in labels:
        t, p = y_true == k, y_pred == k
        tp = (t & p).sum(axis)
        wrong = (t ^ p).sum(axis)  # false positives + false negatives
        scores.append(np.where(2 * tp + wrong > 0, 2 * tp / np.maximum(2 * tp + wrong, 1), 0.0))
    return np.mean(scores, axis=0)


def _metric_fn(metric: str, labels=None):
    import numpy as np

    if metric not in METRICS:
        raise LabkitError(f"Unknown metric {metric!r} for this task: use one of {', '.join(METRICS)}.")
    if metric == "macro_f1":
        return lambda y_true, y_pred, axis=-1: macro_f1(y_true, y_pred, labels, axis)
    return lambda correct, axis=-1: np.mean(correct, axis=axis)


def _columns(metric: str, data) -> tuple:
    """The per-item arrays a metric needs: (correct,) or (y_true, y_pred)."""
    import numpy as np

    if metric == "macro_f1":
        if not isinstance(data, tuple) or len(data) != 2:
            raise LabkitError("macro_f1 needs the items' (y_true, y_pred) as a pair of equal-length sequences.")
        y_true, y_pred = (np.asarray(x) for x in data)
        if len(y_true) != len(y_pred):
            raise LabkitError(f"y_true has {len(y_true)} items and y_pred {len(y_pred)}: score the same items.")
        return y_true, y_pred
    correct = np.asarray(data, dtype=float)
    if correct.ndim != 1 or metric != "mean" and not np.isin(correct, (0.0, 1.0)).all():
        raise LabkitError(f"{metric} needs one 0/1 (or True/False) value per item; use metric='mean' for other "
                          "per-item scores.")
    return (correct,)


def bootstrap_ci(data, metric: str = "accuracy", *, confidence: float = 0.95, n_resamples: int = N_RESAMPLES,
                 seed: int = 0, labels=None) -> Interval:
    """A percentile bootstrap interval (``scipy.stats.bootstrap``) for a score over items.

    ``data``: per-item 0/1 correctness for accuracy and exact match, or ``(y_true, y_pred)`` for macro-F1
    (resampled together, item by item).

    >>> bootstrap_ci([1, 0, 1, 1, 0, 1, 1, 1], "accuracy")  # doctest: +SKIP
    """
    import numpy as np
    from scipy.stats import bootstrap

    confidence = check_confidence(confidence)
    cols = _columns(metric, data)
    if metric == "macro_f1" and labels is None:
        labels = sorted(set(cols[0].tolist()) | set(cols[1].tolist()))
    fn = _metric_fn(metric, labels)
    n = len(cols[0])
    if n < 2:
        raise LabkitError(f"A bootstrap interval needs at least 2 scored items, got {n}.")
    value = float(fn(*cols))
    if metric != "macro_f1" and np.ptp(cols[0]) == 0:
        return Interval(metric, value, value, value, confidence, n)  # every item the same: no spread to resample
    res = bootstrap(cols, fn, paired=True, vectorized=True, confidence_level=confidence,
                    n_resamples=n_resamples, method="percentile", rng=np.random.default_rng(seed))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return Interval(metric, value, low, high, confidence, n)


def _paired(a, b, what: str = "runs"):
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise LabkitError(f"The two {what} were scored on different items ({len(a)} vs {len(b)}): score both on the "
                          "same items, in the same order.")
    return a, b


def check_same_items(ids_a, ids_b) -> None:
    """Raise unless two runs were scored on the same item ids in the same order."""
    if list(ids_a) != list(ids_b):
        raise LabkitError("The two runs were scored on different items: evaluate both on the same test items (same "
                          "ids, same order) before comparing them.")


@dataclass
class PairedResult:
    """A paired comparison of run A against run B on the same items."""

    diff: float  # score(A) - score(B)
    low: float  # bootstrap interval of the difference
    high: float
    p_value: float  # two-sided: share of resampled differences on the other side of zero, doubled
    confidence: float
    n: int

    @property
    def significant(self) -> bool:
        """True when the interval of the difference excludes zero."""
        return self.low > 0 or self.high < 0


def paired_bootstrap(a, b, metric: str = "accuracy", *, confidence: float = 0.95, n_resamples: int = N_RESAMPLES,
                     seed: int = 0, labels=None) -> PairedResult:
    """The difference of a score between two runs on the same items, resampling items (both runs together).

    ``a``, ``b``: per-item correctness, or ``(y_true, y_pred)`` pairs for macro-F1 with the same ``y_true``.
    """
    import numpy as np
    from scipy.stats import bootstrap

    confidence = check_confidence(confidence)
    if metric == "macro_f1":
        (ta, pa), (tb, pb) = _columns(metric, a), _columns(metric, b)
        labels = labels if labels is not None else sorted(set(ta.tolist()) | set(pa.tolist()) | set(pb.tolist()))
        if len(ta) != len(tb) or not np.array_equal(ta, tb):
            raise LabkitError("The two runs were scored on different items (their y_true differ): score both on the "
                              "same items, in the same order.")
        cols = (ta, pa, pb)
    fn = _metric_fn(metric, labels)
    if metric == "macro_f1":

        def stat(t, p, q, axis=-1):
            return fn(t, p) - fn(t, q)
    else:
        cols = _paired(_columns(metric, a)[0], _columns(metric, b)[0])

        def stat(x, y, axis=-1):
            return np.mean(x, axis=axis) - np.mean(y, axis=axis)
    n = len(cols[0])
    diff = float(stat(*cols))
    rng = np.random.default_rng(seed)
    res = bootstrap(cols, stat, paired=True, vectorized=True, confidence_level=confidence,
                    n_resamples=n_resamples, method="percentile", rng=rng)
    dist = np.asarray(res.bootstrap_distribution)
    if np.all(dist == diff):
        p = 1.0 if diff == 0 else 0.0
    else:
        p = float(min(1.0, 2 * min((dist <= 0).mean(), (dist >= 0).mean())))
    return PairedResult(diff, float(res.confidence_interval.low), float(res.confidence_interval.high), p,
                        confidence, n)


@dataclass
class McNemar:
    """McNemar's exact test on two runs' per-item correctness."""

    table: object  # 2x2 numpy array: rows A right/wrong, columns B right/wrong
    b: int  # A right, B wrong
    c: int  # A wrong, B right
    p_value: float  # two-sided exact binomial test of b against b + c at one half

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha


def contingency(a, b):
    """The 2x2 table of two runs' correctness: [[both right, A only], [B only, both wrong]]."""
    import numpy as np

    a, b = _paired(a, b)
    a, b = a.astype(bool), b.astype(bool)
    return np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])


def mcnemar_from_table(table) -> McNemar:
    """McNemar's exact test from a 2x2 table: only the discordant cells (b, c) count."""
    import numpy as np
    from scipy.stats import binomtest

    table = np.asarray(table)
    if table.shape != (2, 2) or (table < 0).any():
        raise LabkitError("McNemar's test needs a 2x2 table of non-negative counts [[both, A only], [B only, "
                          "neither]].")
    b, c = int(table[0, 1]), int(table[1, 0])
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)
    return McNemar(table=table, b=b, c=c, p_value=p)


def mcnemar(a, b) -> McNemar:
    """McNemar's exact test on two runs' per-item 0/1 correctness (same items, same order)."""
    return mcnemar_from_table(contingency(a, b))


def min_detectable_difference(n: int, p: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest accuracy gain two independent test sets of ``n`` items each detect at ``alpha`` with ``power``,
    at a base accuracy ``p`` (the normal approximation for two proportions: (z_{1-a/2} + z_power)·sqrt(2p(1-p)/n))."""
    from scipy.stats import norm

    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise LabkitError(f"n must be a positive whole number of test items, got {n!r}.")
    if not 0 < p < 1:
        raise LabkitError(f"p must be a base accuracy strictly between 0 and 1, got {p!r}.")
    check_confidence(1 - alpha)
    check_confidence(power)
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * math.sqrt(2 * p * (1 - p) / n))


def items_needed(gain: float, p: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """Test items needed before a gain of ``gain`` (e.g. 0.02) at base accuracy ``p`` is detectable."""
    from scipy.stats import norm

    if not 0 < gain < 1:
        raise LabkitError(f"gain must be a difference of accuracy in (0, 1), e.g. 0.02 for 2 points, got {gain!r}.")
    if not 0 < p < 1:
        raise LabkitError(f"p must be a base accuracy strictly between 0 and 1, got {p!r}.")
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    return math.ceil(2 * p * (1 - p) * (z / gain) ** 2)


def mdd_table(sizes, p: float, **kw):
    """Minimum detectable difference per test-set size: a DataFrame n, mdd."""
    import pandas as pd

    return pd.DataFrame({"n": list(sizes), "mdd": [min_detectable_difference(int(n), p, **kw) for n in sizes]})
