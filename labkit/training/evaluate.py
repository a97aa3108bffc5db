"""Evaluation helpers: loss/perplexity or accuracy on a data set, exact match of generated answers, and text
embeddings (the mean-pooled last hidden state)."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

from ..core import LabkitError, fast_mode


def run_eval(model, examples: list[dict], batch_size: int, pad_id: int, objective: str,
             autocast=contextlib.nullcontext) -> dict:
    """Mean loss over tokenized examples (weighted by predicted tokens); accuracy too for classification."""
    import torch

    from ..batches import in_order
    from ..units import IGNORE_INDEX

    device = next(model.parameters()).device
    total_loss = total_weight = correct = 0.0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in in_order(examples, batch_size, pad_id):
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast():
                out = model(**batch)
            if objective == "classification":
                weight = batch["labels"].numel()
                correct += (out.logits.argmax(-1) == batch["labels"]).sum().item()
            else:
                weight = (batch["labels"][:, 1:] != IGNORE_INDEX).sum().item()  # tokens whose next token is predicted
            total_loss += out.loss.float().item() * weight
            total_weight += weight
    model.train(was_training)
    loss = total_loss / max(total_weight, 1)
    if objective == "classification":
        return {"eval_loss": loss, "eval_accuracy": correct / max(total_weight, 1)}
    return {"eval_loss": loss, "eval_perplexity": math.exp(min(loss, 50.0))}


def evaluate_loss(model, tokenizer, data, *, objective: str = "auto", batch_size: int = 8, seq_len: int = 128,
                  limit: int | None = None) -> dict:
    """Loss and perplexity (or accuracy, for classification) of ``model`` on ``data``, without training.

    >>> evaluate_loss(model, tokenizer, lk.data.load_corpus()["validation"])  # doctest: +SKIP
    {'eval_loss': 2.91, 'eval_perplexity': 18.4}
    """
    from ..batches import as_dataset, infer_objective, tokenize

    data = as_dataset(data)
    limit = limit if limit is not None else (32 if fast_mode() else None)
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    objective = infer_objective(data, model) if objective == "auto" else objective
    examples = tokenize(data, tokenizer, objective, seq_len=seq_len, label2id=getattr(model, "label2id", None))
    pad_id = getattr(tokenizer, "pad_token_id", None) or 0
    return run_eval(model, examples, batch_size, pad_id, objective)


@dataclass
class ExactMatch:
    """Exact-match score of generated answers and the table behind it."""

    score: float  # fraction of answers equal to the answer or an alias (whitespace-normalised; options widen it)
    table: object  # pandas DataFrame: question, answer, prediction, correct, contains

    def __repr__(self) -> str:
        return f"ExactMatch(score={self.score:.3f} on {len(self.table)} questions)"


def generate_answers(model, tokenizer, questions: list[str], *, max_new_tokens: int = 32,
                     batch_size: int = 16) -> list[str]:
    """Greedy answers to chat-formatted questions, in batches with left padding; the model is put in eval mode for
    it and left in the mode it was in."""
    import torch

    from ..batches import prompt_text

    if not questions:
        raise LabkitError("generate_answers needs at least one question (a list of strings).")
    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the right end of every row
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    answers = []
    try:
        for i in range(0, len(questions), batch_size):
            prompts = [prompt_text(tokenizer, q) for q in questions[i:i + batch_size]]
            enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id)
            answers += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return [a.strip() for a in answers]


def evaluate_exact_match(model, tokenizer, dataset, *, max_new_tokens: int = 32, limit: int | None = None,
                         batch_size: int = 16, ignore_case: bool = False, ignore_punctuation: bool = False,
                         contains: bool = False) -> ExactMatch:
    """Generate an answer to every question greedily; score it with the kit's exact_match metric (aliases count).

    >>> em = evaluate_exact_match(model, tokenizer, lk.data.load_instructions()["test"], limit=50)  # doctest: +SKIP
    >>> em.score, em.table.head()  # doctest: +SKIP
    """
    import pandas as pd

    from ..batches import as_dataset
    from ..metrics import load_metric
    from ..metrics.exact_match.exact_match import is_hit  # the metric's own rule, for the per-row table

    data = as_dataset(dataset)
    limit = limit if limit is not None else (32 if fast_mode() else None)
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    question = "instruction" if "instruction" in data.column_names else "question"
    predictions = generate_answers(model, tokenizer, list(data[question]), max_new_tokens=max_new_tokens,
                                   batch_size=batch_size)
    references = [[str(row["answer"]), *(str(a) for a in row.get("aliases") or [])] for row in data]
    options = {"ignore_case": ignore_case, "ignore_punctuation": ignore_punctuation}
    table = pd.DataFrame({"question": data[question], "answer": data["answer"], "prediction": predictions,
                          "correct": [is_hit(p, r, contains=contains, **options) for p, r in zip(predictions, references)],
                          "contains": [is_hit(p, r, contains=True, **options) for p, r in zip(predictions, references)]})
    score = load_metric("exact_match").compute(predictions=predictions, references=references, contains=contains,
                                               **options)["exact_match"]
    return ExactMatch(score=float(score), table=table)


def embed_texts(model, tokenizer, texts, *, batch_size: int = 32, seq_len: int = 64, normalize: bool = False):
    """The last hidden state of each text, mean-pooled over its real tokens: a numpy array, one row per text.

    ``normalize=True`` scales each row to unit L2 norm (for cosine kNN). The model stays frozen; its mode returns
    to what it was.

    >>> vectors = embed_texts(model, tokenizer, ["Feed Pip.", "Book a flight."])  # doctest: +SKIP
    """
    import numpy as np
    import torch

    texts = list(texts)
    if not texts:
        raise LabkitError("No texts to embed: pass a list of at least one string.")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=seq_len)["input_ids"]]
    order = sorted(range(len(texts)), key=lengths.__getitem__)  # batches of similar lengths: little padding
    vectors = None
    try:
        for i in range(0, len(texts), batch_size):
            rows = order[i:i + batch_size]
            enc = tokenizer([texts[r] for r in rows], return_tensors="pt", padding=True, truncation=True,
                            max_length=seq_len).to(device)
            with torch.no_grad():  # logits_to_keep=1: the hidden states are whole, the vocabulary head runs once
                hidden = model(**enc, output_hidden_states=True, logits_to_keep=1).hidden_states[-1].float()
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = ((hidden * mask).sum(1) / mask.sum(1)).cpu().numpy()
            if vectors is None:
                vectors = np.empty((len(texts), pooled.shape[1]), dtype=pooled.dtype)
            vectors[rows] = pooled
    finally:
        model.train(was_training)
    if normalize:
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors
