"""A project budget, not a run: data preparation, sweeps x seeds, the final run, evaluation and serving, on demand
or partly on spot (with preemptions and checkpoint restarts), and the break-even against a hosted model.

>>> plan_project(Project(model="meta-llama/Llama-3.1-8B", method="qlora", hardware="L4")).total_usd  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ...core import LabkitError
from ...meters import (
    DEFAULT_MFU,
    analytic_storage_bytes,
    analytic_trainable_params,
    estimate_time_s,
    get_hardware,
    matmul_params,
    resolve_config,
    training_flops,
    will_it_fit,
)
from ...methods import get_method

# Spot capacity is sold at a discount and can be taken back at short notice. AWS: "up to 90% off On-Demand prices"
# (aws.amazon.com/ec2/spot, read 2025-06); the discount of a given GPU on a given day varies, so it is an input.
SPOT_SOURCE = "aws.amazon.com/ec2/spot: Spot Instances run at up to 90% off On-Demand prices (read 2025-06)"

# Hosted models at a per-token price, for the break-even; list prices per million tokens (input, output).
HOSTED_PRICES = {
    "gpt-4o-mini": {"input": 0.15, "output": 0.60, "date": "2024-07", "source": "openai.com/api/pricing"},
    "gpt-4o": {"input": 2.50, "output": 10.00, "date": "2024-10", "source": "openai.com/api/pricing"},
}


@dataclass(frozen=True)
class Project:
    """What a fine-tuning project needs; every money figure comes from the dated hardware table."""

    model: str = "meta-llama/Llama-3.1-8B"  # a hub id or alias the meters know (lk.meters.known_configs())
    method: str = "lora"  # full, lora, qlora, ...
    hardware: str = "A100-80GB"  # a row of lk.meters.HARDWARE for training and evaluation
    train_tokens: float = 20e6  # tokens in the training set
    epochs: float = 3.0  # passes over it in the final run
    sweep_runs: int = 8  # hyper-parameter settings tried before the final run
    seeds: int = 3  # runs per setting, to see the spread
    sweep_fraction: float = 0.25  # share of the final run's tokens each sweep run sees
    eval_tokens: float = 2e6  # tokens read by one evaluation (one per sweep run and one for the final model)
    prep_cpu_hours: float = 4.0  # data preparation on the table's CPU VM
    requests_per_day: float = 2000.0  # serving
    tokens_per_request: float = 600.0  # prompt + answer
    serving_months: float = 3.0
    serving_hardware: str = "L4"
    spot_share: float = 0.0  # share of the training and evaluation hours bought on spot
    spot_discount: float = 0.6  # spot price = (1 - discount) x on-demand price
    preemptions_per_hour: float = 0.1  # how often spot capacity is taken back
    checkpoint_every_h: float = 0.5  # hours between checkpoints on spot
    restart_h: float = 0.1  # hours to get a new machine and reload after a preemption
    write_gb_per_s: float = 0.5  # checkpoint write speed (the lab measures this machine's)
    mfu: float = DEFAULT_MFU  # share of peak speed the runs reach
    rank: int = 16  # LoRA-family rank

    def __post_init__(self):
        for name in ("train_tokens", "epochs", "eval_tokens", "tokens_per_request", "write_gb_per_s",
                     "checkpoint_every_h"):
            if not getattr(self, name) > 0:
                raise LabkitError(f"{name} must be positive, got {getattr(self, name)!r}: a project trains on "
                                  "something; give it a number above zero.")
        for name in ("sweep_runs", "seeds", "prep_cpu_hours", "requests_per_day", "serving_months",
                     "preemptions_per_hour", "restart_h", "sweep_fraction"):
            if getattr(self, name) < 0:
                raise LabkitError(f"{name} cannot be negative, got {getattr(self, name)!r}; use 0 to leave it out.")
        for name in ("spot_share", "spot_discount"):
            if not 0 <= getattr(self, name) <= 1:
                raise LabkitError(f"{name} is a share between 0 and 1, got {getattr(self, name)!r}.")
        if not 0 < self.mfu <= 1:
            raise LabkitError(f"mfu is a fraction of peak speed in (0, 1], got {self.mfu!r}.")
        get_hardware(self.hardware), get_hardware(self.serving_hardware), get_method(self.method)  # clear errors


@dataclass(frozen=True)
class Budget:
    """A project's predicted cost in dollars per part, the hours behind it and what it assumed."""

    project: Project
    parts_usd: dict  # part -> dollars, in the order the project spends them
    hours: dict  # part -> machine hours
    fits: bool  # whether training fits on the chosen hardware's memory
    need_gib: float  # predicted training peak
    checkpoint_gb: float  # what one spot checkpoint writes
    spot_overhead: float  # expected extra hours on spot per hour of work (preemptions + checkpoint writes)

    @property
    def total_usd(self) -> float:
        return sum(self.parts_usd.values())

    def __str__(self) -> str:
        parts = ", ".join(f"{k} ${v:,.0f}" for k, v in self.parts_usd.items())
        fit = "" if self.fits else f" (does not fit: ~{self.need_gib:.0f} GiB)"
        return f"{self.project.method} on {self.project.hardware}{fit}: ${self.total_usd:,.0f} = {parts}"


