"""Lab 10 exercises: find the bug from a loss curve and a batch, fix a label mask, normalise accumulated losses,
choose the check that would have caught a failure."""

from __future__ import annotations

import math

from ...grading import Exercise, NotAttempted, is_placeholder
from ...units import IGNORE_INDEX

# ---- q1: find the bug from a loss curve and a batch -----------------------------------------------------------------

MYSTERY = "labels_shifted_twice"  # the member the notebook shows (its curve and one decoded batch)
_Q1_MISTAKES = {
    "loss_on_prompt": f"the prompt positions are masked ({IGNORE_INDEX}) in this batch; look at which token each label sits "
                      "under.",
    "missing_eos": "the answer does end with the end-of-turn token; look at which token each label sits under.",
    "template_mismatch": "the prompt is the chat template's; look at which token each label sits under.",
    "accumulation_normalization": "a batch alone cannot show a normalisation bug; the batch table shows something "
                                  "about the labels themselves.",
    "healthy": "compare each label with the token in the same row: in a healthy batch they are equal.",
}


def _check_mystery(answer, *context):
    from .zoo import ZOO

    if is_placeholder(answer):
        raise NotAttempted
    name = str(answer).strip()
    if name not in ZOO and name != "healthy":
        return "answer with the name of a zoo member as a string: a key of zoo.ZOO (listed by zoo.table())."
    if name == MYSTERY:
        return None
    return _Q1_MISTAKES.get(name, "that bug would leave the labels where they belong; the batch table says "
                                  "otherwise: compare each label with the token in its own row.")


def mystery_batch(tokenizer, row: int = 0):
    """One example of the mystery set-up as a table of positions, tokens and labels (pipeline.label_view)."""
    from ...validation.pipeline import label_view, make_examples
    from .zoo import rows

    return label_view(tokenizer, make_examples(tokenizer, rows(row + 1)[row:], shift_labels=True)[0])


def mystery_curve(histories: dict):
    """The mystery set-up's loss curve, renamed, beside the healthy one: {"mystery": ..., "healthy": ...}."""
    return {"mystery": histories[MYSTERY].assign(run="mystery"), "healthy": histories["healthy"]}


q1 = Exercise(
    "q1", lab="lab10", title="Find the bug from a loss curve and a batch",
    checker=_check_mystery,
    hints=("The loss curve looks plausible, so look at the batch: in each row, is the label the token itself?",
           "Hugging Face causal LMs want labels equal to input_ids; they shift by one inside forward()."),
    solution_code="mystery_bug = 'labels_shifted_twice'",
)


# ---- q2: fix a label mask -------------------------------------------------------------------------------------------

def _mask(input_ids, prompt_len):
    return [IGNORE_INDEX] * prompt_len + list(input_ids[prompt_len:])


_Q2_CASES = [([5, 6, 7, 8, 9, 2], 3), ([11, 12, 2], 1), ([1, 2, 3, 4], 0), ([7, 7, 7, 7, 2], 4)]
_Q2_VARIANTS = [
    (lambda ids, n: list(ids), f"the prompt tokens are still in the loss: give them the label IGNORE_INDEX ({IGNORE_INDEX})."),
    (lambda ids, n: [IGNORE_INDEX] * n + list(ids[n + 1:]) + [IGNORE_INDEX],
     "the answer's labels are shifted by one: keep each label under its own token (the model shifts them)."),
    (lambda ids, n: [0] * n + list(ids[n:]), (f"masked positions take IGNORE_INDEX ({IGNORE_INDEX}), not 0: token 0 is a real "
                                             "token that the loss would learn.")),
    (lambda ids, n: [IGNORE_INDEX] * (n + 1) + list(ids[n + 1:]), "off by one: the first answer token is masked too."),
    (lambda ids, n: [IGNORE_INDEX] * max(n - 1, 0) + list(ids[max(n - 1, 0):]),
     "off by one: the last prompt token is still in the loss."),
    (lambda ids, n: list(ids[:n]) + [IGNORE_INDEX] * (len(ids) - n), "upside down: mask the prompt, keep the answer."),
]


def _check_mask(func, *context):
    if not callable(func):
        return f"pass the function itself (no parentheses), not a value of type {type(func).__name__}."
    for ids, n in _Q2_CASES:
        try:
            got = func(list(ids), n)
        except NotImplementedError:
            raise NotAttempted from None
        except Exception as err:  # noqa: BLE001  (any error in the learner's code becomes feedback)
            return f"on input_ids={ids}, prompt_len={n} your function raised {type(err).__name__}: {err}"
        if is_placeholder(got):
            raise NotAttempted
        try:
            got = [int(x) for x in got]
        except (TypeError, ValueError):
            return "return a list of whole numbers (one label per input token)."
        if got == _mask(ids, n):
            continue
        if len(got) != len(ids):
            return "return one label per input token: the labels must be as long as input_ids."
        for wrong, message in _Q2_VARIANTS:
            if got == wrong(ids, n):
                return message
        return f"on input_ids={ids}, prompt_len={n} your labels are not right yet."
    return None


