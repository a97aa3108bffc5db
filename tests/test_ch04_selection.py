"""Lab 04 selectors, budget curves, the noisy-label and active-learning probe, and the curation panel, on small
hand-made inputs (no model)."""

import math

import datasets
import numpy as np
import pytest

from labkit.chapters.ch04_data_curation import intents as probe_lab
from labkit.chapters.ch04_data_curation import selection
from labkit.chapters.ch04_data_curation.panel import curation_panel
from labkit.core import LabkitError
from labkit.data import load_instructions, load_raw_instructions, load_raw_truth


def _scores(n=8):
    rng = np.random.default_rng(0)
    return selection.PoolScores(ids=list(range(100, 100 + n)), loss_with=[0.5 + 0.1 * i for i in range(n)],
                                loss_without=[1.0] * (n - 1) + [0.1], answer_chars=[5, 40, 3, 9, 12, 1, 7, 30][:n],
                                hidden=rng.normal(size=(n, 4)), tokens=[20 + i for i in range(n)])


def test_ifd_and_rankings():
    assert selection.ifd(1.2, 1.5) == pytest.approx(math.exp(-0.3))
    s = _scores()
    assert s.ifd[-1] > 1  # rows whose instruction does not help (IFD >= 1) rank last
    assert selection.rank(s, "ifd")[0] == 104 and set(selection.rank(s, "ifd")[-3:]) == {105, 106, 107}
    assert selection.rank(s, "perplexity")[0] == 107
    assert selection.rank(s, "length")[:2] == [101, 107]
    assert sorted(selection.rank(s, "random")) == s.ids and selection.rank(s, "random", seed=1) != s.ids
    assert selection.select(s, "length", 0.25) == [101, 107]
    assert len(selection.select(s, "diversity", 0.5)) == 4
    assert selection.budget(8, 0.01) == 1 and selection.budget(1130, 0.05) == 56


def test_k_center_picks_far_apart_points():
    points = [[0, 0], [0.1, 0], [10, 0], [10, 0.1], [0, 10]]
    chosen = selection.k_center(points, 3, seed=0)
    assert len(set(chosen)) == 3
    groups = {0: "a", 1: "a", 2: "b", 3: "b", 4: "c"}
    assert {groups[i] for i in chosen} == {"a", "b", "c"}


@pytest.mark.parametrize("fraction", [0, 0.0, -0.1, 1.5, "half", True])
def test_fraction_outside_0_1_is_refused(fraction):
    with pytest.raises(LabkitError, match=r"fraction must be in \(0, 1\]"):
        selection.select(_scores(), "random", fraction)


def test_unknown_selector_is_refused():
    with pytest.raises(LabkitError, match="Unknown selector 'best'"):
        selection.select(_scores(), "best", 0.5)
    with pytest.raises(LabkitError, match="Unknown selector"):
        selection.rank(_scores(), "cherry")
    with pytest.raises(LabkitError, match="Unknown selector"):
        selection.budget_curve(None, None, _scores(), fractions=[0.5], selectors=["ifd", "oops"], eval_sets={})


class FakeRunner:
    num_steps, batch_size = 2, 4

    def __init__(self):
        self.seen = []

    def run(self, data, *, eval_sets, label):
        self.seen.append((label, sorted(data["id"])))
        return {"run": label, "examples": len(data), "loss_test": 1.0 / len(data), "time_s": 0.1}


def test_budget_curve_trains_each_selector_at_each_fraction():
    s = _scores()
    pool = datasets.Dataset.from_dict({"id": s.ids, "instruction": ["q"] * 8, "answer": ["a"] * 8})
    runner = FakeRunner()
    curve = selection.budget_curve(runner, pool, s, fractions=[0.25, 0.5], eval_sets={}, progress=False,
                                   full_row={"run": "all", "examples": 8, "loss_test": 0.125, "time_s": 1.0})
    assert len(runner.seen) == 2 * len(selection.SELECTORS)
    assert ("length 25%", [101, 107]) in runner.seen
    assert sorted(set(curve.fraction)) == [0.25, 0.5, 1.0] and len(curve) == 3 * len(selection.SELECTORS)


def test_score_pool_needs_ids():
    with pytest.raises(LabkitError, match="'id' column"):
        selection.score_pool(None, None, load_instructions()["test"])


# ---- noisy labels and active learning -------------------------------------------------------------------------------

