"""Per-example answer scores on SmolLM2 (loss, greedy exact match, mean-pooled hidden state) in one forward pass,
and LoRA runs that all start from the same adapter so that only the data differs between them.

>>> scores = answer_scores(model, tokenizer, test)  # doctest: +SKIP
>>> runner = Runner(model, tokenizer, num_steps=20, batch_size=8)  # doctest: +SKIP
>>> row = runner.run(clean_set, eval_sets={"test": test}, label="clean")  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ...core import LabkitError


@dataclass
class AnswerScores:
    """Per-example numbers of one pass over instruction/answer rows (in the rows' order)."""

    loss: list  # mean cross-entropy of the answer tokens (end-of-turn included), nats
    exact: list  # True where every answer token is the model's top choice: greedy decoding would write the answer
    hidden: object  # numpy array [rows, hidden size]: last hidden state mean-pooled over the whole example, or None
    tokens: list  # tokens per example (prompt and answer)


def answer_scores(model, tokenizer, data, *, seq_len: int = 256, batch_size: int = 16,
                  hidden: bool = False) -> AnswerScores:
    """Score each row's answer under ``model`` given its instruction, teacher-forced, without generating.

    The answer counts as exact when the model's most likely next token is the reference token at every answer
    position: greedy decoding then produces exactly the answer and stops, so this equals generated exact match
    (up to a different tokenization of the same string), at the cost of one forward pass.
    """
    import numpy as np
    import torch

    from ...batches import as_dataset, in_order, tokenize
    from ...units import IGNORE_INDEX

    data = as_dataset(data)
    missing = [c for c in ("instruction", "answer") if c not in data.column_names]
    if missing:
        raise LabkitError(f"answer_scores needs 'instruction' and 'answer' columns; this data set lacks {missing}.")
    examples = tokenize(data, tokenizer, "sft", seq_len=seq_len)
    if len(examples) != len(data):
        raise LabkitError(f"{len(data) - len(examples)} answers were cut off entirely at seq_len={seq_len}: "
                          "raise seq_len or drop the overlong rows first.")
    device = next(model.parameters()).device
    pad_id = getattr(tokenizer, "pad_token_id", None) or 0
    losses, exact, pooled = [], [], []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in in_order(examples, batch_size, pad_id):
            batch = {k: v.to(device) for k, v in batch.items()}
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                        output_hidden_states=hidden)
            logits, labels = out.logits[:, :-1].float(), batch["labels"][:, 1:]
            mask = labels != IGNORE_INDEX
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0), reduction="none")
            losses += ((nll * mask).sum(1) / mask.sum(1).clamp(min=1)).tolist()
            exact += ((logits.argmax(-1) == labels) | ~mask).all(1).tolist()
            if hidden:
                m = batch["attention_mask"].unsqueeze(-1).float()
                pooled.append(((out.hidden_states[-1].float() * m).sum(1) / m.sum(1)).cpu().numpy())
    model.train(was_training)
    return AnswerScores(loss=losses, exact=exact, hidden=np.concatenate(pooled) if hidden else None,
                        tokens=[len(e["input_ids"]) for e in examples])


def trainable_state(model) -> dict:
    """A copy of every trainable tensor (the adapter right after apply_method): what each run starts from."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def restore(model, state: dict) -> None:
    """Put the trainable tensors back to ``state``, so the next run starts where the first one did."""
    import torch

    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


class Runner:
    """LoRA runs on one model that each start from the same adapter, at equal steps, scored by exact match.

    ``run`` restores the adapter, trains ``num_steps`` with ``lk.train`` and scores every evaluation set; the
    adapter is restored again afterwards so the model can score data as the base model.
    """

    def __init__(self, model, tokenizer, *, num_steps: int, batch_size: int, seq_len: int = 192, lr=None):
        self.model, self.tokenizer = model, tokenizer
        self.num_steps, self.batch_size, self.seq_len, self.lr = num_steps, batch_size, seq_len, lr
        self.init = trainable_state(model)
        if not self.init:
            raise LabkitError("The model has nothing to train: apply LoRA first, model = lk.apply_method(model, "
                              "'lora').")
        self.results = {}  # label -> TrainResult

    def run(self, data, *, eval_sets: dict, label: str) -> dict:
        """Train on ``data`` from the initial adapter and return a row: steps, time, loss, exact match per set."""
        from ...training import train

        restore(self.model, self.init)
        start = time.perf_counter()
        result = train(self.model, self.tokenizer, data, num_steps=self.num_steps, batch_size=self.batch_size,
                       seq_len=self.seq_len, lr=self.lr, objective="sft", label=label, live_plot=False,
                       progress=False)
        row = {"run": label, "examples": len(data), "steps": result.num_steps, "time_s": result.time_s,
               "tokens_per_s": result.tokens_per_s, "final_loss": result.final_loss}
        for name, ds in eval_sets.items():
            scores = answer_scores(self.model, self.tokenizer, ds)
            row[f"exact_{name}"] = sum(scores.exact) / len(scores.exact)
            row[f"loss_{name}"] = sum(scores.loss) / len(scores.loss)
        row["wall_s"] = time.perf_counter() - start
        self.results[label] = result
        restore(self.model, self.init)
        return row
