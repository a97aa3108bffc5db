"""Lab 01b (section 1.2) exercises: the next-token label shift, tokens-to-match read off the curves, 6·N·D, forgetting compared."""

from __future__ import annotations

import math

from ...grading import Args, Exercise, NotAttempted, expect_function, is_placeholder


def _pairs(ids):
    return list(ids[:-1]), list(ids[1:])


def _as_pair(value):
    """(inputs, targets) as two plain lists, from tuples, lists or tensors; None if it is not a pair."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        return None
    return tuple(list(v.tolist() if hasattr(v, "tolist") else v) for v in value)


_PAIR_CASES = ([5, 9, 2, 7], [1, 2], [49152 - 1, 0, 0, 3, 11, 8], [4, 4, 4])
_PAIR_MISTAKES = (
    (lambda ids: (list(ids), list(ids)), ("targets equal to inputs teach the model to copy the current token: "
                                         "shift the targets one position to the left.")),
    (lambda ids: (list(ids[1:]), list(ids[:-1])), ("shifted the wrong way: the target of a position is the token "
                                                  "that comes after it.")),
    (lambda ids: (list(ids), list(ids[1:])), ("the inputs keep their last token, which has no next token to predict: "
                                             "drop it so both lists have the same length.")),
    (lambda ids: (list(ids[:-1]), list(ids[:-1])), ("the targets are the inputs again: take them from one position "
                                                   "later.")),
)


def _check_pairs(func, *context):
    if not callable(func):
        return f"pass the function itself (no parentheses), not a value of type {type(func).__name__}."
    name = getattr(func, "__name__", "your function")
    for ids in _PAIR_CASES:
        try:
            got = func(list(ids))
        except NotImplementedError:
            raise NotAttempted from None
        except Exception as err:  # noqa: BLE001  (any error in the learner's code becomes feedback)
            return f"{name}({ids}) raised {type(err).__name__}: {err}"
        if is_placeholder(got):
            raise NotAttempted
        pair = _as_pair(got)
        if pair is None:
            return f"{name} should return two lists, (inputs, targets); it returned a {type(got).__name__}."
        if pair == _pairs(ids):
            continue
        for wrong, message in _PAIR_MISTAKES:
            if pair == wrong(ids):
                return message
        return f"{name}({ids}) returned {pair}, which is not right yet."
    return None


q1 = Exercise(
    "q1", lab="lab01b", title="The label shift of next-token prediction",
    checker=_check_pairs,
    hints=("Position t of the inputs is scored against the token at position t + 1.",
           "The last token has nothing after it, and the first token is never a target.",
           "Two slices of the same list: one without its last element, one without its first."),
    solution_code="def next_token_pairs(ids):\n"
                  "    return ids[:-1], ids[1:]",
)


def _number_or_none(answer):
    if answer is None:
        return None
    if isinstance(answer, (bool, str)):
        raise TypeError
    return float(answer)


def _check_tokens_to_match(answer, scratch_curve, pretrained_curve):
    from .objectives import tokens_to_match

    match = tokens_to_match(scratch_curve, pretrained_curve)
    try:
        value = _number_or_none(answer)
    except (TypeError, ValueError):
        return f"give a number of tokens (or None), not a value of type {type(answer).__name__}."
    if not match.reached:
        if value is None:
            return None
        return ("in this run the from-scratch curve never gets down to the pretrained model's starting loss: "
                "look at where it ends, and answer None.")
    if value is None:
        return "the from-scratch curve does cross the pretrained model's starting loss in this run: read where."
    low, high = match.bracket
    if 0.9 * low <= value <= 1.1 * high:
        return None
    if math.isclose(value, match.target_loss, rel_tol=0.02) or math.isclose(value, math.exp(match.target_loss),
                                                                           rel_tol=0.02):
        return "that is a loss (or perplexity): the answer is a position on the x-axis, in tokens."
    if 0 < value < 0.02 * low:
        return "that looks like a number of steps: the x-axis counts tokens seen."
    if value < low:
        return "too early: at that point the from-scratch model is still worse than the pretrained one."
    return "too late: the from-scratch curve is already below the pretrained model's starting loss there."


q2 = Exercise(
    "q2", lab="lab01b", title="Tokens for the from-scratch model to match the pretrained one",
    checker=_check_tokens_to_match,
    hints=("Find the pretrained model's loss before fine-tuning: its curve's point at 0 tokens (the dashed line).",
           "Follow the from-scratch curve to where it first drops to that loss; read the x-axis (tokens) there.",
           "Any value between the last measured point above the line and the first one below it counts."),
    context=("scratch_curve", "pretrained_curve"),
    solution_code="# read from the plot; the kit's analysis of the same curves gives\n"
                  "tokens_needed = objectives.tokens_to_match(scratch_curve, pretrained_curve).tokens",
)


def _flops(n_params, n_tokens):
    return 6 * n_params * n_tokens


q3 = Exercise(
    "q3", lab="lab01b", title="Training FLOPs: 6·N·D",
    checker=expect_function(
        _flops, [Args(1e9, 1e6), Args(134_515_008, 2e12), Args(7e9, 2e12), Args(3, 5)], rel_tol=1e-9,
        mistakes=[
            (lambda n, d: 2 * n * d, "that counts the forward pass only: the backward pass costs about twice as much."),
            (lambda n, d: 4 * n * d, ("close: the backward pass has two matmuls per weight (gradient for the input and "
                                     "for the weight), each as costly as the forward one.")),
            (lambda n, d: 6 * n, "that is the cost of one token: multiply by the number of tokens."),
            (lambda n, d: n * d, ("each parameter costs more than one FLOP per token: count the forward multiply-add "
                                 "and the backward pass.")),
        ]),
    hints=("One multiply-add per parameter per token in the forward pass: 2 FLOPs.",
           "The backward pass computes two gradients per weight matrix: about twice the forward cost.",
           "Forward 2 + backward 4 FLOPs per parameter per token (Kaplan et al. 2020)."),
    solution_code="def training_flops(n_params, n_tokens):\n"
                  "    return 6 * n_params * n_tokens",
)


def _drops(scores: dict) -> tuple[float, float]:
    missing = [k for k in ("before", "full", "lora") if k not in scores]
    if missing:
        raise KeyError(f"the scores need the keys 'before', 'full' and 'lora' (missing {missing})")
    return scores["before"] - scores["full"], scores["before"] - scores["lora"]


def _check_forgetting(answer, scores):
    drop_full, drop_lora = _drops(scores)
    gap = abs(drop_full - drop_lora) * 100
    want = "tie" if gap < 1e-9 else "lora" if drop_lora < drop_full else "full"
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return "answer with a pair: (method, points), e.g. ('full', 2.5)."
    method, points = answer
    if is_placeholder(method) or is_placeholder(points):
        raise NotAttempted
    if str(method).strip().lower() not in ("full", "lora", "tie"):
        return "the method is 'full', 'lora' or 'tie'."
    try:
        points = float(points)
    except (TypeError, ValueError):
        return f"the points should be a number, not a value of type {type(points).__name__}."
    if str(method).strip().lower() != want:
        return ("compare the drops, before minus after, for each method: the smaller drop forgot less "
                "(equal drops are a 'tie').")
    if math.isclose(points, gap, abs_tol=0.05):
        return None
    if gap and math.isclose(points, gap / 100, abs_tol=5e-4):
        return "that is a fraction: give percentage points (multiply by 100)."
    if math.isclose(points, max(drop_full, drop_lora) * 100, abs_tol=0.05) or \
            math.isclose(points, min(drop_full, drop_lora) * 100, abs_tol=0.05):
        return "that is one method's drop: the question asks for the difference between the two drops."
    return "the method is right; the number of points is not right yet."


q4 = Exercise(
    "q4", lab="lab01b", title="Which method forgot less, and by how much",
    checker=_check_forgetting,
    hints=("The drop of a method is its probe score before fine-tuning minus its score after.",
           "The method with the smaller drop forgot less; the gap is the difference of the two drops.",
           "Scores are fractions: multiply the gap by 100 for percentage points."),
    context=("scores",),
    solution_code="drop_full = scores['before'] - scores['full']\n"
                  "drop_lora = scores['before'] - scores['lora']\n"
                  "forgot_less = 'tie' if drop_full == drop_lora else 'lora' if drop_lora < drop_full else 'full'\n"
                  "by_points = abs(drop_full - drop_lora) * 100",
)
