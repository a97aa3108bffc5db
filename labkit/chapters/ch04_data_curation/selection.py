"""Rankers that choose what to train on, and the data-budget curve.

- ``ifd``: instruction-following difficulty, PPL(answer | instruction) / PPL(answer) on the model itself (Cherry LLM,
  Li et al. 2023, arXiv:2308.12032; Superfiltering, Li et al. 2024, arXiv:2402.00530, scores it with a small model).
  Highest first, among scores below 1 (at or above 1 the instruction does not help: Cherry drops those).
- ``perplexity``: PPL(answer | instruction), highest first (the hardest examples).
- ``length``: the longest answers first ("Long Is More for Alignment", Zhao et al. 2024, arXiv:2402.04833).
- ``random``: a seeded shuffle, the baseline every selector must beat.
- ``diversity``: k-center greedy on the model's mean-pooled hidden states (the core-set of Sener & Savarese 2018).

>>> ids = select(pool, scores, "ifd", 0.1)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...core import LabkitError

SELECTORS = ("ifd", "perplexity", "length", "random", "diversity")


def ifd(loss_with: float, loss_without: float) -> float:
    """IFD from the answer's mean loss with and without the instruction: exp(with) / exp(without)."""
    return math.exp(loss_with - loss_without)


@dataclass
class PoolScores:
    """What each selector ranks by, for the rows of a pool (same order as ``ids``)."""

    ids: list  # row ids of the pool
    loss_with: list  # answer loss given the instruction (nats)
    loss_without: list  # answer loss with an empty instruction (nats)
    answer_chars: list  # answer length in characters
    hidden: object  # numpy [rows, hidden]: mean-pooled last hidden state of the whole example
    tokens: list  # tokens per example as trained (chat template, instruction, answer)

    @property
    def ifd(self) -> list:
        return [ifd(a, b) for a, b in zip(self.loss_with, self.loss_without)]

    @property
    def perplexity(self) -> list:
        return [math.exp(a) for a in self.loss_with]

    def table(self):
        """One row per pool example: id, IFD, perplexity, answer length."""
        import pandas as pd

        return pd.DataFrame({"id": self.ids, "ifd": self.ifd, "perplexity": self.perplexity,
                             "answer_chars": self.answer_chars})


def score_pool(model, tokenizer, pool, *, batch_size: int = 16) -> PoolScores:
    """Two passes of the model over ``pool`` (instruction/answer rows with an ``id``): with and without the
    instruction. The first pass also keeps the mean-pooled hidden states for the diversity pick."""
    from .cleaning import quiet
    from .runs import answer_scores

    if "id" not in pool.column_names:
        raise LabkitError("The pool needs an 'id' column to name its rows: score a cleaned raw set.")
    with_q = answer_scores(model, tokenizer, pool, batch_size=batch_size, hidden=True)
    with quiet():
        without = pool.map(lambda row: {"instruction": ""}, keep_in_memory=True, load_from_cache_file=False)
    without_q = answer_scores(model, tokenizer, without, batch_size=batch_size)
    return PoolScores(ids=list(pool["id"]), loss_with=with_q.loss, loss_without=without_q.loss,
                      answer_chars=[len(a) for a in pool["answer"]], hidden=with_q.hidden,
                      tokens=with_q.tokens)


def k_center(points, k: int, *, seed: int = 0) -> list[int]:
    """Indices of ``k`` points chosen greedily, each the farthest from those already chosen (k-center greedy)."""
    import numpy as np

    x = np.asarray(points, dtype=np.float64)
    if k <= 0 or len(x) == 0:
        return []
    first = int(np.random.default_rng(seed).integers(len(x)))
    chosen = [first]
    dist = np.linalg.norm(x - x[first], axis=1)
    while len(chosen) < min(k, len(x)):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
    return chosen


def budget(n: int, fraction: float) -> int:
    """Rows kept at ``fraction`` of ``n`` (at least one)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise LabkitError(f"fraction must be in (0, 1] (e.g. 0.1 for 10% of the pool), got {fraction!r}.")
    return max(1, round(n * fraction))


def rank(scores: PoolScores, selector: str, *, seed: int = 0) -> list:
    """Pool ids in the order ``selector`` picks them (for ``diversity``, the k-center order)."""
    import random

    if selector not in SELECTORS:
        raise LabkitError(f"Unknown selector {selector!r}: use one of {', '.join(SELECTORS)}.")
    ids = scores.ids
    if selector == "ifd":
        key = [(v < 1, v) for v in scores.ifd]  # scores >= 1 go last (Cherry drops them)
        order = sorted(range(len(ids)), key=lambda i: key[i], reverse=True)
    elif selector == "perplexity":
        order = sorted(range(len(ids)), key=lambda i: scores.loss_with[i], reverse=True)
    elif selector == "length":
        order = sorted(range(len(ids)), key=lambda i: scores.answer_chars[i], reverse=True)
    elif selector == "random":
        order = list(range(len(ids)))
        random.Random(seed).shuffle(order)
    else:
        order = k_center(scores.hidden, len(ids), seed=seed)
    return [ids[i] for i in order]


def select(scores: PoolScores, selector: str, fraction: float, *, seed: int = 0) -> list:
    """The ids ``selector`` keeps at ``fraction`` of the pool."""
    if selector not in SELECTORS:
        raise LabkitError(f"Unknown selector {selector!r}: use one of {', '.join(SELECTORS)}.")
    k = budget(len(scores.ids), fraction)
    if selector == "diversity":  # k-center's first picks do not depend on k: compute only k of them
        return [scores.ids[i] for i in k_center(scores.hidden, k, seed=seed)]
    return rank(scores, selector, seed=seed)[:k]


def subset(pool, ids):
    """The rows of ``pool`` whose id is in ``ids``, in pool order (a ``datasets`` filter)."""
    from .cleaning import quiet

    keep = set(ids)
    with quiet():
        return pool.filter(lambda row: row["id"] in keep, keep_in_memory=True)


def budget_curve(runner, pool, scores: PoolScores, *, fractions, selectors=SELECTORS, eval_sets: dict,
                 full_row: dict | None = None, seed: int = 0, progress: bool = True):
    """Train on each selector's pick at each fraction (equal steps) and score it. ``full_row``, a run on the whole
    pool, stands for fraction 1.0 of every selector (they all keep everything there). A DataFrame."""
    import pandas as pd
    from tqdm.auto import tqdm

    for s in selectors:
        if s not in SELECTORS:
            raise LabkitError(f"Unknown selector {s!r}: use one of {', '.join(SELECTORS)}.")
    fractions = [f for f in fractions if budget(len(scores.ids), f) and f < 1]
    rows = []
    bar = tqdm(total=len(fractions) * len(selectors), desc="budget curve", unit="run") if progress else None
    for fraction in fractions:
        for selector in selectors:
            ids = select(scores, selector, fraction, seed=seed)
            row = runner.run(subset(pool, ids), eval_sets=eval_sets, label=f"{selector} {fraction:.0%}")
            rows.append({"selector": selector, "fraction": fraction, **row})
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    if full_row is not None:
        rows += [{"selector": s, "fraction": 1.0, **full_row} for s in selectors]
    return pd.DataFrame(rows)
