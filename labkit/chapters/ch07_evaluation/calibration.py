"""Calibration of a classifier: expected calibration error, a reliability diagram (scikit-learn's
``calibration_curve``) and temperature scaling (Guo et al. 2017) fitted on validation, checked on test.

>>> ece(proba.max(1), proba.argmax(1) == y)  # doctest: +SKIP
>>> t = fit_temperature(val_proba, y_val); ece_after = ece(*top_label(rescale(test_proba, t), y_test))  # doctest: +SKIP
"""

from __future__ import annotations

import numbers

from ...core import LabkitError


def _check_bins(n_bins) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral) or n_bins < 1:
        raise LabkitError(f"n_bins must be a positive whole number (e.g. 10), got {n_bins!r}.")
    return int(n_bins)


def top_label(proba, y_true):
    """(confidence of the predicted class, whether it is right) for each item."""
    import numpy as np

    proba, y_true = np.asarray(proba, dtype=float), np.asarray(y_true)
    if proba.ndim != 2 or len(proba) != len(y_true):
        raise LabkitError(f"proba must be [n_items, n_classes] with one row per label; got {proba.shape} for "
                          f"{len(y_true)} labels.")
    return proba.max(1), (proba.argmax(1) == y_true).astype(float)


def ece(confidence, correct, n_bins: int = 10) -> float:
    """Expected calibration error: |accuracy - mean confidence| per equal-width confidence bin, weighted by the
    bin's share of items (Naeini et al. 2015; Guo et al. 2017)."""
    import numpy as np

    n_bins = _check_bins(n_bins)
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    if len(confidence) != len(correct) or len(confidence) == 0:
        raise LabkitError("confidence and correct need one value per item, the same number of each (at least one).")
    if ((confidence < 0) | (confidence > 1)).any():
        raise LabkitError("confidences must lie in [0, 1]: pass probabilities, not logits.")
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)  # bin k holds (k/B, (k+1)/B]; 1.0 in the last
    total = 0.0
    for k in range(n_bins):
        inside = bins == k
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def reliability(confidence, correct, n_bins: int = 10):
    """The reliability diagram's table: per non-empty bin, mean confidence, accuracy and items (sklearn)."""
    import numpy as np
    import pandas as pd
    from sklearn.calibration import calibration_curve

    n_bins = _check_bins(n_bins)
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=int)
    accuracy, mean_conf = calibration_curve(correct, confidence, n_bins=n_bins, strategy="uniform")
    counts = np.bincount(np.minimum((confidence * n_bins).astype(int), n_bins - 1), minlength=n_bins)
    return pd.DataFrame({"confidence": mean_conf, "accuracy": accuracy, "items": counts[counts > 0]})


def rescale(proba, temperature: float):
    """Probabilities after dividing the log-probabilities by ``temperature`` (the ranking never changes)."""
    import numpy as np
    from scipy.special import softmax

    if not isinstance(temperature, numbers.Real) or not temperature > 0:
        raise LabkitError(f"temperature must be a positive number, got {temperature!r}.")
    return softmax(np.log(np.clip(np.asarray(proba, dtype=float), 1e-12, 1)) / temperature, axis=1)


def nll(proba, y_true) -> float:
    """Mean negative log-likelihood of the true labels."""
    import numpy as np

    proba = np.asarray(proba, dtype=float)
    return float(-np.log(np.clip(proba[np.arange(len(proba)), np.asarray(y_true)], 1e-12, 1)).mean())


def fit_temperature(proba, y_true) -> float:
    """The temperature that minimises the validation NLL (scipy's bounded scalar minimiser over log T)."""
    import math

    from scipy.optimize import minimize_scalar

    top_label(proba, y_true)  # shape check
    found = minimize_scalar(lambda log_t: nll(rescale(proba, math.exp(log_t)), y_true), bounds=(-3, 3),
                            method="bounded")
    return float(math.exp(found.x))


def plot_reliability(tables: dict):
    """A reliability diagram: accuracy against confidence per bin for each named table, with the diagonal."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, name="perfect")
    for name, table in tables.items():
        fig.add_scatter(x=table["confidence"], y=table["accuracy"], mode="lines+markers", name=name,
                        marker={"size": 4 + 14 * table["items"] / max(table["items"].max(), 1)})
    fig.update_layout(xaxis_title="confidence (mean per bin)", yaxis_title="accuracy in the bin", height=380,
                      title="Reliability diagram (marker size: items in the bin)")
    return fig


def ece_ci(confidence, correct, *, n_bins: int = 10, confidence_level: float = 0.95, n_resamples: int = 500,
           seed: int = 0):
    """ECE with a percentile bootstrap interval over items (scipy.stats.bootstrap): an ``Interval``.

    Read it with care: ECE is biased upwards on a resample (duplicated items make the bins noisier), so for a
    well-calibrated model the whole interval can sit above the point estimate. (scipy's BCa correction was tried and
    overshoots the other way on this statistic.) The interval still shows how much ECE moves with the test items.
    """
    import numpy as np
    from scipy.stats import bootstrap

    from .stats import Interval, check_confidence

    check_confidence(confidence_level)
    conf, corr = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    value = ece(conf, corr, n_bins)
    res = bootstrap((conf, corr), lambda c, k: ece(c, k, n_bins), paired=True, vectorized=False,
                    confidence_level=confidence_level, n_resamples=n_resamples, method="percentile",
                    rng=np.random.default_rng(seed))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return Interval("ece", value, low, high, confidence_level, len(conf))
