"""Sanity checks that train or compare (Karpathy's recipe): an input-independent baseline, overfitting one batch and
a learning-rate range test. The checks that need no training (loss at init, gradient flow, the overflow watch) are in
``checks``, where the pre-flight pipeline runs them too.

>>> overfit_one_batch(setup, num_steps=30)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import numbers

from ...core import LabkitError
from ...validation.checks import FAIL, PASS, WARN, CheckResult, _frozen_state, _pad_id, one_batch
from ...validation.pipeline import Setup, backward_step, micro_batches, run_recipe, trainable

OVERFIT_RATIO = 0.2  # overfitting one batch "to near zero": the loss must fall below 20% of where it started


def input_independent_baseline(setup: Setup) -> CheckResult:
    """Karpathy: zero the inputs (here: every input token becomes the pad token) and the loss must get clearly worse;
    if it does not, the model is not using its input."""
    import torch

    model, tokenizer, data, recipe = setup
    batch = one_batch(data, recipe, tokenizer)
    zeroed = dict(batch, input_ids=torch.full_like(batch["input_ids"], _pad_id(tokenizer)))
    with _frozen_state(model), torch.no_grad():
        real, blind = (float(model(**{k: v.to(model.device) for k, v in b.items()}).loss) for b in (batch, zeroed))
    ok = blind > real + math.log(2)  # at least a factor 2 in perplexity
    return CheckResult("input_independent_baseline", PASS if ok else FAIL, blind - real,
                       f"loss with the real inputs {real:.3f}, with every input token replaced by padding {blind:.3f}",
                       "" if ok else "the model ignores its input: check that input_ids reach the model and the "
                                     "labels are not a copy of something the model can see.")


def overfit_one_batch(setup: Setup, num_steps: int, *, lr: float | None = None, ratio: float = OVERFIT_RATIO,
                      progress: bool = False):
    """Train on the first optimizer step's examples only, ``num_steps`` times; (CheckResult, history).

    The loss must fall below ``ratio`` x its first value; a set-up that cannot memorise four examples will not learn
    four thousand. This trains ``setup.model``.
    """
    if not 0 < ratio < 1:
        raise LabkitError(f"ratio is the share of the first loss to reach, between 0 and 1 (e.g. 0.2), got {ratio!r}.")
    recipe = dataclasses.replace(setup.recipe, lr=lr) if lr is not None else setup.recipe
    batch_only = dataclasses.replace(setup, data=setup.data[:recipe.examples_per_step], recipe=recipe)
    history = run_recipe(batch_only, num_steps, label="overfit one batch", progress=progress)
    first, last = float(history["loss"].iloc[0]), float(history["loss"].iloc[-1])
    reached = last / first
    status = PASS if reached <= ratio else (WARN if reached < 0.8 else FAIL)
    result = CheckResult("overfit_one_batch", status, reached,
                         f"loss {first:.3f} -> {last:.3f} in {num_steps} steps on one batch ({reached:.2f}x)",
                         "" if status == PASS else "train longer or with a larger lr; if the loss does not move at "
                                                   "all, check the optimizer and which parameters are trainable.")
    return result, history


def lr_range_test(setup: Setup, lrs) -> object:
    """Smith's learning-rate range test (Smith 2017, "Cyclical Learning Rates"; fastai's lr_find): one step at each
    learning rate in ``lrs``, in increasing order, on one micro-batch each, recording the loss; the weights are
    restored afterwards.

    Returns a DataFrame of lr and loss; ``suggested_lr(table)`` reads it.
    """
    import pandas as pd
    import torch

    lrs = [float(lr) for lr in lrs]
    if len(lrs) < 2 or any(lr <= 0 for lr in lrs) or lrs != sorted(lrs):
        raise LabkitError("lrs must be at least two positive learning rates in increasing order, e.g. "
                          "numpy.geomspace(1e-5, 1e-1, 12).")
    model, tokenizer, data, recipe = setup
    params = trainable(model)
    if not params:
        raise LabkitError("Nothing to train: apply a method first, e.g. model = lk.apply_method(model, 'lora').")
    saved = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=lrs[0])
    rows = []
    model.train()
    try:
        for step, lr in enumerate(lrs):
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss = backward_step(model, micro_batches(data, recipe, _pad_id(tokenizer), step)[:1], "tokens")
            rows.append({"lr": lr, "loss": loss})
            if not math.isfinite(loss):
                break
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
    finally:
        with torch.no_grad():
            for p, value in zip(params, saved):
                p.copy_(value)
                p.grad = None
        model.eval()
    return pd.DataFrame(rows)


def suggested_lr(table) -> float:
    """fastai's rule of thumb on a range test: a tenth of the learning rate at which the loss was lowest."""
    if table is None or len(table) == 0:
        raise LabkitError("The range-test table is empty: run lr_range_test first.")
    finite = table[table["loss"].apply(lambda x: isinstance(x, numbers.Real) and math.isfinite(x))]
    return float(finite.loc[finite["loss"].idxmin(), "lr"]) / 10


__all__ = ["FAIL", "OVERFIT_RATIO", "PASS", "WARN", "input_independent_baseline", "lr_range_test",
           "overfit_one_batch", "suggested_lr"]
