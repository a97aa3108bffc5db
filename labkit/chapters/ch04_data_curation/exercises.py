"""Lab 04 exercises: the Jaccard similarity of two shingle sets, the planted near-duplicates found with MinHash + LSH
(graded on precision and recall), the IFD score from two losses, and the contaminated test items."""

from __future__ import annotations

import functools
import math

from ...grading import Args, Exercise, NotAttempted, expect_function, is_placeholder

NEAR_BAR = 0.6  # precision and recall needed on the planted near-duplicates
LEAK_BAR = (0.75, 0.9)  # precision and recall needed on the contaminated test items

# ---- q1: the Jaccard similarity of two shingle sets ---------------------------------------------------------------


def _jaccard(a, b):
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 1.0


JACCARD_CASES = [Args({"a", "b", "c", "d"}, {"c", "d", "e"}),  # first: tells Jaccard, overlap, containment, Dice apart
                 Args({"ab", "bc", "cd"}, {"bc", "cd", "de"}), Args({"x"}, {"x"}), Args({"a", "b"}, {"c"}),
                 Args({"a", "b", "c", "d"}, {"a"}), Args(set(), {"a", "b"}), Args({1, 2, 3, 4, 5}, {4, 5, 6})]

q1 = Exercise(
    "q1", lab="lab04", title="The Jaccard similarity of two shingle sets",
    checker=expect_function(_jaccard, JACCARD_CASES, rel_tol=1e-9, mistakes=[
        (lambda a, b: len(set(a) & set(b)) / min(len(a), len(b)) if min(len(a), len(b)) else 0.0,
         "that divides by the smaller set (the overlap coefficient): divide by the size of the union."),
        (lambda a, b: len(set(a) & set(b)) / len(a) if a else 0.0,
         "that divides by the first set only (containment): divide by the size of the union."),
        (lambda a, b: 2 * len(set(a) & set(b)) / (len(a) + len(b)) if a or b else 1.0,
         "that is the Dice coefficient, 2|A∩B| / (|A| + |B|): Jaccard is |A∩B| / |A∪B|."),
        (lambda a, b: len(set(a) & set(b)) / (len(a) + len(b)) if a or b else 1.0,
         "|A| + |B| counts the shared shingles twice: divide by the union, |A| + |B| - |A∩B|."),
    ]),
    hints=("Jaccard similarity = shared shingles / all distinct shingles of the two sets.",
           "In Python: len(a & b) / len(a | b); guard the case where both sets are empty."),
    solution_code="def my_jaccard(a, b):\n    a, b = set(a), set(b)\n    return len(a & b) / len(a | b) if a | b else 1.0",
)


# ---- q2: the planted near-duplicates ------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def near_pool():
    """The raw instructions after the rules and exact dedup (default settings): the rows q2 searches."""
    from ...data import load_raw_instructions
    from .cleaning import exact_duplicates, quiet, rule_reason, rule_thresholds

    raw = load_raw_instructions()
    limits = rule_thresholds(0.5)
    with quiet():
        ds = raw.filter(lambda row: not rule_reason(row["instruction"], limits), keep_in_memory=True)
        exact = exact_duplicates(ds, "instructions")
        return ds.filter(lambda row: row["id"] not in exact, keep_in_memory=True)


def near_scores(pairs) -> dict:
    """Precision and recall of (removed id, kept id) pairs against the planted near-duplicates of ``near_pool()``."""
    from ...data import load_raw_truth
    from .cleaning import score_flags, truth_map

    truth = truth_map(load_raw_truth("instructions"))
    pool = set(near_pool()["id"])
    matches = dict(pairs)
    return score_flags(set(matches), {"near_duplicate"}, truth, pool, matches)


def _check_near(answer, *context):
    if is_placeholder(answer):
        raise NotAttempted
    try:
        pairs = list(answer.items()) if isinstance(answer, dict) else [tuple(p) for p in answer]
    except TypeError:
        return "return a list of (removed id, kept id) pairs, or a dict {removed id: kept id}."
    if not pairs:
        return "no pairs yet: every near-duplicate you remove is a pair (its id, the id of the row it repeats)."
    if any(len(p) != 2 for p in pairs):
        return "each pair has two ids: (the row you remove, the earlier row it repeats)."
    pool = set(near_pool()["id"])
    outside = [a for p in pairs for a in p if a not in pool]
    if outside:
        return (f"{len(outside)} ids are not in near_pool() (e.g. {outside[0]}): search the pool after the rules and "
                "exact dedup, and use the rows' 'id' column, not their position.")
    if any(a == b for a, b in pairs):
        return "a row cannot be a near-duplicate of itself: skip the row's own id among the LSH candidates."
    s = near_scores(pairs)
    if s["precision"] >= NEAR_BAR and s["recall"] >= NEAR_BAR:
        return None
    if s["recall"] < NEAR_BAR and s["precision"] >= NEAR_BAR:
        return (f"precision {s['precision']:.2f} but recall {s['recall']:.2f}: you miss many planted pairs; lower the "
                "threshold, or include the answer in the shingled text.")
    if s["precision"] < NEAR_BAR and s["recall"] >= NEAR_BAR:
        return (f"recall {s['recall']:.2f} but precision {s['precision']:.2f}: many pairs are template siblings, not "
                "copies; raise the threshold, or confirm each LSH candidate by its estimated Jaccard.")
    return f"precision {s['precision']:.2f} and recall {s['recall']:.2f} are both low: print a few of your pairs."


