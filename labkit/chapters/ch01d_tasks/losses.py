"""Fine-tuning losses written out: token cross-entropy with label smoothing, class weights and token- or
sequence-level averaging, answer-only masks, and a wrapper that trains any model with them through ``lk.train``.

>>> loss = cross_entropy(logits, targets, smoothing=0.1, class_weights=[1.0, 4.0])  # doctest: +SKIP
>>> model = with_loss(clf, class_weights=weights)  # lk.train(model, ...) now trains on the weighted loss  # doctest: +SKIP
"""

from __future__ import annotations

import math
import numbers

from ...core import LabkitError
from ...units import IGNORE_INDEX

REDUCTIONS = ("token", "sequence")  # mean over every predicted token, or mean of each sequence's mean


def check_smoothing(smoothing) -> float:
    """``smoothing`` as a float in [0, 1), or a LabkitError that says what it must be."""
    if isinstance(smoothing, bool) or not isinstance(smoothing, numbers.Real) or not 0 <= smoothing < 1 \
            or not math.isfinite(smoothing):
        raise LabkitError(f"smoothing must be a number from 0 (off) up to but not including 1, e.g. smoothing=0.1; "
                          f"got {smoothing!r}.")
    return float(smoothing)


def check_class_weights(class_weights, num_classes: int):
    """``class_weights`` as a float tensor of length ``num_classes`` (or None), or a LabkitError."""
    import torch

    if class_weights is None:
        return None
    weights = torch.as_tensor(class_weights, dtype=torch.float32).flatten()
    if weights.numel() != num_classes:
        raise LabkitError(f"class_weights has {weights.numel()} values but there are {num_classes} classes: give "
                          "one weight per class, in the order of the labels (e.g. balanced_weights(train_labels, "
                          "labels)).")
    if not torch.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise LabkitError("class_weights must be finite, non-negative and not all zero: e.g. the inverse class "
                          "frequencies from balanced_weights(...).")
    return weights


def smoothed_targets(targets, num_classes: int, smoothing: float = 0.0):
    """The target distribution of label smoothing, as torch defines it: (1 - smoothing) on the true class plus
    smoothing / num_classes on every class (the true one included). Returns a float tensor (..., num_classes).

    >>> smoothed_targets([2], 4, 0.1).tolist()  # doctest: +SKIP
    [[0.025, 0.025, 0.925, 0.025]]
    """
    import torch

    smoothing = check_smoothing(smoothing)
    targets = torch.as_tensor(targets, dtype=torch.long)
    if num_classes < 2 or (targets < 0).any() or (targets >= num_classes).any():
        raise LabkitError(f"targets must be class ids from 0 to num_classes - 1 ({num_classes - 1}), with at least "
                          "two classes.")
    one_hot = torch.nn.functional.one_hot(targets, num_classes).float()
    return (1 - smoothing) * one_hot + smoothing / num_classes


def cross_entropy(logits, targets, *, smoothing: float = 0.0, class_weights=None, reduction: str = "token",
                  ignore_index: int = IGNORE_INDEX, return_per_example: bool = False):
    """Cross-entropy from log-softmax, written out: classes (N, C) with targets (N,), or tokens (B, T, V) with
    targets (B, T) already aligned with the logits (shift them first for a causal LM).

    ``smoothing`` and ``class_weights`` follow ``torch.nn.functional.cross_entropy``'s ``label_smoothing`` and
    ``weight`` (a weighted mean divides by the weights of the targets). ``reduction="token"`` averages over every
    predicted token (torch's mean: long sequences weigh more); ``"sequence"`` averages each sequence's mean loss
    (every sequence weighs the same). Targets equal to ``ignore_index`` count nowhere. With
    ``return_per_example=True`` it returns ``(loss, per_sequence_losses)``.

    >>> cross_entropy(torch.tensor([[2.0, 0.0]]), torch.tensor([0]))  # doctest: +SKIP
    tensor(0.1269)
    """
    import torch

    smoothing = check_smoothing(smoothing)
    if reduction not in REDUCTIONS:
        raise LabkitError(f"Unknown reduction {reduction!r}: use 'token' (mean over tokens) or 'sequence' (mean "
                          "over sequences).")
    if not torch.is_tensor(logits) or logits.dim() not in (2, 3):
        raise LabkitError("logits must be a tensor of shape (examples, classes) or (batch, tokens, vocabulary).")
    targets = torch.as_tensor(targets, device=logits.device)
    if targets.shape != logits.shape[:-1]:
        raise LabkitError(f"targets of shape {tuple(targets.shape)} do not match logits of shape "
                          f"{tuple(logits.shape)}: give one target per row (per token) of the logits.")
    num_classes = logits.shape[-1]
    weights = check_class_weights(class_weights, num_classes)
    if logits.dim() == 2:  # one "sequence" of one token per example
        logits, targets = logits.unsqueeze(1), targets.unsqueeze(1)
    keep = targets != ignore_index
    safe = targets.masked_fill(~keep, 0)
    if (safe < 0).any() or (safe >= num_classes).any():
        raise LabkitError(f"targets must be class ids from 0 to {num_classes - 1} (or {ignore_index} to ignore).")
    logp = torch.log_softmax(logits.float(), dim=-1)
    nll = -logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)  # (B, T)
    if weights is None:
        target_w = torch.ones_like(nll)
        uniform = -logp.mean(-1)
    else:
        weights = weights.to(logp.device)
        target_w = weights[safe]
        uniform = -(logp * weights).sum(-1) / num_classes
        nll = nll * target_w
    per_token = (1 - smoothing) * nll + smoothing * uniform
    per_token = per_token * keep
    target_w = target_w * keep
    per_sequence = per_token.sum(1) / target_w.sum(1).clamp(min=1e-12)  # each sequence's (weighted) mean
    if reduction == "token":
        loss = per_token.sum() / target_w.sum().clamp(min=1e-12)
    else:
        loss = per_sequence[keep.any(1)].mean()
    return (loss, per_sequence) if return_per_example else loss