def _clusters(n_per=40, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4, size=(k, 6))
    x = np.concatenate([c + rng.normal(size=(n_per, 6)) for c in centers])
    return x, np.repeat(np.arange(k), n_per)


def test_flip_labels_is_exact_and_seeded():
    y = np.arange(100) % 8
    noisy, flipped = probe_lab.flip_labels(y, 0.3, num_classes=8, seed=0)
    assert flipped.sum() == 30 and (noisy[flipped] != y[flipped]).all() and (noisy[~flipped] == y[~flipped]).all()
    assert (probe_lab.flip_labels(y, 0.3, num_classes=8, seed=0)[0] == noisy).all()
    assert probe_lab.flip_labels(y, 0.0, num_classes=8)[1].sum() == 0
    with pytest.raises(LabkitError, match="rate"):
        probe_lab.flip_labels(y, 1.0, num_classes=8)


def test_probe_learns_and_loss_finds_flipped_labels():
    x, y = _clusters()
    assert probe_lab.Probe(4).fit(x, y).accuracy(x, y) > 0.95
    noisy, flipped = probe_lab.flip_labels(y, 0.2, num_classes=4, seed=1)
    flagged, predicted = probe_lab.find_noisy(x, noisy, num_classes=4, budget=int(flipped.sum()))
    found = probe_lab.precision_recall(flagged, flipped)
    assert found["precision"] > 0.8 and found["recall"] > 0.8
    _xr, yr = probe_lab.repair(x, noisy, flagged, predicted, "relabel")
    assert len(yr) == len(y) and (yr == y).mean() > (noisy == y).mean()
    _xd, yd = probe_lab.repair(x, noisy, flagged, predicted, "drop")
    assert len(yd) == len(y) - len(flagged)
    with pytest.raises(LabkitError, match="'drop' or 'relabel'"):
        probe_lab.repair(x, noisy, flagged, predicted, "fix")
    with pytest.raises(LabkitError, match="budget"):
        probe_lab.find_noisy(x, noisy, num_classes=4, budget=-1)


def test_active_learning_curves_and_errors():
    x, y = _clusters()
    table = probe_lab.active_learning(x, y, x, y, num_classes=4, start=4, step=4, rounds=3, strategy="uncertainty")
    assert table.labelled.tolist() == [4, 8, 12, 16] and table.accuracy.iloc[-1] > 0.8
    with pytest.raises(LabkitError, match="Unknown strategy"):
        probe_lab.active_learning(x, y, x, y, num_classes=4, start=4, step=4, rounds=1, strategy="entropy")
    with pytest.raises(LabkitError, match="must fit in the pool"):
        probe_lab.active_learning(x, y, x, y, num_classes=4, start=4, step=100, rounds=3, strategy="random")


# ---- the curation panel (driven from code) --------------------------------------------------------------------------

def test_panel_follows_its_controls_and_trains_through_the_runner():
    raw = load_raw_instructions()
    ids = raw["id"][:40]
    rng = np.random.default_rng(0)
    scores = selection.PoolScores(ids=ids, loss_with=list(rng.random(40)), loss_without=[1.0] * 40,
                                  answer_chars=list(range(40)), hidden=rng.normal(size=(40, 3)), tokens=[30] * 40)
    runner = FakeRunner()
    panel = curation_panel(raw, load_instructions()["test"], load_raw_truth("instructions"), scores=scores,
                           runner=runner, eval_sets={}, tokens_per_s=100.0)
    before = panel.message.value
    panel.threshold.value = 0.5
    assert panel.message.value != before and panel.result.table.loc["near_dedup", "flagged"] > 100
    panel.fraction.value = 0.1
    panel.selector.value = "length"
    cost = panel.predicted_cost()
    assert cost["selected"] == len(panel.selected) and cost["predicted_s"] == pytest.approx(2 * 4 * 30 / 100.0)
    assert "planted defect" in panel.dropped_html.value
    assert list(panel.figure.data[0].x) == list(panel.result.table.index)
    panel.button.click()
    assert panel.last_run["examples"] == len(panel.selected) and "measured" in panel.trained.value
    with pytest.raises(LabkitError, match="PoolScores"):
        curation_panel(raw, [], {}, scores={"ifd": 1})
    no_runner = curation_panel(raw, load_instructions()["test"], load_raw_truth("instructions"), scores=scores)
    with pytest.raises(LabkitError, match="no runner"):
        no_runner.train()
