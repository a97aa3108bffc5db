"""AdaLoRA: an SVD-shaped update P·Λ·Q per layer whose rank budget moves to the layers that need it (peft)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import LabkitError
from . import check_targets, register_method
from .lora import check_model_ranks, normalise_targets, positive_whole


@dataclass
class AdaLoraSpec:
    """Settings of AdaLoRA (Zhang et al. 2023, "Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning")."""

    rank: int = 12  # initial rank of every layer's P·Λ·Q (peft's init_r); the parameters are allocated at this rank
    target_rank: int = 8  # average rank kept after pruning (peft's target_r): the budget is target_rank per layer
    alpha: float = 32.0  # scale of the update (peft's lora_alpha)
    target_modules: list[str] | str = "all-linear"  # layer names like ["q_proj", "v_proj"], or "all-linear"
    tinit: int = 0  # steps of warm-up before any pruning
    tfinal: int = 0  # steps at the end that train with the final ranks fixed
    delta_t: int = 1  # steps between two budget updates
    total_step: int | None = None  # steps of the whole run; None: lk.train sets it to the run's num_steps

    def __post_init__(self):
        positive_whole("rank", self.rank, 12)
        positive_whole("target_rank", self.target_rank, 8)
        if self.target_rank > self.rank:
            raise LabkitError(f"target_rank={self.target_rank} is above rank={self.rank}: AdaLoRA starts every layer "
                              f"at rank and prunes down to an average of target_rank, so pick target_rank <= rank.")
        if self.alpha <= 0:
            raise LabkitError(f"alpha must be positive (try 32), got {self.alpha!r}.")
        for name in ("tinit", "tfinal"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise LabkitError(f"{name} must be a whole number of steps >= 0, got {value!r}.")
        positive_whole("delta_t", self.delta_t, 1)
        if self.total_step is not None:
            positive_whole("total_step", self.total_step, "the number of training steps, or None")
            check_schedule(self, self.total_step)
        self.target_modules = normalise_targets(self.target_modules)


def check_schedule(cfg: AdaLoraSpec, total_step: int) -> None:
    """Refuse a schedule with no steps left for budgeting, as peft would (tinit >= total_step - tfinal), or with none
    before the final allocation (peft scores importance on the steps before it, counted from 1 by lk.train)."""
    if cfg.tinit >= total_step - cfg.tfinal or total_step - cfg.tfinal < 2:
        raise LabkitError(f"AdaLoRA needs steps between its warm-up and its final phase: tinit={cfg.tinit} and "
                          f"tfinal={cfg.tfinal} leave none of {total_step} steps; train longer or lower them.")


def apply_adalora(model, cfg: AdaLoraSpec):
    """Wrap ``model`` with AdaLoRA; lk.train calls its rank reallocation after every step."""
    from peft import AdaLoraConfig, get_peft_model

    check_targets(model, cfg.target_modules)
    check_model_ranks(model, _as_lora(cfg))
    total = cfg.total_step or cfg.tinit + cfg.tfinal + 1  # a placeholder until lk.train knows the run's length
    return get_peft_model(model, AdaLoraConfig(init_r=cfg.rank, target_r=cfg.target_rank, lora_alpha=cfg.alpha,
                                               target_modules=cfg.target_modules, tinit=cfg.tinit, tfinal=cfg.tfinal,
                                               deltaT=cfg.delta_t, total_step=total, task_type="CAUSAL_LM"))


def _as_lora(cfg: AdaLoraSpec):
    from .lora import LoraSpec

    return LoraSpec(rank=cfg.rank, target_modules=cfg.target_modules)


def reallocate(model, cfg: AdaLoraSpec, step: int, num_steps: int) -> None:
    """After each optimizer step: peft's update_and_allocate moves the rank budget (total_step set on step 1)."""
    peft_cfg = model.peft_config["default"]
    if step == 1 and cfg.total_step is None:
        check_schedule(cfg, num_steps)
        peft_cfg.total_step = num_steps
    model.base_model.update_and_allocate(step)


def ranks(model) -> dict[str, int]:
    """Current rank of every AdaLoRA layer: its initial rank until peft's allocator has masked singular values."""
    pattern = model.peft_config["default"].rank_pattern or {}
    out = {}
    for name, module in model.named_modules():
        e = getattr(module, "lora_E", None)
        if e is not None and "default" in e:
            short = name.removeprefix("base_model.model.")
            mask = next((v for k, v in pattern.items() if k.removesuffix(".lora_E.default").endswith(short)), None)
            out[short] = int(sum(mask)) if mask is not None else int(module.r["default"])
    return out


register_method(
    "adalora", config=AdaLoraSpec, apply=apply_adalora,
    summary="AdaLoRA: LoRA in SVD form (P·Λ·Q); unimportant singular values are pruned so rank flows where it helps",
    adds="P (out x r), Λ (r) and Q (r x in) per target layer, with an orthogonality penalty on P and Q",
    stores="P, Λ and Q of every target layer (pruned values are stored as zeros)",
    trainable=(r"\.lora_[ABE]\.default$",),
    title="AdaLoRA", order=150, family="low_rank_adaptive", core=False,
    default_lr=1e-3,  # LoRA's default; Λ starts at zero like LoRA's B; checked in lab 03's portrait
    size_knob="rank", takes_targets=True, mergeable=True, adds_latency=False,
    note="merges into W like LoRA once the budget is final",
    after_step=reallocate,
)
