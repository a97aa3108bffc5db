"""Lab 04 cleaning stages: each tool on small cases, the whole pipeline scored against the planted ground truth, and
the errors for bad input."""

import datasets
import pytest

from labkit.chapters.ch04_data_curation import cleaning, look
from labkit.core import LabkitError
from labkit.data import load_instructions, load_raw_instructions, load_raw_truth


@pytest.fixture(scope="module")
def raw():
    return load_raw_instructions()


@pytest.fixture(scope="module")
def result(raw):
    return cleaning.clean(raw, load_instructions()["test"], load_raw_truth("instructions"), kind="instructions")


def test_pipeline_scores_each_stage_against_the_truth(result, raw):
    table = result.table
    assert list(table.index) == list(cleaning.STAGES)
    assert table.loc["rules", "rows in"] == len(raw) == 1362
    for stage in ("rules", "exact_dedup", "personal_data"):  # what rules and regexes can find exactly
        assert table.loc[stage, "precision"] == table.loc[stage, "recall"] == 1.0, stage
    # the fuzzy stages at their defaults (Jaccard 0.7, 3-grams at 0.7): the measured trade-off, pinned
    assert table.loc["near_dedup", ["flagged", "correct"]].tolist() == [67, 48]
    assert table.loc["contamination", ["flagged", "correct", "planted"]].tolist() == [37, 30, 30]
    assert len(result.clean) == 1126 and set(result.clean.column_names) == set(raw.column_names)
    masked = " ".join(result.clean["instruction"])
    assert "[EMAIL]" in masked and "@" not in masked


def test_threshold_sweep_trades_precision_for_recall(raw):
    mh = cleaning.add_minhash(raw, "instructions")
    test, truth = load_instructions()["test"], load_raw_truth("instructions")
    low, high = (cleaning.clean(raw, test, truth, kind="instructions", threshold=t, minhashed=mh).table.loc["near_dedup"]
                 for t in (0.5, 0.9))
    assert low.recall > high.recall and low.precision < high.precision


def test_jaccard_shingles_and_minhash_agree():
    a, b = cleaning.shingles("What is 17 + 25? => 42"), cleaning.shingles("What is 17 + 25? Thanks! => 42")
    assert "17 +" in a and "? =" in a
    exact = len(a & b) / len(a | b)
    ds = datasets.Dataset.from_list([{"id": 0, "instruction": "What is 17 + 25?", "answer": "42"},
                                     {"id": 1, "instruction": "What is 17 + 25? Thanks!", "answer": "42"},
                                     {"id": 2, "instruction": "Sort ascending: 3, 1, 2.", "answer": "1, 2, 3"}])
    hashed = cleaning.add_minhash(ds, "instructions", num_perm=256)
    from datasketch import LeanMinHash

    m0, m1 = (LeanMinHash(seed=1, hashvalues=hashed[i]["minhash"], scheme=cleaning.SCHEME) for i in (0, 1))
    assert abs(m0.jaccard(m1) - exact) < 0.15
    assert cleaning.near_duplicates(hashed, 0.5) == {1: 0}
    assert cleaning.near_duplicates(hashed, 1.0) == {}
    assert cleaning.shingles("abcdef", 3, unit="char") == {"abc", "bcd", "cde", "def"}


def test_rules_exact_dedup_masking_and_contamination():
    limits = cleaning.rule_thresholds(0.5)
    assert cleaning.rule_reason("", limits) == "too short"
    assert cleaning.rule_reason("What is 7 * 8?", limits) == ""  # multiplication is not boilerplate
    assert cleaning.rule_reason("Buy now! " + "Click here to subscribe! " * 5, limits) == "repetition"
    assert cleaning.rule_reason("Follow us >>> @@@ ### $$$", limits) == "symbols"
    assert cleaning.rule_reason("Extract name, species and", limits) == "no end punctuation"
    assert cleaning.rule_reason("Extract name, species and", cleaning.rule_thresholds(0.0)) == ""
    assert cleaning.rule_reason("word " * 200 + ".", limits) == "too long"
    ds = datasets.Dataset.from_list([{"id": 5, "text": "Feed Pip.", "label": "feed"},
                                     {"id": 6, "text": "feed  pip.", "label": "feed"},
                                     {"id": 7, "text": "Feed Pip.", "label": "heal"}])
    assert cleaning.exact_duplicates(ds, "intents") == {6: 5}
    assert cleaning.mask_personal("Mail mara.pip@cinderpeak.example or call (555) 555-0123 or 212-555-0199.") == \
        "Mail [EMAIL] or call [PHONE] or [PHONE]."
    assert cleaning.mask_personal("Reformat 2024-03-07 as DD/MM/YYYY.") == "Reformat 2024-03-07 as DD/MM/YYYY."
    found = cleaning.contamination(["Q: What is 17 + 25? 42", "Sort these"], ["What is 10 + 1? 11",
                                                                              "What is 17 + 25? 42"], n=3)
    assert found[0] == (pytest.approx(3 / 4), 1) and found[1] == (0.0, -1)


def test_dedup_scoring_accepts_either_member_of_a_planted_pair():
    truth = {0: ("none", None), 1: ("exact_duplicate", 0), 2: ("none", None), 3: ("none", None)}
    assert cleaning.score_flags({0}, {"exact_duplicate"}, truth, matches={0: 1})["precision"] == 1.0
    s = cleaning.score_flags({3}, {"exact_duplicate"}, truth, matches={3: 2})
    assert s["precision"] == 0.0 and s["recall"] == 0.0 and s["planted"] == 1


def test_look_counts(raw):
    dups = look.duplicate_counts(raw, kind="instructions")
    assert dups["exact"] == 60 and dups["normalised"] >= dups["exact"]
    samples = look.defect_samples(raw, load_raw_truth("instructions"), kind="instructions")
    assert len(samples) == 9
    assert look.balance(raw, kind="instructions").sum() == len(raw)


@pytest.mark.parametrize("bad", [0, 0.0, 1.5, -0.2, "0.7", True, None])
def test_threshold_outside_0_1_is_refused(bad, raw):
    with pytest.raises(LabkitError, match=r"\(0, 1\]"):
        cleaning.clean(raw, [], {}, kind="instructions", threshold=bad)
    with pytest.raises(LabkitError, match=r"\(0, 1\]"):
        cleaning.near_duplicates(raw, bad)


def test_other_bad_input_says_what_to_do(raw):
    with pytest.raises(LabkitError, match="lacks the columns"):
        cleaning.clean(raw.remove_columns("answer"), [], {}, kind="instructions")
    with pytest.raises(LabkitError, match="lacks the columns"):
        cleaning.exact_duplicates(load_instructions()["test"], "instructions")  # no id column
    with pytest.raises(LabkitError, match="Unknown kind"):
        cleaning.fields_of(raw, "corpus")
    with pytest.raises(LabkitError, match="strictness"):
        cleaning.rule_thresholds(2)
    with pytest.raises(LabkitError, match="minhash"):
        cleaning.near_duplicates(raw, 0.7)
    with pytest.raises(LabkitError, match="positive whole number"):
        cleaning.contamination(["a"], ["a"], n=0)
    with pytest.raises(LabkitError, match="'word' or 'char'"):
        cleaning.shingles("abc", unit="byte")