q2 = Exercise(
    "q2", lab="lab04", title="Find the planted near-duplicates (MinHash + LSH)",
    checker=_check_near,
    hints=(("For each row, in order: build a datasketch MinHash of its shingles, ask a MinHashLSH for candidates, keep "
           "the row if none is similar enough, else pair it with the most similar earlier row."),
           ("Shingle the instruction and the answer together (cleaning.row_text and cleaning.shingles do it); a "
           "threshold near 0.7 is a good start."),
           "Confirm each candidate with m.jaccard(other) >= threshold: LSH only proposes candidates."),
    solution_code=("from datasketch import MinHash, MinHashLSH\n\n"
                   "def my_near_duplicates(pool, threshold=0.7):\n"
                   "    lsh, kept, pairs = MinHashLSH(threshold=threshold, num_perm=128), {}, []\n"
                   "    for row in pool:\n"
                   "        m = MinHash(num_perm=128, seed=1)\n"
                   "        text = cleaning.row_text(row, 'instruction', 'answer')\n"
                   "        m.update_batch([s.encode('utf-8') for s in cleaning.shingles(text)])\n"
                   "        best = max(((m.jaccard(kept[c]), c) for c in lsh.query(m)), default=(0, None))\n"
                   "        if best[1] is not None and best[0] >= threshold:\n"
                   "            pairs.append((row['id'], best[1]))\n"
                   "        else:\n"
                   "            kept[row['id']] = m\n"
                   "            lsh.insert(row['id'], m)\n"
                   "    return pairs\n\n"
                   "near_pairs = my_near_duplicates(near_pool())"),
)


# ---- q3: the IFD score from two losses ----------------------------------------------------------------------------

def _ifd(loss_with, loss_without):
    return math.exp(loss_with) / math.exp(loss_without)


IFD_CASES = [Args(1.2, 1.5), Args(0.3, 2.0), Args(2.0, 2.0), Args(2.5, 1.0), Args(0.05, 0.9)]

q3 = Exercise(
    "q3", lab="lab04", title="The IFD score from two losses",
    checker=expect_function(_ifd, IFD_CASES, rel_tol=1e-6, mistakes=[
        (lambda a, b: math.exp(b) / math.exp(a), "upside down: the conditioned perplexity goes on top."),
        (lambda a, b: a / b, ("that is the ratio of the two mean losses (how Cherry LLM's paper writes it); here use "
                              "the ratio of perplexities, Superfiltering's form: exp of each loss first.")),
        (lambda a, b: a - b, "that is the difference of the losses, log IFD: take exp of it."),
        (lambda a, b: math.exp(a - b) - 1, "no -1: IFD is the plain ratio, 1 when the instruction does not help."),
    ]),
    hints=("Perplexity is exp(mean loss). IFD = PPL(answer | instruction) / PPL(answer alone).",
           "Below 1, the instruction makes the answer easier to predict; Cherry LLM keeps the high ones below 1."),
    solution_code="import math\n\ndef my_ifd(loss_with, loss_without):\n"
                  "    return math.exp(loss_with) / math.exp(loss_without)",
)


# ---- q4: the contaminated test items ------------------------------------------------------------------------------

def leak_scores(flagged) -> dict:
    """Precision and recall of test indices against the test items planted in the raw instructions."""
    from ...data import load_raw_truth

    planted = {row["source"] for row in load_raw_truth("instructions") if row["defect"] == "contamination"}
    flagged = {int(i) for i in flagged}
    hits = len(flagged & planted)
    return {"flagged": len(flagged), "precision": hits / len(flagged) if flagged else 0.0,
            "recall": hits / len(planted)}


def _check_leaks(answer, *context):
    if is_placeholder(answer):
        raise NotAttempted
    try:
        flagged = {int(i) for i in answer}
    except (TypeError, ValueError):
        return "return a set of test-split indices (whole numbers), e.g. {3, 17}."
    if not flagged:
        return "the set is empty: some test items were copied into training; look for high n-gram overlap."
    if any(i < 0 or i >= 300 for i in flagged):
        return "indices are positions in the instructions test split, 0 to 299."
    s = leak_scores(flagged)
    if s["precision"] >= LEAK_BAR[0] and s["recall"] >= LEAK_BAR[1]:
        return None
    if s["recall"] < LEAK_BAR[1]:
        return (f"recall {s['recall']:.2f}: some lightly edited copies slip through; compare word n-grams (not whole "
                "strings) and lower the overlap you require, or use shorter n-grams.")
    return (f"precision {s['precision']:.2f}: template siblings share n-grams too; take only the best-matching test "
            "item per training row, and require a high share of the row's n-grams.")


q4 = Exercise(
    "q4", lab="lab04", title="Flag the contaminated test items",
    checker=_check_leaks,
    hints=("For each raw training row, find the test item that shares the largest share of its word n-grams.",
           "Include the answer in both texts. With n = 3 words, a share of 0.7 or more is a good start.",
           ("cleaning.contamination(texts, test_texts, n=3) returns (share, test index) per text, if you want to "
           "check your own.")),
    solution_code=("import re\n\n"
                   "def grams(text, n=3):\n"
                   "    w = re.findall(r'[a-z0-9]+', text.lower())\n"
                   "    return {tuple(w[i:i + n]) for i in range(max(1, len(w) - n + 1))}\n\n"
                   "test_grams = [grams(f\"{r['instruction']} {r['answer']}\") for r in test]\n"
                   "leaked = set()\n"
                   "for r in raw:\n"
                   "    g = grams(f\"{r['instruction']} {r['answer']}\")\n"
                   "    share, j = max((len(g & t) / len(g), j) for j, t in enumerate(test_grams))\n"
                   "    if share >= 0.7:\n"
                   "        leaked.add(j)"),
)
