"""LoHa: the Hadamard product of two low-rank updates, (B1·A1) ⊙ (B2·A2), on chosen linear layers (peft)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import LabkitError
from . import check_targets, register_method
from .lora import normalise_targets, positive_whole


@dataclass
class LohaSpec:
    """Settings of LoHa (Hyeon-Woo et al. 2022, FedPara; LyCORIS)."""

    rank: int = 8  # r of each of the two factors; their Hadamard product can reach rank r^2 with 2x LoRA's parameters
    alpha: float = 16.0  # the update is scaled by alpha / rank
    target_modules: list[str] | str = "all-linear"  # layer names like ["q_proj", "v_proj"], or "all-linear"

    def __post_init__(self):
        positive_whole("rank", self.rank, 8)
        if self.alpha <= 0:
            raise LabkitError(f"alpha must be positive (try 2 * rank), got {self.alpha!r}.")
        self.target_modules = normalise_targets(self.target_modules)


def apply_loha(model, cfg: LohaSpec):
    """Wrap ``model`` with LoHa; the four factors of each target layer train."""
    from peft import LoHaConfig, get_peft_model

    check_targets(model, cfg.target_modules)
    return get_peft_model(model, LoHaConfig(r=cfg.rank, alpha=cfg.alpha, target_modules=cfg.target_modules,
                                            task_type="CAUSAL_LM"))


register_method(
    "loha", config=LohaSpec, apply=apply_loha,
    summary="LoHa: the element-wise product of two rank-r updates, reaching rank up to r² for twice LoRA's size",
    adds="four factors per target layer: (B1·A1) ⊙ (B2·A2), one of them starting at zero",
    stores="the four factors of every target layer",
    trainable=(r"\.hada_w[12]_[ab]\.default$",),
    title="LoHa", order=120, family="hadamard", core=False,
    default_lr=1e-3,  # LoRA's default: the product starts at zero like B·A; checked in lab 03's portrait
    size_knob="rank", takes_targets=True, mergeable=True, adds_latency=False,
    note="merges into W; unmerged it rebuilds the full ΔW at every forward pass",
)
