"""Lab 01e (sections 1.8-1.12) exercises: the majority baseline's accuracy, near-duplicate pairs across a split,
the early-stopping step from validation curves, and the best learning rate from a sweep table."""

from __future__ import annotations

import math
from collections import Counter

from ...grading import Args, Exercise, NotAttempted, expect_function, is_placeholder
from .splits import jaccard

# ---- q1: majority-baseline accuracy ---------------------------------------------------------------------------------


def _majority_accuracy(train_labels, test_labels):
    top = Counter(train_labels).most_common(1)[0][0]
    return sum(label == top for label in test_labels) / len(test_labels)


MAJORITY_CASES = [
    Args(["a", "a", "b"], ["a", "b", "b", "b"]),  # the test set's majority is another label
    Args(["x", "y", "y", "y"], ["x", "x", "y"]),
    Args(["feed"] * 5 + ["heal"] * 2, ["heal", "feed", "billing", "feed", "feed"]),
    Args(["n", "m", "m"], ["q", "q"]),  # the training majority never occurs in the test set: 0, not an error
]
q1 = Exercise(
    "q1", lab="lab01e", title="The majority baseline's accuracy",
    checker=expect_function(_majority_accuracy, MAJORITY_CASES, rel_tol=1e-9, mistakes=[
        (lambda tr, te: Counter(te).most_common(1)[0][1] / len(te),
         "that picks the test set's most common label: the baseline may only look at the training labels."),
        (lambda tr, te: sum(x == Counter(tr).most_common(1)[0][0] for x in te),
         "that is a count: divide by the number of test labels."),
        (lambda tr, te: Counter(tr).most_common(1)[0][1] / len(tr),
         "that is the majority's share of the training labels: score its predictions on the test labels."),
    ]),
    hints=("Find the most common training label (collections.Counter(...).most_common(1)).",
           "Predict it for every test example; accuracy is the share of test labels equal to it."),
    solution_code="def my_majority_accuracy(train_labels, test_labels):\n"
                  "    top = Counter(train_labels).most_common(1)[0][0]\n"
                  "    return sum(label == top for label in test_labels) / len(test_labels)",
)


# ---- q2: near-duplicate pairs across a split ------------------------------------------------------------------------

def _pairs(train_texts, test_texts, threshold):
    return sum(1 for a in train_texts for b in test_texts if jaccard(a, b) >= threshold)


PAIR_CASES = [
    Args(["the red dragon flies", "a blue egg"], ["the red dragon flies home", "a green egg", "fire"], 0.5),
    Args(["pip is ill", "pip is ill today"], ["pip is ill"], 0.75),  # one test text, two pairs; 3/4 is exactly 0.75
    Args(["Feed Ember now", "book a flight"], ["feed ember NOW please", "book a flight today"], 0.6),
    Args(["a b c d"], ["a b c d", "a b", "x y"], 0.5),
]
q2 = Exercise(
    "q2", lab="lab01e", title="Near-duplicate pairs across a split",
    checker=expect_function(_pairs, PAIR_CASES, mistakes=[
        (lambda tr, te, t: sum(1 for b in te if any(jaccard(a, b) >= t for a in tr)),
         "that counts test texts with at least one near-duplicate: count every (train, test) pair."),
        (lambda tr, te, t: sum(1 for a in tr for b in te if jaccard(a, b) > t),
         "a pair exactly at the threshold counts: use >=."),
        (lambda tr, te, t: sum(1 for a in tr for b in te if a == b),
         "that counts exact copies only: near-duplicates share most words, not all."),
    ]),
    hints=("Compare every training text with every test text: a double loop.",
           "splits.jaccard(a, b) gives the word-set similarity (lower-cased); count the pairs at or above threshold."),
    solution_code="def my_near_dup_pairs(train_texts, test_texts, threshold):\n"
                  "    return sum(1 for a in train_texts for b in test_texts if splits.jaccard(a, b) >= threshold)",
)


# ---- q3: the early-stopping step from validation curves -------------------------------------------------------------