def spot_hours(work_h: float, *, preemptions_per_hour: float, checkpoint_every_h: float, restart_h: float,
               checkpoint_write_h: float) -> float:
    """Expected wall hours on spot for ``work_h`` hours of work.

    Writing a checkpoint every ``checkpoint_every_h`` hours of work costs ``checkpoint_write_h`` each time. A
    preemption (a Poisson process at ``preemptions_per_hour`` of wall time) loses on average half a checkpoint
    interval plus ``restart_h``. Expected wall time W then solves W = work·(1 + write/interval) + rate·W·loss.
    """
    if work_h < 0 or preemptions_per_hour < 0 or restart_h < 0 or checkpoint_write_h < 0:
        raise LabkitError("Hours and rates cannot be negative.")
    if checkpoint_every_h <= 0:
        raise LabkitError(f"checkpoint_every_h must be positive, got {checkpoint_every_h!r}.")
    loss_per_preemption = checkpoint_every_h / 2 + restart_h
    if preemptions_per_hour * loss_per_preemption >= 1:
        return math.inf  # preempted faster than it can make progress
    return work_h * (1 + checkpoint_write_h / checkpoint_every_h) / (1 - preemptions_per_hour * loss_per_preemption)


def plan_project(project: Project) -> Budget:
    """Add up a project's cost per part (see Project for the inputs)."""
    p = project
    config = resolve_config(p.model)
    spec = get_method(p.method)
    kw = {"rank": p.rank} if spec.size_knob == "rank" else {}
    hw, serve = get_hardware(p.hardware), get_hardware(p.serving_hardware)
    dtype = "bf16" if "bf16" in hw.peak_tflops else ("fp16" if "fp16" in hw.peak_tflops else "fp32")
    n_matmul = matmul_params(config)
    trainable = analytic_trainable_params(config, p.method, **kw)

    def train_h(tokens: float) -> float:
        flops = training_flops(n_matmul, tokens, trainable_params=min(trainable, n_matmul))
        return estimate_time_s(flops, hw, dtype, mfu=p.mfu) / 3600

    def eval_h() -> float:  # a forward pass: 2 FLOPs per matmul parameter and token
        return estimate_time_s(2.0 * n_matmul * p.eval_tokens, hw, dtype, mfu=p.mfu) / 3600

    final_tokens = p.train_tokens * p.epochs
    hours = {
        "data preparation": p.prep_cpu_hours,
        "sweeps": p.sweep_runs * p.seeds * (train_h(final_tokens * p.sweep_fraction) + eval_h()),
        "final run": train_h(final_tokens),
        "evaluation": eval_h(),
    }
    # checkpoint on spot: the trainable weights plus AdamW's two fp32 moments for them
    checkpoint_gb = (analytic_storage_bytes(config, p.method, dtype="fp32", **kw) + 8 * trainable) / 1e9
    overhead = spot_hours(1.0, preemptions_per_hour=p.preemptions_per_hour, checkpoint_every_h=p.checkpoint_every_h,
                          restart_h=p.restart_h, checkpoint_write_h=checkpoint_gb / p.write_gb_per_s / 3600) - 1
    spot_price = hw.usd_per_hour * (1 - p.spot_discount)
    usd = {"data preparation": hours["data preparation"] * get_hardware("cpu").usd_per_hour}
    for part in ("sweeps", "final run", "evaluation"):
        on_demand = hours[part] * (1 - p.spot_share) * hw.usd_per_hour
        on_spot = hours[part] * p.spot_share * (1 + overhead) * spot_price if p.spot_share else 0.0
        usd[part] = on_demand + on_spot
    # serving: a forward pass per token at the same MFU (an optimistic bound: decoding is memory-bound)
    tokens_served = p.requests_per_day * p.tokens_per_request * 30.4 * p.serving_months
    serve_dtype = "bf16" if "bf16" in serve.peak_tflops else ("fp16" if "fp16" in serve.peak_tflops else "fp32")
    busy_h = estimate_time_s(2.0 * n_matmul * tokens_served, serve, serve_dtype, mfu=p.mfu) / 3600 if tokens_served else 0
    hours["serving"] = busy_h
    usd["serving"] = busy_h * serve.usd_per_hour
    fit = will_it_fit(config, p.method, hw.name, rank=p.rank)
    return Budget(p, usd, hours, fit.fits, fit.need_gib, checkpoint_gb, overhead)