def example_shares(labels, reduction: str = "token", ignore_index: int = IGNORE_INDEX) -> list[float]:
    """How much of the batch loss each sequence carries: n_i / sum(n) over predicted tokens for "token", 1 / B
    (sequences with any predicted token) for "sequence". Sums to 1.

    >>> example_shares([[5, 6, IGNORE_INDEX], [7, IGNORE_INDEX, IGNORE_INDEX]], "token")
    [0.6666666666666666, 0.3333333333333333]
    """
    if reduction not in REDUCTIONS:
        raise LabkitError(f"Unknown reduction {reduction!r}: use 'token' or 'sequence'.")
    counts = [sum(1 for t in row if int(t) != ignore_index) for row in labels]
    if sum(counts) == 0:
        raise LabkitError("No predicted tokens in these labels: every label is the ignore index.")
    if reduction == "token":
        return [c / sum(counts) for c in counts]
    live = sum(1 for c in counts if c)
    return [(1 / live if c else 0.0) for c in counts]


def answer_only_labels(input_ids, prompt_len: int, ignore_index: int = IGNORE_INDEX) -> list[int]:
    """Labels for SFT on the answer only: the first ``prompt_len`` tokens are ``ignore_index``, the rest copy the ids.

    >>> answer_only_labels([1, 2, 3, 4, 5], 3) == [IGNORE_INDEX] * 3 + [4, 5]
    True
    """
    ids = [int(t) for t in input_ids]
    if isinstance(prompt_len, bool) or not isinstance(prompt_len, numbers.Integral) or not 0 <= prompt_len <= len(ids):
        raise LabkitError(f"prompt_len must be a whole number from 0 to the length of input_ids ({len(ids)}), "
                          f"got {prompt_len!r}.")
    return [ignore_index] * prompt_len + ids[prompt_len:]


def whole_sequence(examples: list[dict]) -> list[dict]:
    """Tokenized SFT examples with the loss on every token (prompt too): labels = input_ids."""
    return [{"input_ids": list(ex["input_ids"]), "labels": list(ex["input_ids"])} for ex in examples]


def balanced_weights(train_labels, labels) -> list[float]:
    """Inverse-frequency class weights, scaled so that their mean over the training examples is 1:
    w_c = N / (C * n_c). A class absent from ``train_labels`` gets weight 0 (it has no examples to weigh).

    >>> balanced_weights(["a", "a", "a", "b"], ["a", "b"])
    [0.6666666666666666, 2.0]
    """
    from collections import Counter

    counts = Counter(str(y) for y in train_labels)
    labels = [str(label) for label in labels]
    unknown = sorted(set(counts) - set(labels))
    if unknown:
        raise LabkitError(f"Training labels {unknown[:5]} are not in labels={labels}: list every class once.")
    total, present = sum(counts.values()), sum(1 for label in labels if counts[label])
    return [total / (present * counts[label]) if counts[label] else 0.0 for label in labels]


def with_loss(model, *, smoothing: float = 0.0, class_weights=None, reduction: str = "token"):
    """Wrap ``model`` (a causal LM, a peft model or the kit's classifier) so that its forward returns this module's
    cross-entropy instead of the built-in one; ``lk.train`` then trains on it. Settings are checked here.

    >>> model = with_loss(clf, smoothing=0.1)  # doctest: +SKIP
    >>> lk.train(model, tokenizer, data, objective="classification", lr=3e-3)  # doctest: +SKIP
    """
    from ...methods.linear_probe import is_classifier

    smoothing = check_smoothing(smoothing)
    if reduction not in REDUCTIONS:
        raise LabkitError(f"Unknown reduction {reduction!r}: use 'token' (mean over tokens) or 'sequence'.")
    if class_weights is not None:
        if not is_classifier(model):
            raise LabkitError("class_weights go with a classifier (one weight per label): build one with "
                              "lk.apply_method(model, 'linear_probe', labels=...) first.")
        check_class_weights(class_weights, len(model.label2id))
    return _loss_model_class()(model, smoothing, class_weights, reduction)


def _loss_model_class():
    import torch
    from torch import nn

    class LossModel(nn.Module):
        """A model whose forward computes ``cross_entropy`` with the chosen smoothing, weights and reduction."""

        def __init__(self, inner, smoothing, class_weights, reduction):
            super().__init__()
            self.inner = inner
            self.smoothing, self.reduction = smoothing, reduction
            self.class_weights = None if class_weights is None else torch.as_tensor(class_weights,
                                                                                    dtype=torch.float32)

        @property
        def classifier(self) -> bool:
            return hasattr(self.inner, "label2id") and hasattr(self.inner, "head")

        def __getattr__(self, name):  # label2id, head, labels, config, generate... come from the wrapped model
            try:
                return super().__getattr__(name)
            except AttributeError:
                return getattr(super().__getattr__("inner"), name)

        def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
            if labels is None:
                return out
            settings = {"smoothing": self.smoothing, "class_weights": self.class_weights,
                        "reduction": self.reduction}
            if self.classifier:
                out.loss = cross_entropy(out.logits, labels, **settings)
            else:  # causal LM: position t predicts token t + 1
                out.loss = cross_entropy(out.logits[:, :-1], labels[:, 1:], **settings)
            return out

    return LossModel
