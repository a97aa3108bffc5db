"""Equivalence tests: computations that must agree, measured. Accumulated vs one batch, merged vs unmerged LoRA,
saved vs loaded adapter.

>>> accumulation_table(model, tokenizer, data, batch_size=8)  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ...core import LabkitError
from ...units import IGNORE_INDEX
from ...validation.checks import DEFAULT_TOLERANCE, check_tolerance, relative_gap, step_gradients
from ...validation.pipeline import NORMALIZATIONS, Recipe


def accumulation_table(model, tokenizer, data, *, batch_size: int = 8, tolerance: float = DEFAULT_TOLERANCE):
    """Gradient of one padded batch of ``batch_size`` against batch 1 x accumulation ``batch_size``, for each loss
    normalisation: a DataFrame with the relative gap and whether it is within ``tolerance``."""
    import pandas as pd

    tolerance = check_tolerance(tolerance)
    if len(data) < batch_size:
        raise LabkitError(f"Need at least batch_size={batch_size} examples, got {len(data)}: pass more data or a "
                          "smaller batch_size.")
    one = Recipe(batch_size=batch_size, grad_accum=1)
    _, reference = step_gradients(model, tokenizer, data, one, as_one_batch=True)
    lengths = [sum(label != IGNORE_INDEX for label in ex["labels"]) for ex in data[:batch_size]]
    rows = []
    for normalization in NORMALIZATIONS:
        recipe = Recipe(batch_size=1, grad_accum=batch_size, loss_normalization=normalization)
        _, grads = step_gradients(model, tokenizer, data, recipe)
        gap = relative_gap(grads, reference)
        rows.append({"set-up": f"batch 1 x accumulation {batch_size}", "normalisation": normalization,
                     "relative_gap": gap, "tolerance": tolerance, "equal": gap <= tolerance,
                     "answer_tokens_min": min(lengths), "answer_tokens_max": max(lengths)})
    return pd.DataFrame(rows)


def logits(model, batch: dict):
    """The model's logits on a batch, without gradients, in eval mode."""
    import torch

    model.eval()
    with torch.no_grad():
        return model(**{k: v.to(model.device) for k, v in batch.items() if k != "labels"}).logits.float()


def merge_gap(model, batch: dict, *, tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Logits of a LoRA model before and after merging the adapter into its weights (lk.methods.merge_lora).

    Merging replaces the model: use the returned ``merged`` model afterwards, not ``model``.
    """
    from ...methods import merge_lora

    tolerance = check_tolerance(tolerance)
    before = logits(model, batch)
    merged = merge_lora(model)
    after = logits(merged, batch)
    gap = float((after - before).abs().max() / before.abs().max())
    return {"relative_gap": gap, "tolerance": tolerance, "equal": gap <= tolerance,
            "top_token_agreement": float((after.argmax(-1) == before.argmax(-1)).float().mean()), "merged": merged}


def save_load_roundtrip(model, model_name: str, batch: dict, folder: str | Path | None = None) -> dict:
    """Save the adapter (lk.methods.save_trainable), load it into a fresh base model (load_trainable), and compare
    every saved tensor and the logits bit for bit."""
    import torch

    from ...methods import load_trainable, save_trainable
    from ...models import load_model

    with tempfile.TemporaryDirectory(prefix="lab10-") as tmp:
        file = save_trainable(model, Path(folder or tmp) / "adapter")
        size = file.stat().st_size
        fresh, _ = load_model(model_name)
        loaded = load_trainable(fresh, file)
    saved = {n: p for n, p in model.named_parameters() if p.requires_grad}
    params = dict(loaded.named_parameters())
    same = sum(torch.equal(p, params[n]) for n, p in saved.items())
    a, b = logits(model, batch), logits(loaded, batch)
    return {"tensors": len(saved), "bit_identical_tensors": same, "file_bytes": size,
            "logits_bit_identical": bool(torch.equal(a, b)), "max_logit_gap": float((a - b).abs().max())}