q2 = Exercise(
    "q2", lab="lab10", title="Fix a label mask",
    checker=_check_mask,
    hints=("Positions 0 .. prompt_len - 1 are the prompt; positions from prompt_len on are the answer.",
           f"Prompt positions get IGNORE_INDEX ({IGNORE_INDEX}); answer positions keep their own token id, unshifted."),
    solution_code="def answer_only_labels(input_ids, prompt_len):\n"
                  "    return [IGNORE_INDEX] * prompt_len + list(input_ids[prompt_len:])",
)


# ---- q3: the correct accumulation normalisation ---------------------------------------------------------------------

def _step_loss(mean_losses, token_counts):
    return sum(loss * n for loss, n in zip(mean_losses, token_counts)) / sum(token_counts)


_Q3_CASES = [([2.0, 1.0], [10, 30]), ([0.5, 3.0, 1.5, 2.5], [3, 40, 12, 7]), ([1.2], [9]), ([4.0, 1.0, 2.0], [1, 1, 1])]
_Q3_VARIANTS = [
    (lambda m, n: sum(m) / len(m), ("that is the mean of the micro-batch means (the trl#2175 bug): weigh each mean by "
                                   "its micro-batch's token count.")),
    (lambda m, n: sum(a * b for a, b in zip(m, n)) / len(m), ("divide by the total number of tokens, not by the number "
                                                             "of micro-batches.")),
    (lambda m, n: sum(m), ("a sum of means grows with the number of micro-batches: weigh by tokens and divide by "
                          "their total.")),
    (lambda m, n: sum(a * b for a, b in zip(m, n)), ("that is the summed token loss: divide it by the total number of "
                                                    "tokens in the step.")),
]


def _check_step_loss(func, *context):
    if not callable(func):
        return f"pass the function itself (no parentheses), not a value of type {type(func).__name__}."
    for means, counts in _Q3_CASES:
        try:
            got = func(list(means), list(counts))
        except NotImplementedError:
            raise NotAttempted from None
        except Exception as err:  # noqa: BLE001
            return f"on mean_losses={means}, token_counts={counts} your function raised {type(err).__name__}: {err}"
        if is_placeholder(got):
            raise NotAttempted
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            try:
                got = float(got)
            except (TypeError, ValueError):
                return f"return one number, not a value of type {type(got).__name__}."
        if math.isclose(got, _step_loss(means, counts), rel_tol=1e-9):
            continue
        for wrong, message in _Q3_VARIANTS:
            if math.isclose(got, wrong(means, counts), rel_tol=1e-9):
                return message
        return f"on mean_losses={means}, token_counts={counts} your function's value is not right yet."
    return None


q3 = Exercise(
    "q3", lab="lab10", title="Normalise the loss of an accumulated step",
    checker=_check_step_loss,
    hints=("Each micro-batch's mean loss is its summed token loss divided by its token count: undo that first.",
           "Sum mean x count over the micro-batches, then divide by the total token count of the step."),
    solution_code="def step_loss(mean_losses, token_counts):\n"
                  "    return sum(m * n for m, n in zip(mean_losses, token_counts)) / sum(token_counts)",
)


# ---- q4: choose the check that would have caught a failure ----------------------------------------------------------

FAILURES = {
    "a": "After fine-tuning, answers are right but the model then writes a new question and answers it too, until "
         "max_new_tokens runs out.",
    "b": "After 500 steps the adapter's weights are exactly what they were at step 0, and the loss curve is flat.",
    "c": "Evaluating 64 prompts in batches of 16 scores far worse than evaluating them one at a time.",
    "d": "The validation loss of the same checkpoint on the same data changes every time you run the evaluation.",
}
_Q4_ANSWERS = {"a": "eos_in_labels", "b": "optimizer_covers", "c": "generation_padding", "d": "eval_deterministic"}


def _check_failures(answer, *context):
    from ...validation.checks import CHECKS

    if is_placeholder(answer):
        raise NotAttempted
    if not isinstance(answer, dict):
        return "answer with a dict {failure letter: check name}, e.g. {'a': 'vocab_match', ...}."
    if any(is_placeholder(v) for v in answer.values()):
        raise NotAttempted
    missing = sorted(set(FAILURES) - set(answer))
    if missing:
        return f"give a check for every failure: {', '.join(missing)} is missing."
    for letter in sorted(FAILURES):
        name = str(answer[letter]).strip()
        if name not in CHECKS:
            return f"{letter}: {name!r} is not a pre-flight check; use a name from checks.CHECKS."
        if name != _Q4_ANSWERS[letter]:
            return f"{letter}: that check would pass on this failure; which measurement would differ?"
    return None


q4 = Exercise(
    "q4", lab="lab10", title="The check that would have caught it",
    checker=_check_failures,
    hints=(("For each failure, ask which of the four objects is wrong: the data, the tokenizer, the optimizer or the "
           "evaluation loop."),
           ("Keeps talking: the data never taught it to stop. Flat loss: the optimizer. Batches worse than single: "
           "padding. Jittery evaluation: dropout.")),
    solution_code="caught_by = {'a': 'eos_in_labels', 'b': 'optimizer_covers', 'c': 'generation_padding',\n"
                  "             'd': 'eval_deterministic'}",
)
