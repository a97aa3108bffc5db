"""Lab 01e splits: derived template ids, near-duplicates, grouped and k-fold splits, and their bad-input errors."""

import pytest

import labkit as lk
from labkit.chapters.ch01e_baselines import splits


def test_every_intent_message_gets_its_template():
    intents = lk.load_intents()
    train = splits.template_ids(intents["train"])
    assert not any(t.endswith("?") for t in train) and len(set(train)) == 102  # 12-14 templates x 8 labels
    assert not any("held" in t for t in train)  # held-out phrasings never appear in train (data/README.md)
    assert any("held" in t for t in splits.template_ids(intents["test"]))
    assert splits.template_id("Hi, How do I teach Pip flame control? Thanks!", "train") == "train/0"


def test_near_duplicates():
    assert splits.jaccard("The red dragon", "the red DRAGON flies") == pytest.approx(0.75)
    assert splits.near_duplicate_pairs(["a b c d", "x y"], ["a b c d", "a b", "q"], threshold=0.5) == 2
    with pytest.raises(lk.LabkitError, match="Jaccard"):
        splits.near_duplicate_pairs(["a"], ["a"], threshold=0)


def test_group_split_keeps_groups_whole():
    groups = ["a", "a", "b", "b", "c", "c", "d", "d"]
    train, test = splits.group_split(groups, test_size=0.25, seed=0)
    assert {groups[i] for i in train}.isdisjoint({groups[i] for i in test}) and len(train) + len(test) == 8
    train, test = splits.random_split(8, test_size=0.25, seed=0)
    assert len(test) == 2 and sorted(train + test) == list(range(8))


@pytest.mark.parametrize("call, says", [
    (lambda: splits.group_split(["a"] * 6), "empty split"),
    (lambda: splits.group_split(["a", "a", "a", "b"], test_size=0.9), "empty training split"),
    (lambda: splits.group_split(["a", "b"], test_size=1), "test_size"),
    (lambda: splits.check_folds(1, 10), "at least 2 folds"),
    (lambda: splits.check_folds(11, 10), "larger than the data set"),
    (lambda: splits.imbalanced_subset([{"text": "x", "label": "feed"}], {"feed": 2}), "Only 1 rows"),
    (lambda: splits.inflation_table([{"text": "x", "label": "a"}], ["g1", "g2"]), "one group per row"),
])
def test_bad_input_is_explained(call, says):
    with pytest.raises(lk.LabkitError, match=says):
        call()


def test_stratified_folds_keep_every_label():
    rows = [{"text": f"feed the dragon {i}", "label": "feed"} for i in range(15)]
    rows += [{"text": f"fire in the barn {i}", "label": "report_fire"} for i in range(5)]
    strat = splits.kfold_scores(rows, n_splits=5, stratified=True)
    assert len(strat) == 5 and (strat["labels_missing"] == 0).all() and (strat["test"] == 4).all()
    assert set(splits.fold_spread(strat)) == {"mean", "std", "min", "max"}
