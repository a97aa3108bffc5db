"""Instruction tuning vs single-task SFT at equal steps, and a held-out task family: train on five families of the
instruction set, test on the sixth.

>>> table = transfer_table(base, instructions["train"], instructions["test"], held_out="sort_list",
...                        single_task="arithmetic", num_steps=40)  # doctest: +SKIP
"""

from __future__ import annotations

from ...core import LabkitError


def families(data) -> list[str]:
    """The task families present, in the kit's order (labkit.data.INSTRUCTION_FAMILIES) then any others."""
    from ...data import INSTRUCTION_FAMILIES

    present = {row["family"] for row in data}
    return [f for f in INSTRUCTION_FAMILIES if f in present] + sorted(present - set(INSTRUCTION_FAMILIES))


def check_family(family: str, data) -> None:
    """A LabkitError unless ``family`` occurs in ``data``."""
    known = families(data)
    if family not in known:
        raise LabkitError(f"There is no task family {family!r} in this data: use one of {', '.join(known)}.")


def family_split(data, held_out: str):
    """(rows of every other family, rows of ``held_out``): the held-out family is never trained on."""
    rows = [dict(r) for r in data]
    check_family(held_out, rows)
    return [r for r in rows if r["family"] != held_out], [r for r in rows if r["family"] == held_out]


def per_family(data, n: int) -> list[dict]:
    """The first ``n`` rows of each family (a balanced evaluation set)."""
    rows = [dict(r) for r in data]
    if not isinstance(n, int) or n < 1:
        raise LabkitError(f"n is a number of rows per family, 1 or more; got {n!r}.")
    return [r for f in families(rows) for r in [x for x in rows if x["family"] == f][:n]]


def mix(rows, n: int, *, seed: int = 0) -> list[dict]:
    """``n`` rows drawn evenly from the families of ``rows`` (round-robin over shuffled families)."""
    import random

    rows = [dict(r) for r in rows]
    by_family = {f: [r for r in rows if r["family"] == f] for f in families(rows)}
    for f, items in by_family.items():
        random.Random(seed).shuffle(items)
    out = []
    while len(out) < n and any(by_family.values()):
        for f in list(by_family):
            if by_family[f] and len(out) < n:
                out.append(by_family[f].pop())
    return out


def family_scores(model, tokenizer, rows, *, max_new_tokens: int = 16) -> dict:
    """Exact match per family of greedy answers (the bare instruction, as lk.train's SFT formats it)."""
    from ...training import generate_answers
    from .baselines import exact_match

    rows = [dict(r) for r in rows]
    answers = generate_answers(model, tokenizer, [r["instruction"] for r in rows], max_new_tokens=max_new_tokens)
    return {f: exact_match([a for a, r in zip(answers, rows) if r["family"] == f],
                           [r["answer"] for r in rows if r["family"] == f]) for f in families(rows)}


def transfer_table(base, train, test, *, held_out: str, single_task: str, num_steps: int, n_train: int = 200,
                   batch_size: int = 4, seq_len: int = 96, max_new_tokens: int = 16, seed: int = 0, progress=True):
    """Exact match per family (columns) for: the base model, SFT on ``single_task`` only, the six-family mix, and the
    five-family mix without ``held_out``. Every tuned run takes ``num_steps`` steps of ``batch_size``.

    Returns (table, {run: TrainResult}).
    """
    import pandas as pd

    from .dynamics import train_lora

    train_rows = [dict(r) for r in train]
    check_family(held_out, train_rows)
    check_family(single_task, train_rows)
    five, _ = family_split(train_rows, held_out)
    sets = {f"SFT: {single_task} only": mix([r for r in train_rows if r["family"] == single_task], n_train, seed=seed),
            "instruction mix: 6 families": mix(train_rows, n_train, seed=seed),
            f"instruction mix: 5 (no {held_out})": mix(five, n_train, seed=seed)}
    rows = [{"run": "base (zero-shot)", **family_scores(base[0], base[1], test, max_new_tokens=max_new_tokens)}]
    results = {}
    for label, data in sets.items():
        model, result = train_lora(base, data, num_steps=num_steps, batch_size=batch_size, seq_len=seq_len, seed=seed,
                                   label=label, progress=progress)
        rows.append({"run": label, **family_scores(model, base[1], test, max_new_tokens=max_new_tokens)})
        results[label] = result
        del model
    table = pd.DataFrame(rows).set_index("run")
    table["mean"] = table.mean(axis=1)
    return table, results
