"""Training runs of lab 07: LoRA on the intents (SFT to the label word) under several seeds, logged to the kit's
tracker, and a run with periodic validation and early stopping, its curves in the tracker too.

>>> table, runs = seed_runs("smollm2-135m", train_rows, test_rows, seeds=[0, 1, 2, 3, 4], num_steps=40)  # doctest: +SKIP
>>> stopped = train_early_stopping(model, tokenizer, train_rows, val_rows, chunk_steps=5, patience=2)  # doctest: +SKIP
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from ...core import LabkitError
from .scoring import IntentRun, intent_sft, lm_run

LORA = {"rank": 8, "alpha": 16}  # the lab's LoRA settings, shared by every run here
BATCH_SIZE, SEQ_LEN = 8, 96  # intent prompts are ~70 tokens with the chat template


def check_tracker_writable():
    """The tracker's folder, created if needed; a LabkitError that says what to do when it cannot be written."""
    import tempfile

    from ...tracker import log_dir

    folder = log_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise LabkitError(f"The tracker cannot write to {folder} ({err.strerror}): set LABKIT_TRACKER_DIR to a folder "
                          "you can write to, e.g. os.environ['LABKIT_TRACKER_DIR'] = tempfile.mkdtemp().") from err
    return folder


def lora_model(model_name: str, seed: int):
    """A fresh base model with LoRA applied, its new weights drawn with ``seed``."""
    from ...methods import apply_method
    from ...models import load_model

    model, tokenizer = load_model(model_name)
    return apply_method(model, "lora", seed=seed, **LORA), tokenizer


def train_intents(model, tokenizer, train_rows, *, num_steps: int, seed: int, label: str, report_to: str = "none",
                  lr: float | None = None, batch_size: int = BATCH_SIZE):
    """SFT of ``model`` on the intents (answer: the label word) with lk.train; the TrainResult."""
    from ...training import train

    return train(model, tokenizer, intent_sft(train_rows), objective="sft", num_steps=num_steps,
                 batch_size=batch_size, seq_len=SEQ_LEN, lr=lr, seed=seed, label=label, report_to=report_to,
                 live_plot=False)


def seed_runs(model_name: str, train_rows, test_rows, *, seeds, num_steps: int, batch_size: int = BATCH_SIZE,
              prefix: str = "lab07-seed", progress: bool = True, reuse: dict | None = None):
    """The same LoRA configuration trained once per seed (seed: LoRA's initial weights and the batch order), each
    logged to the tracker and scored on ``test_rows``. (DataFrame seed/accuracy/final_loss/time_s, list of IntentRun).

    ``reuse`` maps a seed to the (TrainResult, IntentRun) of a run already trained with this configuration, which is
    then taken as it is instead of trained again."""
    import gc

    import pandas as pd
    from tqdm.auto import tqdm

    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise LabkitError(f"Give one or more different seeds (each trains one run), got {seeds!r}.")
    check_tracker_writable()
    rows, runs = [], []
    for seed in tqdm(seeds, desc="seeds", disable=not progress):
        if reuse and seed in reuse:
            result, run = reuse[seed]
            rows.append({"seed": seed, "accuracy": run.accuracy, "final_loss": result.final_loss,
                         "time_s": result.time_s})
            runs.append(run)
            continue
        model, tokenizer = lora_model(model_name, seed)
        result = train_intents(model, tokenizer, train_rows, num_steps=num_steps, seed=seed, batch_size=batch_size,
                               label=f"{prefix}{seed}", report_to="tensorboard")
        run = lm_run(f"seed {seed}", model, tokenizer, test_rows)
        rows.append({"seed": seed, "accuracy": run.accuracy, "final_loss": result.final_loss, "time_s": result.time_s})
        runs.append(run)
        del model
        gc.collect()
    return pd.DataFrame(rows), runs