def _best_step(steps, eval_losses, patience):
    best_step, best, waited = steps[0], math.inf, 0
    for step, loss in zip(steps, eval_losses):
        if loss < best:
            best_step, best, waited = step, loss, 0
        else:
            waited += 1
            if waited >= patience:
                break
    return best_step


def _stop_step(steps, eval_losses, patience):  # a typical mistake: where training stops, not the best checkpoint
    best, waited = math.inf, 0
    for step, loss in zip(steps, eval_losses):
        best, waited = (loss, 0) if loss < best else (best, waited + 1)
        if waited >= patience:
            return step
    return steps[-1]


STOP_CASES = [
    Args([5, 10, 15, 20, 25], [2.0, 1.5, 1.6, 1.7, 1.8], 2),
    Args([5, 10, 15, 20, 25, 30], [2.0, 1.5, 1.6, 1.7, 1.2, 1.1], 2),  # stopped before the later, lower losses
    Args([1, 2, 3, 4], [3.0, 2.0, 1.0, 0.5], 1),  # never stops: the last step is best
    Args([10, 20, 30, 40, 50], [1.0, 1.0, 0.9, 0.95, 0.8], 3),  # a tie is no improvement
]
q3 = Exercise(
    "q3", lab="lab01e", title="The early-stopping step",
    checker=expect_function(_best_step, STOP_CASES, mistakes=[
        (lambda s, v, p: s[min(range(len(v)), key=lambda i: (v[i], i))],
         "that is the lowest loss of the whole run: early stopping never sees the evaluations after it stops."),
        (_stop_step,
         "that is the step where training stops: return the step of the best checkpoint kept so far."),
        (lambda s, v, p: s[-1], "the last step is only right when the loss never stops falling."),
    ]),
    hints=("Walk through the evaluations in order, remembering the best loss so far and its step.",
           "Count evaluations without a strictly lower loss; when the count reaches patience, stop.",
           "Return the step of the best loss seen before stopping."),
    solution_code="def my_best_step(steps, eval_losses, patience):\n"
                  "    best_step, best, waited = steps[0], float('inf'), 0\n"
                  "    for step, loss in zip(steps, eval_losses):\n"
                  "        if loss < best:\n"
                  "            best_step, best, waited = step, loss, 0\n"
                  "        else:\n"
                  "            waited += 1\n"
                  "            if waited >= patience:\n"
                  "                break\n"
                  "    return best_step",
)


# ---- q4: the best learning rate from a sweep table ------------------------------------------------------------------

def best_lr(table, batch_size: int) -> float:
    """Among runs of ``batch_size``: fewest steps to target (never reached = last), ties by lower final loss."""
    rows = table[table["batch_size"] == batch_size]
    key = rows["steps_to_target"].fillna(math.inf)
    return float(rows.assign(_key=key).sort_values(["_key", "final_loss"])["lr"].iloc[0])


def _check_lr(answer, table, batch_size):
    if is_placeholder(answer):
        raise NotAttempted
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return f"answer with one learning rate, a number such as 1e-3; got {type(answer).__name__}."
    rows = table[table["batch_size"] == batch_size]
    if not any(math.isclose(value, lr, rel_tol=1e-9) for lr in rows["lr"]):
        return f"pick one of the learning rates in the sweep table at batch size {batch_size}."
    if math.isclose(value, best_lr(table, batch_size), rel_tol=1e-9):
        return None
    if math.isclose(value, float(rows["lr"].max()), rel_tol=1e-9):
        return "the largest learning rate is not automatically the fastest: read steps_to_target."
    return "another learning rate reaches the target in fewer steps (or, if none does, ends lower)."


q4 = Exercise(
    "q4", lab="lab01e", title="The best learning rate from a sweep",
    checker=_check_lr, context=("table", "batch_size"),
    hints=("Keep the rows of the given batch size.",
           ("Fewest steps_to_target wins; a run that never reached the target (NaN) ranks last; ties go to the lower "
           "final_loss.")),
    solution_code="rows = sweep[sweep['batch_size'] == Q4_BATCH].copy()\n"
                  "rows['key'] = rows['steps_to_target'].fillna(float('inf'))\n"
                  "my_best_lr = float(rows.sort_values(['key', 'final_loss'])['lr'].iloc[0])",
)
