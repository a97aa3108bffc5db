"""Lab 07 statistics: bootstrap intervals (scipy), the paired bootstrap, McNemar's exact test, the minimum detectable
difference, calibration and drift, each on hard-coded data, and every bad input rejected with a LabkitError."""

import numpy as np
import pytest

from labkit.chapters.ch07_evaluation import calibration, drift, stats
from labkit.core import LabkitError


def test_bootstrap_ci_brackets_the_score_and_narrows_with_confidence():
    correct = np.array([1] * 30 + [0] * 10)
    wide = stats.bootstrap_ci(correct, "accuracy", confidence=0.95)
    narrow = stats.bootstrap_ci(correct, "accuracy", confidence=0.8)
    assert wide.value == 0.75 and wide.n == 40
    # the standard error is sqrt(.75 * .25 / 40) = 0.068: a 95% interval spans about +-0.13
    assert 0.58 < wide.low < 0.66 and 0.84 < wide.high < 0.91
    assert wide.low < narrow.low < narrow.high < wide.high
    assert stats.bootstrap_ci([1, 1, 1], "exact_match").low == 1.0  # nothing varies: a zero-width interval


def test_macro_f1_matches_sklearn_and_its_interval():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 8, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 8, 300))
    assert stats.macro_f1(y_true, y_pred, range(8)) == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    ci = stats.bootstrap_ci((y_true, y_pred), "macro_f1", labels=list(range(8)))
    assert ci.low < ci.value < ci.high


def test_paired_bootstrap_and_mcnemar():
    a = np.array([1] * 40 + [0] * 10 + [1] * 12 + [0] * 38)
    b = np.array([1] * 40 + [0] * 10 + [0] * 12 + [0] * 38)  # a is right on 12 more items, never worse
    paired = stats.paired_bootstrap(a, b)
    assert paired.diff == pytest.approx(0.12) and paired.significant and paired.low > 0
    test = stats.mcnemar(a, b)
    assert (test.b, test.c) == (12, 0)
    assert test.p_value == pytest.approx(2 * 0.5 ** 12)  # exact two-sided binomial: 2 x (1/2)^12
    same = stats.paired_bootstrap(a, a)
    assert same.diff == 0 and not same.significant
    assert stats.mcnemar_from_table([[5, 0], [0, 5]]).p_value == 1.0
    assert stats.mcnemar_from_table([[50, 12], [4, 34]]).p_value == pytest.approx(0.0768127, abs=1e-6)


def test_min_detectable_difference():
    # (z_0.975 + z_0.8) * sqrt(2 * 0.7 * 0.3 / 200) = (1.95996 + 0.84162) * 0.045826
    assert stats.min_detectable_difference(200, 0.7) == pytest.approx(0.128385, abs=1e-5)
    assert stats.items_needed(0.02, 0.7) == 8242
    table = stats.mdd_table([100, 400], 0.5)
    assert table["mdd"][0] == pytest.approx(2 * table["mdd"][1])  # four times the items, half the MDD


@pytest.mark.parametrize("call", [
    lambda: stats.bootstrap_ci([1, 0, 1], "bleu"),  # a metric unknown to the task
    lambda: stats.bootstrap_ci([1, 0, 1], confidence=1.0),
    lambda: stats.bootstrap_ci([1, 0, 1], confidence=0),
    lambda: stats.bootstrap_ci([1, 0, 0.5]),  # accuracy needs 0/1 per item
    lambda: stats.bootstrap_ci([1]),
    lambda: stats.bootstrap_ci([1, 0], "macro_f1"),  # needs (y_true, y_pred)
    lambda: stats.paired_bootstrap([1, 0, 1], [1, 0]),  # runs scored on different items
    lambda: stats.paired_bootstrap(([0, 1], [0, 1]), ([1, 0], [1, 0]), "macro_f1"),
    lambda: stats.paired_bootstrap([1, 0, 1], [1, 0, 0], confidence=1.5),
    lambda: stats.mcnemar([1, 0], [1, 0, 1]),
    lambda: stats.mcnemar_from_table([[1, 2, 3]]),
    lambda: stats.check_same_items([0, 1, 2], [0, 2, 1]),
    lambda: stats.min_detectable_difference(0, 0.5),
    lambda: stats.min_detectable_difference(100, 1.0),
    lambda: stats.items_needed(0, 0.5),
])
def test_stats_reject_bad_input(call):
    with pytest.raises(LabkitError):
        call()


