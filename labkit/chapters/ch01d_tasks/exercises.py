"""Lab 01d (sections 1.4-1.7) exercises: macro-F1 from a confusion matrix, an answer-only label mask, the
label-smoothed target distribution, and the metric that ranks a planted pair right."""

from __future__ import annotations

from ...grading import Args, Exercise, NotAttempted, expect_function, is_placeholder
from ...units import IGNORE_INDEX

# ---- q1: macro-F1 from a confusion matrix ---------------------------------------------------------------------------


def _per_class(matrix):
    """(tp, fp, fn) per class of a confusion matrix with rows = true class, columns = predicted class."""
    n = len(matrix)
    tp = [matrix[i][i] for i in range(n)]
    fp = [sum(matrix[r][i] for r in range(n)) - matrix[i][i] for i in range(n)]
    fn = [sum(matrix[i]) - matrix[i][i] for i in range(n)]
    return tp, fp, fn


def _f1(tp, fp, fn):
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _macro_f1(matrix):
    tp, fp, fn = _per_class(matrix)
    return sum(_f1(*c) for c in zip(tp, fp, fn)) / len(matrix)


def _accuracy(matrix):
    return sum(matrix[i][i] for i in range(len(matrix))) / sum(map(sum, matrix))


def _weighted_f1(matrix):
    tp, fp, fn = _per_class(matrix)
    support = [sum(row) for row in matrix]
    return sum(_f1(*c) * s for c, s in zip(zip(tp, fp, fn), support)) / sum(support)


def _transposed_f1(matrix):  # precision and recall swapped per class gives the same F1: catch a real swap instead
    return _macro_f1([list(col) for col in zip(*matrix)])


def _mean_precision_recall(matrix):
    tp, fp, fn = _per_class(matrix)
    p = sum(t / (t + f) if t + f else 0.0 for t, f in zip(tp, fp)) / len(matrix)
    r = sum(t / (t + f) if t + f else 0.0 for t, f in zip(tp, fn)) / len(matrix)
    return 2 * p * r / (p + r) if p + r else 0.0


F1_CASES = [
    Args([[8, 2], [1, 4]]),
    Args([[18, 0], [2, 0]]),  # a class never predicted: its F1 is 0, not an error
    Args([[5, 1, 0], [2, 3, 1], [0, 0, 4]]),
    Args([[10, 0, 0], [0, 0, 0], [3, 0, 7]]),  # a class with no examples and no predictions counts as 0
    Args([[1, 0, 0, 0], [0, 2, 1, 0], [0, 0, 3, 0], [4, 0, 0, 0]]),
]

q1 = Exercise(
    "q1", lab="lab01d", title="Macro-F1 from a confusion matrix",
    checker=expect_function(_macro_f1, F1_CASES, rel_tol=1e-9, mistakes=[
        (_accuracy, "that is accuracy (the diagonal over the total): compute an F1 per class first."),
        (_weighted_f1, ("that weights each class by its number of examples (weighted F1); macro gives every class "
                       "the same weight.")),
        (_mean_precision_recall, ("that is the F1 of the mean precision and mean recall: average the per-class F1 "
                                 "scores instead.")),
    ]),
    hints=(("Rows are the true class, columns the predicted class. For class c: TP = m[c][c], FP = the rest of "
           "column c, FN = the rest of row c."),
           "F1_c = 2 TP / (2 TP + FP + FN), and 0 when TP is 0 (no division by zero).",
           "Macro-F1 is the plain mean of F1_c over all classes."),
    solution_code="def my_macro_f1(m):\n"
                  "    n = len(m)\n"
                  "    scores = []\n"
                  "    for c in range(n):\n"
                  "        tp = m[c][c]\n"
                  "        fp = sum(m[r][c] for r in range(n)) - tp\n"
                  "        fn = sum(m[c]) - tp\n"
                  "        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)\n"
                  "    return sum(scores) / n",
)


# ---- q2: an answer-only label mask ----------------------------------------------------------------------------------

def _mask(input_ids, prompt_len):
    return [IGNORE_INDEX] * prompt_len + list(input_ids[prompt_len:])


MASK_CASES = [Args([5, 6, 7, 8, 9], 3), Args([11, 12, 13], 0), Args([1, 2, 3, 4], 4), Args(list(range(100, 140)), 31)]


MASK_MISTAKES = [
    (lambda ids, n: [IGNORE_INDEX] * (n - 1) + list(ids[n - 1:]) if n else list(ids),
     "off by one: mask exactly prompt_len tokens, the whole prompt."),
    (lambda ids, n: [IGNORE_INDEX] * (n + 1) + list(ids[n + 1:]) if n < len(ids) else [IGNORE_INDEX] * len(ids),
     "off by one: the first answer token must keep its label."),
    (lambda ids, n: list(ids[:n]) + [IGNORE_INDEX] * (len(ids) - n),
     "that masks the answer and keeps the prompt: the loss should be on the answer only."),
    (lambda ids, n: [0] * n + list(ids[n:]), (f"use the ignore index {IGNORE_INDEX} (what cross-entropy skips), "
                                              "not 0, which is a real token id.")),
    (lambda ids, n: list(ids[n:]), ("keep the labels as long as input_ids: replace the prompt's labels, do not "
                                   "drop them.")),
]


