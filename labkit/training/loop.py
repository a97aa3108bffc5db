"""The training loop behind every lab: one function, a history table back."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import time
from dataclasses import dataclass

from ..core import LabkitError, fast_mode, in_notebook, seed_everything
from ..units import GIB, IGNORE_INDEX
from .config import TrainConfig, default_lr, make_config
from .evaluate import run_eval


@dataclass
class TrainResult:
    """What one training run measured."""

    history: object  # pandas DataFrame, one row per step: step, loss, tokens, lr, time_s, eval_* columns
    peak_mem_gib: float  # measured peak during training above the memory in use before it: on the CPU the resident
    # size, which includes memory the C allocator keeps for reuse (see exact_memory); on CUDA live tensors
    tokens_per_s: float  # input tokens processed per second of training (evaluation time excluded)
    time_s: float  # training wall time (evaluation excluded)
    time_per_step_s: float  # time_s / num_steps
    num_steps: int  # optimizer steps taken (fewer than config.num_steps when early stopping stopped the run)
    config: TrainConfig  # every setting as run: objective, lr, optimizer and mixed_precision resolved (no "auto")
    best_step: int | None = None  # early stopping: the step of the lowest eval_loss, whose weights the model holds
    stopped_early: bool = False  # early stopping ran out of patience before config.num_steps
    tracker_run: str | None = None  # report_to="tensorboard": the run's name in labkit.tracker
    live_peak_mem_gib: float = math.nan  # peak of live tensors above the start, what predict_memory predicts. CUDA:
    # peak_mem_gib. CPU, only with live_memory=True (NaN otherwise): step 2 profiled with torch.profiler's memory
    # events, plus the optimizer state held before it

    @property
    def label(self) -> str:
        """Name of the run in plots and tables."""
        return self.config.label

    @property
    def settings(self) -> dict:
        """The run's settings as a plain dict (the fields of ``config``)."""
        return dataclasses.asdict(self.config)

    @property
    def final_loss(self) -> float:
        """Training loss of the last step."""
        return float(self.history["loss"].iloc[-1])

    @property
    def eval_loss(self) -> float:
        """Last evaluation loss (NaN if there was no evaluation)."""
        col = self.history.get("eval_loss")
        return float(col.dropna().iloc[-1]) if col is not None and col.notna().any() else math.nan

    def plot(self):
        """The loss curve as a plotly figure."""
        from .. import plots

        return plots.loss_curves({self.label: self.history})

    def __repr__(self) -> str:
        live = "" if math.isnan(self.live_peak_mem_gib) else f", {self.live_peak_mem_gib:.2f} GiB live"
        return (f"TrainResult({self.label!r}: {self.num_steps} steps, loss {self.history['loss'].iloc[0]:.3f} -> "
                f"{self.final_loss:.3f}, {self.tokens_per_s:.0f} tokens/s, peak {self.peak_mem_gib:.2f} GiB resident"
                f"{live})")


def _optimizer(params, name: str, lr: float, weight_decay: float):
    """(optimizer, the name of the one made): paged 8-bit AdamW falls back to unpaged without CUDA."""
    import torch

    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay), name
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay), name
    from ..models import bitsandbytes_works

    if not bitsandbytes_works():
        raise LabkitError(f"optimizer={name!r} needs bitsandbytes, which cannot run here: use optimizer='adamw'.")
    import bitsandbytes as bnb

    if name == "paged_adamw8bit" and not torch.cuda.is_available():
        print("labkit: paged optimizers need a CUDA GPU; using the unpaged 8-bit AdamW instead.")
        name = "adamw8bit"
    cls = bnb.optim.PagedAdamW8bit if name == "paged_adamw8bit" else bnb.optim.AdamW8bit
    return cls(params, lr=lr, weight_decay=weight_decay), name


