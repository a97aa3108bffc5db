"""``TrainConfig``: every setting of one ``lk.train`` run, typed, commented and checked where it is made.

>>> from labkit.training import TrainConfig
>>> cfg = TrainConfig(num_steps=100, batch_size=8, schedule="cosine", warmup_steps=10)
>>> result = lk.train(model, tokenizer, data, config=cfg)  # doctest: +SKIP
>>> result.config.lr  # the lr actually used: here the registered default of the method on the model  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from dataclasses import dataclass

from ..batches import OBJECTIVES
from ..core import LabkitError, check_seed
from ..tracker import REPORT_TO
from ..units import OPTIMIZERS

PRECISIONS = ("auto", "no", "bf16", "fp16")  # autocast dtypes lk.train knows; "auto": bf16/fp16 on CUDA, none elsewhere
# transformers.get_scheduler names that need nothing beyond the warmup and total steps ("constant" with warmup_steps
# runs as "constant_with_warmup"; cosine_with_restarts and polynomial use transformers' defaults: 1 cycle, power 1)
SCHEDULES = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial",
             "inverse_sqrt")
NO_METHOD_LR = 2e-4  # lr for lr=None when no method was applied (every parameter trainable): lk.train's earlier default


@dataclass
class TrainConfig:
    """Every setting of one training run; validated on creation and recorded on the result (``result.config``).

    Change a copy with ``dataclasses.replace(cfg, lr=1e-3)``: it is checked again.

    >>> TrainConfig(num_steps=0)
    Traceback (most recent call last):
    ...
    labkit.core.LabkitError: num_steps must be a positive whole number (e.g. num_steps=20), got 0.
    """

    objective: str = "auto"  # "causal_lm", "sft" (loss on the answer only), "classification" or "auto" (from the columns)
    num_steps: int = 20  # optimizer steps
    batch_size: int = 4  # examples per forward pass
    seq_len: int = 128  # tokens per example; longer examples are cut
    lr: float | None = None  # peak learning rate; None: the registered default_lr of the method applied to the model
    grad_accum: int = 1  # forward passes per optimizer step: each step sees batch_size * grad_accum examples
    eval_every: int | None = None  # evaluate on eval_data every this many steps; None: after the last step only
    eval_limit: int | None = None  # evaluation examples; None: 256 (32 in fast mode)
    # stop when eval_loss has not improved for this many evaluations in a row (needs eval_data and eval_every), then
    # put back the trainable weights of the best evaluation; None: train all num_steps
    early_stopping_patience: int | None = None
    grad_checkpointing: bool = False  # recompute activations in the backward pass: less memory, more time per step
    optimizer: str = "adamw"  # one of units.OPTIMIZERS
    weight_decay: float = 0.0  # decoupled weight decay (AdamW) or L2 penalty (SGD); 0: none
    warmup_steps: int = 0  # steps over which lr rises linearly from 0 to its peak
    schedule: str = "constant"  # how lr moves after warmup, one of SCHEDULES
    max_grad_norm: float | None = 1.0  # clip the gradient's global L2 norm to this before each step; None: no clipping
    mixed_precision: str = "auto"  # one of PRECISIONS
    seed: int = 0  # seeds python, numpy and torch (the LoRA init, dropout) and the batch order
    live_plot: bool = True  # in a notebook, redraw the loss curve as training runs
    progress: bool = True  # show a progress bar
    label: str = "run"  # name of the run in plots and tables
    exact_memory: bool = False  # CPU: freed memory returns to the OS so the peak tracks live tensors (every step slower)
    live_memory: bool = False  # CPU: profile step 2's live tensors into live_peak_mem_gib (that one step slower)
    report_to: str = "none"  # "tensorboard": log the run to the kit's tracker (labkit.tracker), named after label

    def __post_init__(self):
        if self.objective != "auto" and self.objective not in OBJECTIVES:
            raise LabkitError(f"Unknown objective {self.objective!r}: use 'auto' or one of {', '.join(OBJECTIVES)}.")
        for name, example in (("num_steps", 20), ("batch_size", 4), ("seq_len", 128), ("grad_accum", 1)):
            if not _whole(getattr(self, name), low=1):
                raise LabkitError(f"{name} must be a positive whole number (e.g. {name}={example}), "
                                  f"got {getattr(self, name)!r}.")
        if self.lr is not None and not _number(self.lr, low=0, open_low=True):
            raise LabkitError(f"lr must be a positive number, or None for the registered default of the method applied "
                              f"to the model (lk.get_method(name).default_lr), got {self.lr!r}.")
        for name in ("eval_every", "eval_limit", "early_stopping_patience"):
            value = getattr(self, name)
            if value is not None and not _whole(value, low=1):
                raise LabkitError(f"{name} must be a positive whole number or None, got {value!r}.")
        if self.early_stopping_patience is not None and self.eval_every is None:
            raise LabkitError("early_stopping_patience needs evaluations during training: set eval_every (e.g. "
                              "eval_every=10) and pass eval_data to lk.train.")
        if self.optimizer not in OPTIMIZERS:
            raise LabkitError(f"Unknown optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}.")
        if not _number(self.weight_decay, low=0):
            raise LabkitError(f"weight_decay must be 0 (off) or a positive number, got {self.weight_decay!r}.")
        if not _whole(self.warmup_steps, low=0) or self.warmup_steps > self.num_steps:
            raise LabkitError(f"warmup_steps must be a whole number from 0 to num_steps ({self.num_steps}), "
                              f"got {self.warmup_steps!r}.")
        if self.schedule not in SCHEDULES:
            raise LabkitError(f"Unknown schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}.")
        if self.max_grad_norm is not None and not _number(self.max_grad_norm, low=0, open_low=True):
            raise LabkitError(f"max_grad_norm must be a positive number, or None to turn clipping off, "
                              f"got {self.max_grad_norm!r}.")
        if self.mixed_precision not in PRECISIONS:
            raise LabkitError(f"Unknown mixed_precision {self.mixed_precision!r}: use one of {', '.join(PRECISIONS)}.")
        check_seed(self.seed)
        for name in ("grad_checkpointing", "live_plot", "progress", "exact_memory", "live_memory"):
            if not isinstance(getattr(self, name), bool):
                raise LabkitError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        if self.report_to not in REPORT_TO:
            raise LabkitError(f"report_to must be one of {', '.join(map(repr, REPORT_TO))} (the kit's tracker is "
                              f"TensorBoard), got {self.report_to!r}.")
        if not isinstance(self.label, str):
            raise LabkitError(f"label must be a string (the run's name in plots and tables), got {self.label!r}.")

    @property
    def scheduler_name(self) -> str:
        """The transformers scheduler this config runs: a constant schedule with warmup is "constant_with_warmup"."""
        return "constant_with_warmup" if self.schedule == "constant" and self.warmup_steps else self.schedule


def _whole(value, *, low: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low


def _number(value, *, low: float, open_low: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return False
    return value > low if open_low else value >= low


def make_config(config: TrainConfig | None, settings: dict) -> TrainConfig:
    """A checked TrainConfig from ``config`` or from lk.train's keyword settings, never from both."""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    for name in settings:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise LabkitError(f"lk.train has no setting {name!r}: {hint}Its settings are the fields of TrainConfig: "
                              f"{', '.join(names)}.")
    if config is None:
        return TrainConfig(**settings)
    if not isinstance(config, TrainConfig):
        raise LabkitError(f"config must be a TrainConfig, got {type(config).__name__}: build one with "
                          "lk.training.TrainConfig(num_steps=..., ...) or pass the settings as keywords.")
    if settings:
        given = ", ".join(f"{name}=..." for name in settings)
        raise LabkitError(f"Pass the settings either in config or as keywords, not both ({given} was given with "
                          f"config): use config=dataclasses.replace(config, {given}).")
    return dataclasses.replace(config)  # a fresh copy, checked again in case a field was set after creation


def default_lr(model) -> float:
    """The registered default learning rate of the method applied to ``model``; NO_METHOD_LR with no method."""
    from ..methods import applied_method, get_method

    applied = applied_method(model)
    return NO_METHOD_LR if applied is None else get_method(applied[0]).default_lr
