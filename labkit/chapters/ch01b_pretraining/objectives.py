"""The two self-supervised objectives on one batch (next-token and masked-token), and reading loss-vs-tokens curves.

Both batches come from ``transformers.DataCollatorForLanguageModeling``: ``mlm=False`` for causal LM (labels are
the inputs; the model shifts them by one inside), ``mlm=True`` for BERT-style masking (Devlin et al. 2019,
section 3.1: 15% of positions are chosen; of those 80% become [MASK], 10% a random token, 10% stay unchanged).

>>> views = objective_views(tokenizer, corpus["train"]["text"][:2], seq_len=24, seed=0)  # doctest: +SKIP
>>> views.table(0)  # one row per position: token, next-token target, masked input, masked label  # doctest: +SKIP
>>> tokens_to_match(scratch_curve, pretrained_curve)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass

from ...core import LabkitError
from ...units import IGNORE_INDEX

MASK_TOKEN = "<mask>"  # added to a copy of a tokenizer that has no mask token (decoder tokenizers have none)


def _encode(tokenizer, texts, seq_len: int) -> list[dict]:
    if isinstance(texts, str):
        texts = [texts]
    texts = [t for t in texts if t]
    if not texts:
        raise LabkitError("No text to encode: pass a list of non-empty strings, e.g. corpus['train']['text'][:4].")
    if not isinstance(seq_len, int) or seq_len < 2:
        raise LabkitError(f"seq_len must be a whole number >= 2 (a target needs a token before it), got {seq_len!r}.")
    ids = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=seq_len)["input_ids"]
    return [{"input_ids": row} for row in ids]


def _pad_ready(tokenizer):
    if tokenizer.pad_token is None:
        tokenizer = copy.deepcopy(tokenizer)
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def causal_lm_batch(tokenizer, texts, *, seq_len: int = 32) -> dict:
    """Next-token batch: ``labels`` equal ``input_ids`` (padding -> the ignore index); the model shifts them by one inside.

    >>> batch = causal_lm_batch(tokenizer, ["A dragon sleeps."], seq_len=16)  # doctest: +SKIP
    """
    from transformers import DataCollatorForLanguageModeling

    tokenizer = _pad_ready(tokenizer)
    return dict(DataCollatorForLanguageModeling(tokenizer, mlm=False)(_encode(tokenizer, texts, seq_len)))


def shift_for_next_token(input_ids, labels=None):
    """(inputs, targets) as the loss sees them: position t of ``inputs`` is scored against token t+1."""
    labels = input_ids if labels is None else labels
    return input_ids[..., :-1], labels[..., 1:]


def with_mask_token(tokenizer):
    """``tokenizer`` if it has a mask token, else a copy with ``<mask>`` added as one."""
    if tokenizer.mask_token is not None:
        return tokenizer
    tokenizer = _pad_ready(copy.deepcopy(tokenizer))
    tokenizer.add_special_tokens({"mask_token": MASK_TOKEN})
    return tokenizer


def masked_lm_batch(tokenizer, texts, *, seq_len: int = 32, mlm_probability: float = 0.15, seed: int = 0) -> dict:
    """BERT-style masked batch (seeded): chosen positions keep their token as label, all others get the ignore index.

    The tokenizer needs a mask token: pass ``with_mask_token(tokenizer)`` for a decoder's tokenizer.
    """
    from transformers import DataCollatorForLanguageModeling

    if tokenizer.mask_token is None:
        raise LabkitError("This tokenizer has no mask token: pass with_mask_token(tokenizer) (a copy with <mask>).")
    if not 0 < mlm_probability < 1:
        raise LabkitError(f"mlm_probability is a fraction in (0, 1) (BERT uses 0.15), got {mlm_probability!r}.")
    collator = DataCollatorForLanguageModeling(_pad_ready(tokenizer), mlm=True, mlm_probability=mlm_probability,
                                               seed=seed)
    return dict(collator(_encode(tokenizer, texts, seq_len)))


def mask_outcomes(original_ids, masked_ids, labels, mask_id: int) -> list[list[str]]:
    """Per position: "" (not chosen), "[MASK]", "random" (another token) or "kept" (chosen, left unchanged)."""
    rows = []
    for orig, new, lab in zip(original_ids.tolist(), masked_ids.tolist(), labels.tolist()):
        rows.append(["" if y == IGNORE_INDEX else "[MASK]" if n == mask_id else "kept" if n == o else "random"
                     for o, n, y in zip(orig, new, lab)])
    return rows


@dataclass
class ObjectiveViews:
    """One batch seen by both objectives: what each model is given and what it must predict."""

    tokenizer: object  # tokenizer with a mask token (decodes both views)
    causal: dict  # causal_lm_batch output: input_ids, attention_mask, labels
    masked: dict  # masked_lm_batch output: input_ids (some masked), attention_mask, labels
    outcomes: list  # mask_outcomes per row

    def readable(self, ids: list[int]) -> list[str]:
        """Each token on its own, spaces shown as '·' and newlines as '↵' so that they can be seen."""
        return [self.tokenizer.decode([i]).replace(" ", "·").replace("\n", "↵") for i in ids]

    def table(self, row: int = 0):
        """One row per position of example ``row``: token, next-token target, masked input, masked label."""
        import pandas as pd

        if not 0 <= row < len(self.outcomes):
            raise LabkitError(f"row must be between 0 and {len(self.outcomes) - 1}, got {row!r}.")
        tok = self.readable
        keep = self.causal["attention_mask"][row].bool()
        ids = self.causal["input_ids"][row][keep].tolist()
        targets = ids[1:] + [None]
        masked = self.masked["input_ids"][row][keep].tolist()
        labels = self.masked["labels"][row][keep].tolist()
        return pd.DataFrame({
            "token": tok(ids),
            "next-token target": [tok([t])[0] if t is not None else "(none: last position)" for t in targets],
            "masked input": tok(masked),
            "masked label": [tok([y])[0] if y != IGNORE_INDEX else "" for y in labels],
            "masking": self.outcomes[row][:len(ids)],
        })

    def signal(self):
        """Positions that give the loss a target under each objective (padding excluded)."""
        import pandas as pd

        _, targets = shift_for_next_token(self.causal["input_ids"], self.causal["labels"])
        causal = int((targets != IGNORE_INDEX).sum())
        masked = int((self.masked["labels"] != IGNORE_INDEX).sum())
        tokens = int(self.causal["attention_mask"].sum())
        counts = {"next-token (causal LM)": causal, "masked-token (BERT-style)": masked}
        return pd.DataFrame({"positions with a target": counts,
                             "share of tokens": {k: v / tokens for k, v in counts.items()}})

    def mask_shares(self) -> dict:
        """Counts of chosen positions and the shares that became [MASK], random or stayed unchanged."""
        flat = [o for row in self.outcomes for o in row if o]
        total = len(flat)
        shares = {k: flat.count(k) / total if total else math.nan for k in ("[MASK]", "random", "kept")}
        tokens = int(self.causal["attention_mask"].sum())
        return {"chosen": total, "chosen_share": total / tokens, **shares}


def objective_views(tokenizer, texts, *, seq_len: int = 32, mlm_probability: float = 0.15,
                    seed: int = 0) -> ObjectiveViews:
    """Build the causal-LM and the masked-LM view of the same texts, side by side.

    >>> views = objective_views(tokenizer, ["The Cindermaw breathes fire."], seq_len=16)  # doctest: +SKIP
    >>> views.table(0)  # doctest: +SKIP
    """
    tokenizer = with_mask_token(tokenizer)
    causal = causal_lm_batch(tokenizer, texts, seq_len=seq_len)
    masked = masked_lm_batch(tokenizer, texts, seq_len=seq_len, mlm_probability=mlm_probability, seed=seed)
    outcomes = mask_outcomes(causal["input_ids"], masked["input_ids"], masked["labels"], tokenizer.mask_token_id)
    return ObjectiveViews(tokenizer, causal, masked, outcomes)


def sample_continuation(model, tokenizer, prompt: str, *, max_new_tokens: int = 30) -> str:
    """Greedy continuation of plain text (no chat template): what next-token prediction has learned so far."""
    import torch

    enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    model.train(was_training)
    return prompt + tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


# ---- loss against tokens seen ---------------------------------------------------------------------------------------

def stack_histories(results) -> object:
    """One history from training rounds run one after another: steps, tokens and time_s keep counting."""
    import pandas as pd

    frames, step, tokens, time_s = [], 0, 0.0, 0.0
    for result in results:
        frame = getattr(result, "history", result).copy()
        frame["step"] += step
        frame["tokens"] += tokens
        frame["time_s"] += time_s
        step, tokens, time_s = int(frame["step"].iloc[-1]), float(frame["tokens"].iloc[-1]), frame["time_s"].iloc[-1]
        frames.append(frame)
    if not frames:
        raise LabkitError("No training rounds to stack: pass a list of lk.train results.")
    return pd.concat(frames, ignore_index=True)


def loss_curve(run, *, before: float | dict | None = None, label: str | None = None):
    """Validation loss and perplexity against tokens seen, from a TrainResult or history with eval_loss.

    ``before`` (an evaluate_loss dict or a loss) adds the point at 0 tokens: the model before this training.
    """
    import pandas as pd

    history = getattr(run, "history", run)
    if "eval_loss" not in getattr(history, "columns", ()):
        raise LabkitError("This run has no validation loss: train with eval_data=... and eval_every=... .")
    points = history.loc[history["eval_loss"].notna(), ["tokens", "eval_loss"]].astype(float)
    if before is not None:
        start = before["eval_loss"] if isinstance(before, dict) else float(before)
        points = pd.concat([pd.DataFrame({"tokens": [0.0], "eval_loss": [start]}), points], ignore_index=True)
    if points.empty:
        raise LabkitError("This run has no validation points: set eval_every smaller than num_steps.")
    points["eval_perplexity"] = points["eval_loss"].clip(upper=50).map(math.exp)
    points.insert(0, "run", label or getattr(run, "label", "run"))
    return points.reset_index(drop=True)


def _points(curve) -> list[tuple[float, float]]:
    if not {"tokens", "eval_loss"} <= set(getattr(curve, "columns", ())):
        raise LabkitError("Pass a curve from loss_curve(...): a table with 'tokens' and 'eval_loss' columns.")
    return sorted(zip(curve["tokens"].astype(float), curve["eval_loss"].astype(float)))


def loss_at(curve, tokens: float) -> float:
    """Validation loss of ``curve`` at ``tokens`` seen (linear between measured points)."""
    points = _points(curve)
    if not points[0][0] <= tokens <= points[-1][0]:
        raise LabkitError(f"tokens={tokens:,.0f} is outside this curve's range {points[0][0]:,.0f} to "
                          f"{points[-1][0]:,.0f}: pick a point the run measured.")
    for (t0, l0), (t1, l1) in itertools.pairwise(points):
        if t0 <= tokens <= t1:
            return l0 if t1 == t0 else l0 + (l1 - l0) * (tokens - t0) / (t1 - t0)
    return points[-1][1]


@dataclass(frozen=True)
class Match:
    """When a curve first reaches a target loss: the tokens (interpolated) and the measured points around it."""

    target_loss: float  # the loss to reach
    tokens: float | None  # tokens seen when the curve first reaches it (None: not within the run)
    bracket: tuple[float, float] | None  # (last measured tokens above the target, first at or below it)
    max_tokens: float  # the most tokens the curve measured (a lower bound when not reached)

    @property
    def reached(self) -> bool:
        return self.tokens is not None

    def __str__(self) -> str:
        if not self.reached:
            return f"loss {self.target_loss:.3f} not reached within {self.max_tokens:,.0f} tokens"
        return f"loss {self.target_loss:.3f} reached after ~{self.tokens:,.0f} tokens"


def tokens_to_reach(curve, target_loss: float) -> Match:
    """The tokens after which ``curve`` first reaches ``target_loss`` (linear between the two measured points)."""
    points = _points(curve)
    if points[0][1] <= target_loss:
        return Match(target_loss, points[0][0], (points[0][0], points[0][0]), points[-1][0])
    for (t0, l0), (t1, l1) in itertools.pairwise(points):
        if l1 <= target_loss:
            return Match(target_loss, t0 + (l0 - target_loss) / (l0 - l1) * (t1 - t0), (t0, t1), points[-1][0])
    return Match(target_loss, None, None, points[-1][0])


def tokens_to_match(scratch, pretrained, *, at_tokens: float = 0.0) -> Match:
    """Tokens the from-scratch curve needs to reach the pretrained curve's loss at ``at_tokens`` (0: out of the box).

    >>> tokens_to_match(scratch_curve, pretrained_curve).tokens  # doctest: +SKIP
    """
    return tokens_to_reach(scratch, loss_at(pretrained, at_tokens))
