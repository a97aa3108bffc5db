"""Training runs of lab 07: LoRA on the intents (SFT to the label word) under several seeds, logged to the kit's
tracker, and a run with periodic validation and early stopping, its curves in the tracker too.

>>> table, runs = seed_runs("smollm2-135m", train_rows, test_rows, seeds=[0, 1, 2, 3, 4], num_steps=40)  # doctest: +SKIP
>>> stopped = train_early_stopping(model, tokenizer, train, val, eval_every=5, max_steps=60, patience=2)  # doctest: +SKIP
"""

from __future__ import annotations

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
    gc.freeze()  # what exists now outlives the runs: the collection after each run walks only that run's objects
    try:
        for seed in tqdm(seeds, desc="seeds", disable=not progress):
            if reuse and seed in reuse:
                result, run = reuse[seed]
            else:
                model, tokenizer = lora_model(model_name, seed)
                result = train_intents(model, tokenizer, train_rows, num_steps=num_steps, seed=seed,
                                       batch_size=batch_size, label=f"{prefix}{seed}", report_to="tensorboard")
                run = lm_run(f"seed {seed}", model, tokenizer, test_rows)
                del model
                gc.collect()
            rows.append({"seed": seed, "accuracy": run.accuracy, "final_loss": result.final_loss,
                         "time_s": result.time_s})
            runs.append(run)
    finally:
        gc.unfreeze()
    return pd.DataFrame(rows), runs


@dataclass
class EarlyStopped:
    """A run with periodic validation and early stopping."""

    run: str  # the tracker's name for it
    history: object  # DataFrame per evaluation: step, train_loss, eval_loss, best (the step whose weights were kept)
    best_step: int  # step of the lowest validation loss: its weights are the model's now
    stopped_step: int  # step where training stopped
    stopped_early: bool  # True when patience ran out before max_steps
    result: object  # lk.train's TrainResult


def train_early_stopping(model, tokenizer, train_rows, val_rows, *, eval_every: int, max_steps: int, patience: int,
                         label: str = "lab07-early-stop", seed: int = 0, lr: float | None = None,
                         batch_size: int = BATCH_SIZE):
    """One lk.train run that evaluates the validation loss every ``eval_every`` steps, stops when it has not improved
    for ``patience`` evaluations and puts back the best weights (TrainConfig.early_stopping_patience). The tracker
    gets train/loss per step, eval/eval_loss per evaluation, and the best step at the end."""
    from ...training import train

    check_tracker_writable()
    val_sft = intent_sft(val_rows)
    result = train(model, tokenizer, intent_sft(train_rows), objective="sft", num_steps=max_steps,
                   batch_size=batch_size, seq_len=SEQ_LEN, lr=lr, seed=seed, label=label, report_to="tensorboard",
                   live_plot=False, eval_data=val_sft, eval_every=eval_every, eval_limit=max(len(val_sft), 1),
                   early_stopping_patience=patience)
    history = result.history.dropna(subset=["eval_loss"])[["step", "loss", "eval_loss"]]
    history = history.rename(columns={"loss": "train_loss"}).reset_index(drop=True)
    history["best"] = history["step"] == result.best_step
    return EarlyStopped(run=result.tracker_run, history=history, best_step=result.best_step,
                        stopped_step=result.num_steps, stopped_early=result.stopped_early, result=result)


def run_table(runs: list[IntentRun]):
    """Per-item correctness of several runs on the same items, one column per run (the panel's input)."""
    import pandas as pd

    from .stats import check_same_items

    for run in runs[1:]:
        check_same_items(runs[0].ids, run.ids)
    return pd.DataFrame({run.name: run.correct for run in runs}, index=runs[0].ids)
