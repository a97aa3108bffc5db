"""Training dynamics: LoRA runs on a copy of the base model, train/validation curves and early stopping, the
memorisation probe, a learning-rate range test, steps-to-target, and time to quality predicted beside measured.

>>> model, result = train_lora(base, rows, num_steps=40, eval_data=val, eval_every=5)  # doctest: +SKIP
>>> early_stopping(result.history, patience=2)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math

from ...core import LabkitError


def train_lora(base, data, *, rank: int = 8, dropout: float = 0.0, eval_data=None, **settings):
    """LoRA (q/v, alpha = 2 x rank) on a fresh copy of ``base`` = (model, tokenizer), trained by ``lk.train``.

    Returns (model, TrainResult); ``settings`` are lk.train's (num_steps, lr, eval_every, weight_decay, ...).
    """
    from ...methods import apply_method
    from ...training import train

    model, tokenizer = base
    model = apply_method(copy.deepcopy(model), "lora", rank=rank, alpha=2.0 * rank, dropout=dropout,
                         target_modules=["q_proj", "v_proj"], seed=settings.get("seed", 0))
    settings.setdefault("live_plot", False)
    result = train(model, tokenizer, data, eval_data=eval_data, **settings)
    return model, result


def lora_trainable_params(model_config, *, rank: int = 8) -> int:
    """Trainable parameters of train_lora's LoRA (q/v at ``rank``), by the meters' analytic count."""
    from ...meters import analytic_trainable_params

    return analytic_trainable_params(model_config, "lora", rank=rank, target_modules=["q_proj", "v_proj"])


def curves(history):
    """Step, training loss (the step's batch), its moving average, and validation loss where it was measured."""
    import pandas as pd

    if "loss" not in history:
        raise LabkitError("history needs a 'loss' column: pass a TrainResult's history.")
    out = pd.DataFrame({"step": history["step"], "train_loss": history["loss"],
                        "train_smooth": history["loss"].ewm(alpha=0.3).mean(), "tokens": history.get("tokens"),
                        "time_s": history.get("time_s")})
    out["eval_loss"] = history.get("eval_loss", math.nan)
    return out


def early_stopping(history, *, patience: int | None = None) -> dict:
    """The best validation step (lowest eval loss) and where early stopping with ``patience`` evaluations stops.

    >>> import pandas as pd
    >>> early_stopping(pd.DataFrame({"step": [1, 2, 3, 4], "loss": [3, 2, 1, .5], "eval_loss": [3, 2.5, 2.6, 2.8]}),
    ...                patience=1)
    {'best_step': 2, 'best_eval_loss': 2.5, 'stop_step': 3, 'final_eval_loss': 2.8}
    """
    if "eval_loss" not in history or history["eval_loss"].notna().sum() == 0:
        raise LabkitError("No validation losses in this history: train with eval_data=... and eval_every=N.")
    if patience is not None and (not isinstance(patience, int) or isinstance(patience, bool) or patience < 1):
        raise LabkitError(f"patience is a number of evaluations without improvement, 1 or more; got {patience!r}.")
    evals = history.loc[history["eval_loss"].notna(), ["step", "eval_loss"]]
    steps, losses = [int(s) for s in evals["step"]], [float(v) for v in evals["eval_loss"]]
    best = min(range(len(losses)), key=lambda i: (losses[i], i))
    stop, best_so_far, waited = None, math.inf, 0
    for step, loss in zip(steps, losses):
        if loss < best_so_far:
            best_so_far, waited = loss, 0
        else:
            waited += 1
            if patience is not None and waited >= patience:
                stop = step
                break
    return {"best_step": steps[best], "best_eval_loss": losses[best], "stop_step": stop, "final_eval_loss": losses[-1]}


def overfit_row(label: str, result) -> dict:
    """What one run says about overfitting: best and final validation loss, their gap, the last training loss."""
    stop = early_stopping(result.history, patience=2)
    smooth = curves(result.history)["train_smooth"]
    return {"run": label, "best_step": stop["best_step"], "best_eval_loss": stop["best_eval_loss"],
            "final_eval_loss": stop["final_eval_loss"], "overfit_gap": stop["final_eval_loss"] - stop["best_eval_loss"],
            "final_train_loss": float(smooth.iloc[-1]), "stop_step (patience 2)": stop["stop_step"]}


def memorisation(model, tokenizer, train_rows, held_rows, *, max_new_tokens: int = 16) -> dict:
    """Share of training answers reproduced verbatim (greedy), and of held-out answers of the same families."""
    from ...training import generate_answers
    from .baselines import exact_match

    out = {}
    for name, rows in (("train", train_rows), ("held_out", held_rows)):
        rows = [dict(r) for r in rows]
        if not rows:
            raise LabkitError(f"The {name} rows are empty: pass at least one instruction/answer row.")
        answers = generate_answers(model, tokenizer, [r["instruction"] for r in rows], max_new_tokens=max_new_tokens)
        out[name] = exact_match(answers, [r["answer"] for r in rows])
    out["gap"] = out["train"] - out["held_out"]
    return out


# ---- convergence ----------------------------------------------------------------------------------------------------

def lr_range_test(base, data, *, lr_min: float = 1e-5, lr_max: float = 1e-1, num_steps: int = 30,
                  batch_size: int = 4, seq_len: int = 96, seed: int = 0):
    """Smith's range test: one LoRA run whose lr grows geometrically from lr_min to lr_max, one step each.

    Returns a DataFrame (step, lr, loss, smooth). Its own short loop: lk.train's schedules only go down.
    """
    import pandas as pd
    import torch

    from ...batches import Batcher, tokenize
    from ...core import seed_everything
    from ...methods import apply_method

    if not (0 < lr_min < lr_max):
        raise LabkitError(f"Need 0 < lr_min < lr_max, got lr_min={lr_min!r}, lr_max={lr_max!r}.")
    if not isinstance(num_steps, int) or num_steps < 2:
        raise LabkitError(f"num_steps must be 2 or more to span a range of learning rates, got {num_steps!r}.")
    model, tokenizer = base
    model = apply_method(copy.deepcopy(model), "lora", rank=8, alpha=16.0, target_modules=["q_proj", "v_proj"],
                         seed=seed)
    seed_everything(seed)
    examples = tokenize(data, tokenizer, "sft", seq_len=seq_len)
    batches = iter(Batcher(examples, batch_size, tokenizer.pad_token_id or 0, seed=seed))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr_min)
    factor = (lr_max / lr_min) ** (1 / (num_steps - 1))
    rows = []
    model.train()
    for step in range(num_steps):
        lr = lr_min * factor ** step
        for group in opt.param_groups:
            group["lr"] = lr
        loss = model(**next(batches)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        rows.append({"step": step + 1, "lr": lr, "loss": float(loss.detach())})
        if not math.isfinite(rows[-1]["loss"]) or rows[-1]["loss"] > 4 * rows[0]["loss"]:
            break  # diverged: the rest of the range says nothing more
    table = pd.DataFrame(rows)
    table["smooth"] = table["loss"].ewm(alpha=0.3).mean()
    return table


def suggest_lr(table) -> float:
    """The range test's pick: a tenth of the lr where the smoothed loss is lowest (fastai's rule of thumb)."""
    if len(table) == 0:
        raise LabkitError("The range-test table is empty: run lr_range_test first.")
    return float(table["lr"].iloc[int(table["smooth"].values.argmin())]) / 10


def steps_to_target(history, target: float) -> float:
    """First step whose smoothed training loss is at or below ``target`` (NaN if never)."""
    smooth = curves(history)["train_smooth"]
    hits = history["step"][smooth <= target]
    return float(hits.iloc[0]) if len(hits) else math.nan


def at_target(history, target: float) -> dict:
    """Steps, tokens and wall seconds of training when the smoothed loss first reached ``target`` (NaN if never)."""
    step = steps_to_target(history, target)
    if math.isnan(step):
        return {"steps_to_target": math.nan, "tokens_to_target": math.nan, "time_to_target_s": math.nan}
    row = history.loc[history["step"] == step].iloc[0]
    return {"steps_to_target": step, "tokens_to_target": float(row["tokens"]), "time_to_target_s": float(row["time_s"])}


def predicted_time(model_config, n_tokens: float, tokens_per_s: float, *, trainable_params: int,
                   hardware: str = "A100-80GB") -> dict:
    """Predicted seconds for ``n_tokens``: here at a measured tokens/s (meters.time_to_train_s), and on ``hardware``
    from FLOPs (meters.training_flops at the meters' assumed MFU), with its dollar cost."""
    from ...meters import estimate_cost, estimate_time_s, matmul_params, time_to_train_s, training_flops

    flops = training_flops(matmul_params(model_config), max(n_tokens, 1), trainable_params=trainable_params)
    return {"predicted_here_s": time_to_train_s(max(n_tokens, 1), tokens_per_s),
            f"predicted_{hardware}_s": estimate_time_s(flops, hardware),
            f"cost_{hardware}_usd": estimate_cost(flops, hardware)}
