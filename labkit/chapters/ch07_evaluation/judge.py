"""SmolLM2 as a pairwise LLM judge of instruction answers: its agreement with exact match, its position bias
(the same pair in both orders) and its self-preference (its own wrong answers against someone else's).

The judge reads "Question / Answer A / Answer B", and its verdict is the softmax of its next-token logits for
"A" and "B": one forward pass per ordering, no sampling.

>>> study = judge_study(model, tokenizer, rows, own_answers)  # doctest: +SKIP
>>> study.summary  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core import LabkitError

JUDGE_PROMPT = ("Which answer to the question is correct?\n\nQuestion: {question}\n\nAnswer A: {a}\n\nAnswer B: {b}"
                "\n\nReply with the letter only: A or B.")


def prefer_first(model, tokenizer, questions, first, second, *, batch_size: int = 8):
    """P(the judge picks ``first``) for each pair shown as (A=first, B=second): a numpy array."""
    import numpy as np
    import torch

    from ...batches import prompt_text

    questions, first, second = list(questions), list(first), list(second)
    if not (len(questions) == len(first) == len(second)) or not questions:
        raise LabkitError("questions, first and second need the same number of items (at least one).")
    ids = [tokenizer.encode(letter, add_special_tokens=False)[0] for letter in ("A", "B")]
    device = next(model.parameters()).device
    out = []
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        for i in range(0, len(questions), batch_size):
            prompts = [prompt_text(tokenizer, JUDGE_PROMPT.format(question=q, a=a, b=b))
                       for q, a, b in zip(questions[i:i + batch_size], first[i:i + batch_size],
                                          second[i:i + batch_size])]
            enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.no_grad():
                logits = model(**enc, logits_to_keep=1).logits[:, -1, ids].float()
            out.append(torch.softmax(logits, -1)[:, 0].cpu().numpy())
    finally:
        tokenizer.padding_side = side
    return np.concatenate(out)


@dataclass
class JudgeStudy:
    """The judge's verdicts and what they say about it."""

    table: object  # DataFrame per question: question, reference, own, own_correct (exact match), foreign,
    # p_ref_first (P(reference) shown first), p_ref_second (P(reference) shown second), p_own_vs_ref, p_foreign_vs_ref
    summary: dict  # agreement_with_em, position_flip_rate, picks_a_rate, self_preference, n


def judge_study(model, tokenizer, rows, own_answers, *, seed: int = 0) -> JudgeStudy:
    """Judge (reference vs the model's own answer) in both orders, and (reference vs a foreign wrong answer: another
    question's reference) to separate self-preference from plain mistakes."""
    import numpy as np
    import pandas as pd

    rows, own = list(rows), [str(a) for a in own_answers]
    if len(rows) != len(own) or len(rows) < 2:
        raise LabkitError("Give one own answer per row, and at least two rows.")
    questions = [r["instruction"] for r in rows]
    refs = [str(r["answer"]) for r in rows]
    rng = np.random.default_rng(seed)
    shift = rng.permutation(len(rows))
    shift = np.where(shift == np.arange(len(rows)), (np.arange(len(rows)) + 1) % len(rows), shift)
    foreign = [refs[j] for j in shift]  # a well-formed answer to another question: wrong here, not the judge's own
    own_correct = np.array([" ".join(o.split()) == " ".join(r.split()) for o, r in zip(own, refs)])
    p_ref_first = prefer_first(model, tokenizer, questions, refs, own)
    p_ref_second = 1 - prefer_first(model, tokenizer, questions, own, refs)
    p_foreign_first = 1 - prefer_first(model, tokenizer, questions, foreign, refs)  # P(reference) with foreign as A
    p_foreign_second = prefer_first(model, tokenizer, questions, refs, foreign)
    table = pd.DataFrame({"question": questions, "reference": refs, "own": own, "own_correct": own_correct,
                          "foreign": foreign, "p_ref_first": p_ref_first, "p_ref_second": p_ref_second,
                          "p_ref_vs_foreign": (p_foreign_first + p_foreign_second) / 2})
    wrong = ~own_correct
    verdict_first, verdict_second = p_ref_first > 0.5, p_ref_second > 0.5
    both = np.concatenate([verdict_first[wrong], verdict_second[wrong]])
    own_wins = 1 - (p_ref_first + p_ref_second)[wrong] / 2
    foreign_wins = 1 - table["p_ref_vs_foreign"].to_numpy()[wrong]
    summary = {
        "n": len(rows),
        "own_wrong": int(wrong.sum()),
        # where exact match says the own answer is wrong, the judge should pick the reference (both orders)
        "agreement_with_em": float(both.mean()) if wrong.any() else float("nan"),
        # the verdict changes when the two answers swap places
        "position_flip_rate": float((verdict_first != verdict_second).mean()),
        # how often "A" wins, whatever A is (0.5 with no position bias)
        "picks_a_rate": float(np.concatenate([p_ref_first > 0.5, p_ref_second <= 0.5]).mean()),
        # P(own wrong answer beats the reference) - P(foreign wrong answer beats it): > 0 means self-preference
        "self_preference": float(own_wins.mean() - foreign_wins.mean()) if wrong.any() else float("nan"),
        "own_wins": own_wins,
        "foreign_wins": foreign_wins,
    }
    return JudgeStudy(table=table, summary=summary)