def test_ece_and_reliability():
    conf = np.array([0.95, 0.9, 0.85, 0.3, 1.0])
    correct = np.array([1, 0, 1, 0, 1])
    # 5 bins: [0.8, 1] holds 0.95, 0.9, 0.85, 1.0 (acc 0.75, conf 0.925); [0.2, 0.4) holds 0.3 (acc 0)
    assert calibration.ece(conf, correct, n_bins=5) == pytest.approx(0.8 * 0.175 + 0.2 * 0.3)
    table = calibration.reliability(conf, correct, n_bins=5)
    assert list(table["items"]) == [1, 4] and table["accuracy"].tolist() == pytest.approx([0.0, 0.75])
    ci = calibration.ece_ci(conf, correct, n_bins=5, n_resamples=200)
    assert ci.low <= ci.value <= ci.high


def test_temperature_scaling_recovers_a_known_temperature():
    from scipy.special import softmax

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(3000, 8))
    y = np.array([rng.choice(8, p=p) for p in softmax(logits / 2.0, axis=1)])  # labels drawn at T = 2
    t = calibration.fit_temperature(softmax(logits, axis=1), y)
    assert t == pytest.approx(2.0, rel=0.1)
    scaled = calibration.rescale(softmax(logits, axis=1), t)
    assert (scaled.argmax(1) == logits.argmax(1)).all()  # scaling never changes a prediction
    assert calibration.nll(scaled, y) < calibration.nll(softmax(logits, axis=1), y)


@pytest.mark.parametrize("call", [
    lambda: calibration.ece([0.5], [1], n_bins=0),
    lambda: calibration.ece([1.5, 0.2], [1, 0]),  # logits, not probabilities
    lambda: calibration.ece([0.5, 0.6], [1]),
    lambda: calibration.rescale(np.ones((2, 2)) / 2, 0),
    lambda: calibration.top_label(np.ones((3, 2)) / 2, [0, 1]),
    lambda: calibration.ece_ci([0.5, 0.6], [1, 0], confidence_level=2),
])
def test_calibration_rejects_bad_input(call):
    with pytest.raises(LabkitError):
        call()


def test_drift_signals():
    assert drift.psi([10, 20, 30], [10, 20, 30]) == 0
    # (0.5 - 0.25) ln 2 + (0.5 - 0.75) ln(2/3)
    assert drift.psi([25, 75], [50, 50]) == pytest.approx(0.25 * np.log(2) - 0.25 * np.log(2 / 3))
    assert drift.label_psi(["a", "a", "b"], ["a", "a", "b"], ["a", "b"]) == 0
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(300, 16))
    rows = [{"text": "x" * int(n), "label": "a"} for n in rng.integers(5, 50, 300)]
    long_rows = [{"text": "x" * int(n), "label": "b"} for n in rng.integers(60, 90, 60)]
    same = drift.drift_report(rows, rows[:60], ref, ref[:60], labels=["a", "b"])
    moved = drift.drift_report(rows, long_rows, ref, rng.normal(0.8, 1, size=(60, 16)), labels=["a", "b"])
    assert same.alerts == []
    assert len(moved.alerts) == 3 and all(moved.table["alert"])
    # a new slice larger than the reference, from the same population: chance gives a shift of about
    # sqrt(1/300 + 1/100) = 0.115 spreads, so the threshold is above 0 and no alert is raised
    bigger = rng.normal(size=(300, 16))
    threshold = drift.shift_threshold(ref[:100], sample=300)
    assert 0.1 < threshold < 0.3 and drift.embedding_shift(ref[:100], bigger) < threshold
    assert drift.embedding_shift(ref[:100], bigger + 0.3) > threshold  # 0.3 per dimension: a 0.3-spread shift


@pytest.mark.parametrize("call", [
    lambda: drift.psi([1, 2], [1, 2, 3]),
    lambda: drift.psi([0, 0], [1, 2]),
    lambda: drift.embedding_shift(np.ones((3, 4)), np.ones((3, 5))),
    lambda: drift.shift_threshold(np.ones((3, 4)), sample=0),
    lambda: drift.drift_report([], [{"text": "a", "label": "a"}], np.ones((1, 2)), np.ones((1, 2)), labels=["a"]),
])
def test_drift_rejects_bad_input(call):
    with pytest.raises(LabkitError):
        call()