@dataclass
class EarlyStopped:
    """A run with periodic validation and early stopping."""

    run: str  # the tracker's name for it
    history: object  # DataFrame per evaluation: step, train_loss, eval_loss, best (so far)
    best_step: int  # step of the lowest validation loss: its weights are the model's now
    stopped_step: int  # step where training stopped
    stopped_early: bool  # True when patience ran out before max_steps


def _check_whole(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise LabkitError(f"{name} must be a whole number >= {low}, got {value!r}.")
    return int(value)


def train_early_stopping(model, tokenizer, train_rows, val_rows, *, chunk_steps: int, max_steps: int,
                         patience: int, label: str = "lab07-early-stop", seed: int = 0, lr: float | None = None,
                         batch_size: int = BATCH_SIZE):
    """Train in chunks of ``chunk_steps`` with lk.train, evaluate the validation loss after each, stop when it has not
    improved for ``patience`` evaluations, and put back the best weights. Each evaluation goes to the tracker
    (``labkit.tracker.RunWriter``) as one run: train/loss, eval/loss, and the best step at the end.

    Each chunk is one lk.train call, so the optimizer's moments restart at every evaluation (lk.train has no
    stopping hook); with a constant learning rate that costs little.
    """
    import pandas as pd
    import torch

    from ...tracker import RunWriter
    from ...training import evaluate_loss

    chunk_steps = _check_whole("chunk_steps", chunk_steps)
    max_steps = _check_whole("max_steps", max_steps, chunk_steps)
    patience = _check_whole("patience", patience)
    check_tracker_writable()
    val_sft = intent_sft(val_rows)
    writer = RunWriter(label, {"method": "lora", **LORA, "chunk_steps": chunk_steps, "max_steps": max_steps,
                               "patience": patience, "seed": seed, "batch_size": batch_size})
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    rows, best_loss, best_step, waited, step = [], float("inf"), 0, 0, 0
    best_state = {n: p.detach().clone() for n, p in trainable.items()}
    try:
        start_loss = evaluate_loss(model, tokenizer, val_sft, objective="sft", seq_len=SEQ_LEN,
                                   limit=len(val_sft))["eval_loss"]
        writer.log(0, {"eval/loss": start_loss})
        rows.append({"step": 0, "train_loss": float("nan"), "eval_loss": start_loss})
        best_loss = start_loss
        while step < max_steps and waited < patience:
            result = train_intents(model, tokenizer, train_rows, num_steps=chunk_steps, seed=seed + step,
                                   label=f"{label}-chunk", lr=lr, batch_size=batch_size)
            hist = result.history
            for s, loss in zip(hist["step"], hist["loss"]):
                writer.log(step + int(s), {"train/loss": float(loss)})
            step += chunk_steps
            eval_loss = evaluate_loss(model, tokenizer, val_sft, objective="sft", seq_len=SEQ_LEN,
                                      limit=len(val_sft))["eval_loss"]
            writer.log(step, {"eval/loss": eval_loss})
            rows.append({"step": step, "train_loss": float(hist["loss"].iloc[-1]), "eval_loss": eval_loss})
            if eval_loss < best_loss:
                best_loss, best_step, waited = eval_loss, step, 0
                best_state = {n: p.detach().clone() for n, p in trainable.items()}
            else:
                waited += 1
        with torch.no_grad():
            for n, p in trainable.items():
                p.copy_(best_state[n])
    finally:
        writer.close({"best_step": best_step, "best_eval_loss": best_loss, "stopped_step": step})
    history = pd.DataFrame(rows)
    history["best"] = history["step"] == best_step
    return EarlyStopped(run=writer.name, history=history, best_step=best_step, stopped_step=step,
                        stopped_early=step < max_steps)


def run_table(runs: list[IntentRun]):
    """Per-item correctness of several runs on the same items, one column per run (the panel's input)."""
    import pandas as pd

    from .stats import check_same_items

    for run in runs[1:]:
        check_same_items(runs[0].ids, run.ids)
    return pd.DataFrame({run.name: run.correct for run in runs}, index=runs[0].ids)