def _autocast(mixed_precision: str, device):
    """(autocast context factory, grad scaler or None, the precision that runs: "auto" resolved)."""
    import contextlib

    import torch

    if mixed_precision == "auto":
        if device.type != "cuda":
            return contextlib.nullcontext, None, "no"
        mixed_precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if mixed_precision == "no":
        return contextlib.nullcontext, None, "no"
    dtype = torch.bfloat16 if mixed_precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler, mixed_precision


def train(model, tokenizer, data, config: TrainConfig | None = None, *, eval_data=None, **settings) -> TrainResult:
    """Train the trainable parameters of ``model`` on ``data``; return the history and what was measured.

    The settings come either as keywords (``num_steps=100, lr=1e-3``) or as ``config=TrainConfig(...)``, not both;
    TrainConfig documents each one and checks it. ``eval_data``, if given, is evaluated after the last step and
    every ``eval_every`` steps; with ``early_stopping_patience`` training stops once eval_loss has not improved for
    that many evaluations, and the trainable weights of the best evaluation are put back. ``objective`` is
    "causal_lm" (text), "sft" (instruction/answer, loss on the answer only), "classification" (text/label, needs a
    classifier head) or "auto" (guessed from the columns). ``lr=None`` (the default) uses the registered default
    learning rate of the method applied to the model.

    On the CPU the peak is the process's peak resident size, which includes memory the C allocator keeps for
    reuse. ``exact_memory=True`` makes freed memory go back to the OS (meters.pin_glibc_allocator), so the peak
    tracks live tensors as meters.predict_memory does; training is then slower (every large tensor is a fresh
    mapping: 1.3-1.7x longer per step for SmolLM2 on the course machine) until the run ends. ``live_memory=True``
    instead profiles one step (step 2) and reports ``live_peak_mem_gib``, the peak of live tensors alone, beside the
    resident peak; only that step runs slower.

    >>> result = train(model, tokenizer, lk.data.load_instructions()["train"], num_steps=20)  # doctest: +SKIP
    >>> result = train(model, tokenizer, data, config=TrainConfig(num_steps=20, schedule="cosine"))  # doctest: +SKIP
    >>> result.history.tail(), result.config.lr  # doctest: +SKIP
    """
    import pandas as pd
    import torch
    from transformers import get_scheduler

    from ..batches import Batcher, as_dataset, infer_objective, tokenize
    from ..fourbit import training_layout
    from ..meters import measure_live_peak, measure_peak_memory, tensor_bytes
    from ..methods import TrainingHooks
    from ..methods.linear_probe import is_classifier
    from ..models import set_checkpointing
    from ..plots.live import LiveLoss
    from .record import record_run, tracker_writer

    cfg = make_config(config, settings)
    num_steps, batch_size, seq_len, grad_accum = cfg.num_steps, cfg.batch_size, cfg.seq_len, cfg.grad_accum
    data = as_dataset(data)
    objective = infer_objective(data, model) if cfg.objective == "auto" else cfg.objective
    lr = cfg.lr if cfg.lr is not None else default_lr(model)
    if objective == "classification" and not is_classifier(model):
        raise LabkitError("The classification objective needs a model with a classifier head: "
                          "lk.apply_method(model, 'linear_probe', labels=...) or methods.linear_probe."
                          "add_classifier_head(model, labels).")
    label2id = getattr(model, "label2id", None)
    examples = tokenize(data, tokenizer, objective, seq_len=seq_len, label2id=label2id)
    eval_examples = None
    if eval_data is None and cfg.early_stopping_patience is not None:
        raise LabkitError("early_stopping_patience watches the evaluation loss: pass eval_data (e.g. the validation "
                          "split) to lk.train, or drop early_stopping_patience.")
    if eval_data is not None:
        limit = cfg.eval_limit if cfg.eval_limit is not None else (32 if fast_mode() else 256)
        eval_set = as_dataset(eval_data)
        eval_set = eval_set.select(range(min(limit, len(eval_set))))
        eval_examples = tokenize(eval_set, tokenizer, objective, seq_len=seq_len, label2id=label2id)

    seed_everything(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise LabkitError("Nothing to train: every parameter is frozen. Apply a method first, e.g. "
                          "model = lk.apply_method(model, 'lora').")
    device = params[0].device
    hooks = TrainingHooks(model, num_steps)  # LoRA+'s optimizer, AdaLoRA's rank budget; empty for other methods
    made = hooks.optimizer(cfg.optimizer, lr, cfg.weight_decay) if hooks else None
    opt, optimizer = made if made is not None else _optimizer(params, cfg.optimizer, lr, cfg.weight_decay)
    scheduler = get_scheduler(cfg.scheduler_name, opt, num_warmup_steps=cfg.warmup_steps, num_training_steps=num_steps)
    autocast, scaler, precision = _autocast(cfg.mixed_precision, device)
    # the result records the run as it ran: objective, lr, optimizer and precision with "auto"/None/fallbacks resolved
    cfg = dataclasses.replace(cfg, objective=objective, lr=lr, optimizer=optimizer, mixed_precision=precision)
    pad_id = getattr(tokenizer, "pad_token_id", None) or 0
    batches = iter(Batcher(examples, batch_size, pad_id, seed=cfg.seed))
    if cfg.grad_checkpointing:
        set_checkpointing(model, True)

    bar = make_progress(num_steps, cfg.progress, cfg.label)
    live = LiveLoss(cfg.label) if cfg.live_plot and in_notebook() else None
    refresh = max(1, num_steps // 50)
    tracker = tracker_writer(model, cfg) if cfg.report_to == "tensorboard" else None
    losses, rows, evals, logged = [], [], {}, 0
    best = {"loss": math.inf, "step": None, "waited": 0, "weights": None}  # early stopping's memory
    tokens, eval_time_s = 0, 0.0
    model.train()
    # live_memory on the CPU: the step whose live peak is read (profiling slows that step, so it is opt-in)
    live_step, live_bytes = (min(2, num_steps) if device.type == "cpu" and cfg.live_memory else 0), None
    with training_layout(model), measure_peak_memory(pin_allocator=cfg.exact_memory) as peak, \
            contextlib.ExitStack() as live_block:
        start = time.perf_counter()
        for step in range(1, num_steps + 1):
            step_loss = 0.0
            if step == live_step:  # from step 2 on the optimizer state exists: held before the step, then profiled
                held, live_peak = tensor_bytes(opt), live_block.enter_context(measure_live_peak("cpu"))
            micro = [next(batches) for _ in range(grad_accum)]
            items = [loss_items(batch) for batch in micro]
            for batch, share in zip(micro, items):
                tokens += int(batch["attention_mask"].sum())
                if share == 0:  # nothing to learn from here (every label masked): its mean loss would be NaN
                    continue
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                with autocast():
                    # weighted by its share of the step's loss items, not 1 / grad_accum: then the step's gradient
                    # is the mean over all its label tokens, as one big batch gives (trl#2175; transformers'
                    # num_items_in_batch fix, Oct 2024)
                    loss = model(**batch).loss * (share / sum(items))
                (scaler.scale(loss) if scaler else loss).backward()
                step_loss = step_loss + loss.detach()
            if scaler:
                scaler.unscale_(opt)
            if cfg.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            if scaler:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            if hooks:
                hooks.step_done(step)
            rows.append((step, tokens, scheduler.get_last_lr()[0], time.perf_counter() - start - eval_time_s))
            scheduler.step()
            opt.zero_grad(set_to_none=True)
            if step == live_step:
                t0 = time.perf_counter()
                live_block.close()  # reading the profiler's events is not training time
                live_bytes, start = held + live_peak.peak_bytes, start + time.perf_counter() - t0
            losses.append(step_loss)
            if eval_examples is not None and (step == num_steps or cfg.eval_every and step % cfg.eval_every == 0):
                t0 = time.perf_counter()
                evals[step] = run_eval(model, eval_examples, batch_size, pad_id, objective, autocast)
                if tracker is not None:
                    tracker.log(step, {f"eval/{k}": v for k, v in evals[step].items()})
                model.train()
                eval_time_s += time.perf_counter() - t0
                if cfg.early_stopping_patience is not None:
                    _watch(best, step, evals[step]["eval_loss"], params)
            stop = best["waited"] >= (cfg.early_stopping_patience or math.inf)
            last = step == num_steps or stop
            if tracker is not None and (step % refresh == 0 or last):  # one sync per refresh
                for (at, _, lr_at, _), value in zip(rows[logged:], torch.stack(losses[logged:]).tolist()):
                    tracker.log(at, {"train/loss": value, "train/learning_rate": lr_at})
                logged = step
            if (bar is not None or live is not None) and (step % refresh == 0 or last):
                values = torch.stack(losses[-refresh:]).tolist()  # one sync per refresh, not per step
                if bar is not None:
                    bar.set_postfix(loss=f"{values[-1]:.3f}", refresh=False)
                    bar.update(refresh if step % refresh == 0 else step % refresh)
                if live is not None:
                    live.update(_history(rows, losses, evals))
            if stop:
                break
        time_s = time.perf_counter() - start - eval_time_s
        if best["weights"] is not None:
            with torch.no_grad():
                for p, kept in zip(params, best["weights"]):
                    p.copy_(kept)
    if bar is not None:
        bar.close()
    if cfg.grad_checkpointing:
        set_checkpointing(model, False)
    model.eval()
    history = _history(rows, losses, evals)
    if not math.isfinite(history["loss"].iloc[-1]):
        print("labkit: the loss became NaN/inf; lower lr (e.g. by 10x) or use mixed_precision='no'.")
    steps = len(losses)
    result = TrainResult(history=pd.DataFrame(history), peak_mem_gib=peak.peak_gib, tokens_per_s=tokens / time_s,
                         time_s=time_s, time_per_step_s=time_s / steps, num_steps=steps, config=cfg,
                         best_step=best["step"], stopped_early=steps < num_steps,
                         tracker_run=tracker.name if tracker is not None else None,
                         live_peak_mem_gib=live_bytes / GIB if live_bytes is not None
                         else peak.peak_gib if device.type == "cuda" else math.nan)
    if tracker is not None:
        extra = {} if best["step"] is None else {"best_step": best["step"], "best_eval_loss": best["loss"]}
        tracker.close({"tokens_per_s": result.tokens_per_s, "peak_mem_gib": result.peak_mem_gib,
                       "time_s": result.time_s, **extra})
    # the run ledger (labkit.ledger); never raises for it
    record_run(model, result, tokens=tokens, device=device, data=data)
    return result


# help(train) and a notebook's signature pop-up list TrainConfig's fields, which train takes as keywords
train.__signature__ = inspect.signature(train).replace(parameters=[
    *(p for p in inspect.signature(train).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD),
    *(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
      for f in dataclasses.fields(TrainConfig))])


def _watch(best: dict, step: int, eval_loss: float, params) -> None:
    """Early stopping's bookkeeping after one evaluation: keep a copy of the weights when eval_loss improved."""
    if eval_loss < best["loss"]:
        best.update(loss=eval_loss, step=step, waited=0, weights=[p.detach().clone() for p in params])
    else:
        best["waited"] += 1


def loss_items(batch) -> int:
    """How many terms the model's mean loss averages over this batch: one per example for a classifier, else one
    per label token that is not IGNORE_INDEX after the causal shift (the model predicts token t + 1 from token t)."""
    labels = batch["labels"]
    if labels.dim() == 1:
        return int(labels.numel())
    return int((labels[:, 1:] != IGNORE_INDEX).sum())


def make_progress(total: int, enabled: bool, label: str):
    """A tqdm bar (notebook-aware) or None."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit="step", leave=True)


def _history(rows, losses, evals):
    import pandas as pd
    import torch

    frame = pd.DataFrame(rows[:len(losses)], columns=["step", "tokens", "lr", "time_s"])
    frame.insert(1, "loss", torch.stack(losses).float().tolist() if losses else [])
    for step, metrics in evals.items():
        for key, value in metrics.items():
            frame.loc[frame["step"] == step, key] = value
    return frame
