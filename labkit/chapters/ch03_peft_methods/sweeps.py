"""Train many small runs under one budget and tabulate them: rank and scale, placement, initialisation and optimiser."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

from ...core import LabkitError

SCALE_RULES = ("alpha fixed", "alpha = 2r", "rsLoRA")  # LoRA's scale: alpha/r with alpha=16, 2r/r = 2, 16/sqrt(r)
FIXED_ALPHA = 16.0  # the alpha of the "alpha fixed" and rsLoRA rules (peft's usual 2 x the default rank 8)


@dataclass
class Budget:
    """One training budget shared by every run of a sweep."""

    num_steps: int = 20  # optimizer steps per run
    batch_size: int = 4  # examples per step
    seq_len: int = 64  # longest example in tokens
    lr: float = 1e-3  # learning rate of every run (LoRA's registered default)
    eval_limit: int = 16  # held-out examples scored after the last step
    seed: int = 0  # the new weights and the batch order: the same for every run

    def __post_init__(self):
        for name in ("num_steps", "batch_size", "seq_len", "eval_limit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise LabkitError(f"{name} must be a positive whole number, got {value!r}.")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise LabkitError(f"lr must be a positive number (try 1e-3), got {self.lr!r}.")


@dataclass
class Run:
    """One trained run: its settings, what it measured, and (if kept) the trained model."""

    label: str  # name in tables and plots
    method: str  # registry name
    settings: dict  # the apply_method settings
    row: dict  # trainable, eval_loss, final_loss, time_per_step_s, peak_mem_gib, ...
    history: object  # the training history (pandas DataFrame)
    model: object = field(default=None, repr=False)  # the trained model, when keep=True


def scale_settings(rule: str, rank: int) -> dict:
    """LoRA settings for one scale rule at ``rank``: alpha fixed (16/r), alpha = 2r (always 2), rsLoRA (16/sqrt r)."""
    if rule not in SCALE_RULES:
        raise LabkitError(f"Unknown scale rule {rule!r}: use one of {', '.join(SCALE_RULES)}.")
    if rule == "alpha = 2r":
        return {"rank": rank, "alpha": 2.0 * rank}
    return {"rank": rank, "alpha": FIXED_ALPHA, "use_rslora": rule == "rsLoRA"}


def lora_scale(rule: str, rank: int) -> float:
    """The factor LoRA multiplies B·A by under ``rule`` at ``rank`` (what peft sets as ``scaling``)."""
    s = scale_settings(rule, rank)
    return s["alpha"] / (math.sqrt(rank) if s.get("use_rslora") else rank)


def train_run(base, tokenizer, method: str, settings: dict, train_data, eval_data, budget: Budget, *,
              label: str | None = None, lr: float | None = None, keep: bool = False) -> Run:
    """Copy ``base``, apply ``method`` with ``settings``, train it for the budget, score it on ``eval_data``."""
    from ...methods import apply_method
    from ...training import train

    model = apply_method(copy.deepcopy(base), method, seed=budget.seed, **settings)
    result = train(model, tokenizer, train_data, objective="sft", num_steps=budget.num_steps,
                   batch_size=budget.batch_size, seq_len=budget.seq_len, lr=lr or budget.lr, eval_data=eval_data,
                   eval_limit=budget.eval_limit, seed=budget.seed, progress=False, live_plot=False,
                   label=label or method)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    row = {"label": label or method, "method": method, "trainable": trainable, "eval_loss": result.eval_loss,
           "final_loss": result.final_loss, "first_loss": float(result.history["loss"].iloc[0]),
           "time_per_step_s": result.time_per_step_s, "peak_mem_gib": result.peak_mem_gib, "lr": lr or budget.lr}
    return Run(label or method, method, dict(settings), row, result.history, model if keep else None)


def _frame(runs, extra):
    import pandas as pd

    return pd.DataFrame([{**extra(run), **run.row} for run in runs])


def rank_sweep(base, tokenizer, train_data, eval_data, budget: Budget, ranks=(1, 8), rules=SCALE_RULES,
               target_modules="all-linear", progress=None):
    """LoRA at every rank under every scale rule: (table, runs). Runs with the same (rank, scale) train once."""
    runs, done = [], {}
    for rank in ranks:
        for rule in rules:
            key = (rank, round(lora_scale(rule, rank), 9))
            if key in done:  # e.g. alpha fixed = alpha = 2r at r = 8: the very same run, reused
                runs.append(Run(f"r={rank} {rule}", "lora", done[key].settings, dict(done[key].row),
                                done[key].history))
            else:
                run = train_run(base, tokenizer, "lora", {**scale_settings(rule, rank), "target_modules": target_modules},
                                train_data, eval_data, budget, label=f"r={rank} {rule}")
                done[key] = run
                runs.append(run)
            if progress is not None:
                progress.update(1)
    table = _frame(runs, lambda run: {"rank": run.settings["rank"], "rule": run.label.split(" ", 1)[1],
                                      "scale": lora_scale(run.label.split(" ", 1)[1], run.settings["rank"])})
    return table, runs


PLACEMENTS = {  # name -> (target_modules, decoder layers: None for all, "bottom" / "top" for one half)
    "attention only": (["q_proj", "k_proj", "v_proj", "o_proj"], None),
    "MLP only": (["gate_proj", "up_proj", "down_proj"], None),
    "all-linear": ("all-linear", None),
    "bottom half": ("all-linear", "bottom"),
    "top half": ("all-linear", "top"),
}


def placement_settings(config, name: str, budget_params: int) -> dict:
    """LoRA settings for placement ``name`` with the rank whose trainable count is closest to ``budget_params``."""
    from ...meters import analytic_trainable_params

    if name not in PLACEMENTS:
        raise LabkitError(f"Unknown placement {name!r}: use one of {', '.join(PLACEMENTS)}.")
    targets, half = PLACEMENTS[name]
    layers_total = config.num_hidden_layers
    layers = None if half is None else (list(range(layers_total // 2)) if half == "bottom"
                                        else list(range(layers_total // 2, layers_total)))
    extra = {} if layers is None else {"layers": layers}
    per_rank = analytic_trainable_params(config, "lora", rank=1, target_modules=targets, **extra)
    rank = max(1, round(budget_params / per_rank))
    return {"rank": rank, "alpha": 2.0 * rank, "target_modules": targets, **extra}


def placement_sweep(base, tokenizer, train_data, eval_data, budget: Budget, budget_params: int,
                    placements=tuple(PLACEMENTS), progress=None):
    """LoRA in each placement at (about) the same trainable-parameter budget: (table, runs)."""
    runs = []
    for name in placements:
        settings = placement_settings(base.config, name, budget_params)
        runs.append(train_run(base, tokenizer, "lora", settings, train_data, eval_data, budget, label=name))
        if progress is not None:
            progress.update(1)
    return _frame(runs, lambda run: {"placement": run.label, "rank": run.settings["rank"]}), runs


INIT_RUNS = {  # label -> LoRA settings beyond the rank: the initialisations, then LoRA+ at two ratios
    "default": {},
    "PiSSA": {"init": "pissa_niter_4"},
    "OLoRA": {"init": "olora"},
    "LoRA+ ratio 4": {"loraplus_ratio": 4.0},
    "LoRA+ ratio 16": {"loraplus_ratio": 16.0},
}


def init_sweep(base, tokenizer, train_data, eval_data, budget: Budget, rank: int = 8, runs_to_do=tuple(INIT_RUNS),
               progress=None):
    """Default, PiSSA and OLoRA initialisation and LoRA+ (same rank, lr and batches): (table, runs)."""
    runs = []
    for label in runs_to_do:
        settings = {"rank": rank, "alpha": 2.0 * rank, **INIT_RUNS[label]}
        runs.append(train_run(base, tokenizer, "lora", settings, train_data, eval_data, budget, label=label))
        if progress is not None:
            progress.update(1)
    table = _frame(runs, lambda run: {"run": run.label})
    target = None
    if "default" in runs_to_do:  # where the default run's smoothed loss ends: every run is timed to reach it
        target = float(smoothed(runs[list(runs_to_do).index("default")].history["loss"]).iloc[-1])
    if target is not None:
        table["steps_to_target"] = [steps_to(run.history["loss"], target) for run in runs]
    return table, runs, target


def steps_to(losses, target: float, window: int = 3):
    """First step whose running mean over ``window`` steps is at or below ``target`` (None if never)."""
    hits = [i + 1 for i, v in enumerate(smoothed(losses, window)) if v <= target + 1e-12]
    return hits[0] if hits else None


def smoothed(losses, window: int = 3):
    """Running mean of a loss curve over ``window`` steps (the first steps average what there is)."""
    import pandas as pd

    return pd.Series(list(losses), dtype=float).rolling(window, min_periods=1).mean()