q2 = Exercise(
    "q2", lab="lab01d", title="An answer-only label mask",
    checker=expect_function(_mask, MASK_CASES, mistakes=MASK_MISTAKES),
    hints=("The labels have the same length as input_ids.",
           f"The first prompt_len labels are {IGNORE_INDEX}; the rest copy input_ids."),
    solution_code="def my_answer_labels(input_ids, prompt_len):\n"
                  f"    return [{IGNORE_INDEX}] * prompt_len + list(input_ids[prompt_len:])",
)


# ---- q3: the label-smoothed target distribution ---------------------------------------------------------------------

def _smoothed(label, num_classes, smoothing):
    return [(1 - smoothing) * (c == label) + smoothing / num_classes for c in range(num_classes)]


SMOOTH_CASES = [Args(2, 4, 0.1), Args(0, 8, 0.2), Args(1, 2, 0.0), Args(4, 5, 0.5)]


def _close_lists(got, want) -> bool:
    import math

    try:
        values = [float(x) for x in got]
    except (TypeError, ValueError):
        return False
    return len(values) == len(want) and all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for a, b in zip(values, want))


def _check_smoothed(func, *context):
    if not callable(func):
        return f"pass the function itself (no parentheses), not a value of type {type(func).__name__}."
    wrongs = [
        (lambda y, k, e: [(1 - e) * (c == y) + (e / (k - 1)) * (c != y) for c in range(k)],
         ("that spreads the smoothing over the other k - 1 classes; torch's label_smoothing spreads it over all k "
         "classes, the true one included.")),
        (lambda y, k, e: [(1 - e) * (c == y) for c in range(k)],
         "add smoothing / num_classes to every class, or the targets no longer sum to 1."),
        (lambda y, k, e: [(c == y) * 1.0 + e / k for c in range(k)],
         "scale the one-hot part by (1 - smoothing), or the targets sum to more than 1."),
        (lambda y, k, e: [e * (c == y) + (1 - e) / k for c in range(k)], "smoothing and 1 - smoothing are swapped."),
    ]
    for case in SMOOTH_CASES:
        try:
            got = func(*case.args)
        except NotImplementedError:
            raise NotAttempted from None
        except Exception as err:  # noqa: BLE001  (any error in the learner's code becomes feedback)
            return f"my_smoothed_targets({case}) raised {type(err).__name__}: {err}"
        if is_placeholder(got):
            raise NotAttempted
        if hasattr(got, "tolist"):
            got = got.tolist()
        if _close_lists(got, _smoothed(*case.args)):
            continue
        for wrong, message in wrongs:
            if _close_lists(got, wrong(*case.args)):
                return message
        if not hasattr(got, "__len__"):
            return "return a list of num_classes probabilities, one per class."
        return f"my_smoothed_targets({case}) is not right yet."
    return None


q3 = Exercise(
    "q3", lab="lab01d", title="The label-smoothed target distribution",
    checker=_check_smoothed,
    hints=("Start from the one-hot target: 1 for the true class, 0 elsewhere.",
           "Take (1 - smoothing) of it and add smoothing / num_classes to every class (torch's label_smoothing).",
           "Check: the result sums to 1, and the true class gets 1 - smoothing + smoothing / num_classes."),
    solution_code="def my_smoothed_targets(label, num_classes, smoothing):\n"
                  "    return [(1 - smoothing) * (c == label) + smoothing / num_classes for c in range(num_classes)]",
)


# ---- q4: the metric that ranks a planted pair right -----------------------------------------------------------------

def quiz_pair():
    """The pair q4 asks about: unit conversions, A terse and often wrong, B always right with the unit attached."""
    from .scoring import PlantedPair, _rows

    rows = _rows("convert_units", 10)
    answers = [str(row["answer"]) for row in rows]
    units = [row["instruction"].rstrip(".").split()[-1] for row in rows]  # "Convert 11 km to m." -> "m"
    terse = [a if i < 4 else a + "0" for i, a in enumerate(answers)]  # 4 in 10 right, the rest 10x off
    return PlantedPair("units attached", "A answers a bare number, 4 in 10 right; B is always right and adds the "
                       "unit", "exact_match", "?", answers, terse, [f"{a} {u}" for a, u in zip(answers, units)])


def _check_metric(answer, *context):
    from .scoring import METRICS, TEXT_METRICS, prefers, score

    if is_placeholder(answer):
        raise NotAttempted
    name = str(answer).strip().lower()
    if name not in METRICS:
        return f"answer with one metric name among {', '.join(METRICS)} (a string such as 'bleu')."
    pair = quiz_pair()
    if name not in TEXT_METRICS:
        return (f"{name} does not apply here: the systems answer in free text, and {name} reads "
                f"{'class labels' if name in ('accuracy', 'macro_f1') else 'per-token losses'}.")
    verdict = prefers(name, score(name, pair.a, pair.references), score(name, pair.b, pair.references))
    if verdict == "B":
        return None
    if verdict == "tie":
        return f"{name} scores the two systems the same here: pick one that tells them apart."
    return f"{name} prefers system A here, the one that is wrong more often: print its scores for A and B."


q4 = Exercise(
    "q4", lab="lab01d", title="The metric that ranks a planted pair right",
    checker=_check_metric,
    hints=("B is always right but adds a word (the unit) after the number; A is a bare number, often wrong.",
           ("Exact match gives B nothing for the extra word. Which metrics give credit for the right number inside a "
           "longer answer? Score the pair with scoring.score(metric, pair.a, pair.references) and the same for B.")),
    solution_code="best_metric = 'contains'  # token_f1 and rouge_l rank B first too here",
)