def compare_projects(project: Project, *, methods=("full", "lora", "qlora"), hardware=None):
    """The same project per method and per hardware, on demand and with the given spot share: a table."""
    import pandas as pd

    rows = []
    for name in hardware or ("T4", "L4", "A100-80GB", "H100"):
        for method in methods:
            budget = plan_project(dataclasses.replace(project, method=method, hardware=name))
            rows.append({"method": method, "hardware": name, "fits": budget.fits, "need_gib": budget.need_gib,
                         **{k: round(v, 2) for k, v in budget.parts_usd.items()}, "total_usd": budget.total_usd})
    return pd.DataFrame(rows)


def breakeven_tokens(fine_tune_usd: float, own_usd_per_mtok: float, hosted_usd_per_mtok: float) -> float:
    """Tokens served after which fine-tuning a small model and serving it yourself costs less than the hosted model:
    the one-off cost over the per-token saving. Infinite when serving yourself is not cheaper per token."""
    for name, value in (("fine_tune_usd", fine_tune_usd), ("own_usd_per_mtok", own_usd_per_mtok),
                        ("hosted_usd_per_mtok", hosted_usd_per_mtok)):
        if value < 0:
            raise LabkitError(f"{name} is a price and cannot be negative, got {value!r}.")
    saving = hosted_usd_per_mtok - own_usd_per_mtok
    return math.inf if saving <= 0 else fine_tune_usd / saving * 1e6


def own_usd_per_mtok(model: str, hardware: str, *, mfu: float = DEFAULT_MFU) -> float:
    """Dollars per million tokens served by ``model`` on ``hardware`` (compute-bound bound, see plan_project)."""
    hw = get_hardware(hardware)
    dtype = "bf16" if "bf16" in hw.peak_tflops else ("fp16" if "fp16" in hw.peak_tflops else "fp32")
    seconds = estimate_time_s(2.0 * matmul_params(resolve_config(model)) * 1e6, hw, dtype, mfu=mfu)
    return seconds / 3600 * hw.usd_per_hour


def hosted_usd_per_mtok(name: str, *, output_share: float = 0.25) -> float:
    """A hosted model's blended price per million tokens, with ``output_share`` of the tokens generated."""
    if name not in HOSTED_PRICES:
        raise LabkitError(f"Unknown hosted model {name!r}: use one of {', '.join(HOSTED_PRICES)}, or pass prices.")
    if not 0 <= output_share <= 1:
        raise LabkitError(f"output_share is a share between 0 and 1, got {output_share!r}.")
    price = HOSTED_PRICES[name]
    return price["input"] * (1 - output_share) + price["output"] * output_share
