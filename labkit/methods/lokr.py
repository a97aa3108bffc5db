"""LoKr: a Kronecker product of two small factors, W1 ⊗ W2, on chosen linear layers (peft)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import LabkitError
from . import check_targets, register_method
from .lora import normalise_targets, positive_whole


@dataclass
class LokrSpec:
    """Settings of LoKr (Yeh et al. 2024, LyCORIS)."""

    rank: int = 8  # r of the second factor's low-rank split (used when r < half its larger side)
    alpha: float = 16.0  # the update is scaled by alpha / rank
    target_modules: list[str] | str = "all-linear"  # layer names like ["q_proj", "v_proj"], or "all-linear"
    decompose_factor: int = -1  # split each side as close to this factor as divides it; -1: near its square root

    def __post_init__(self):
        positive_whole("rank", self.rank, 8)
        if self.alpha <= 0:
            raise LabkitError(f"alpha must be positive (try 2 * rank), got {self.alpha!r}.")
        if isinstance(self.decompose_factor, bool) or not isinstance(self.decompose_factor, int) or (
                self.decompose_factor != -1 and self.decompose_factor <= 0):
            raise LabkitError(f"decompose_factor must be -1 (near the square root) or a positive whole number, got "
                              f"{self.decompose_factor!r}.")
        self.target_modules = normalise_targets(self.target_modules)


def factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
    """(m, n) with m * n = dimension, m <= n: the split LoKr uses (peft.tuners.lokr.layer.factorization, 0.21)."""
    if factor > 0 and dimension % factor == 0:
        return factor, dimension // factor
    factor = dimension if factor == -1 else factor
    m, n = 1, dimension
    while m < n:
        new_m = m + 1
        while dimension % new_m:
            new_m += 1
        new_n = dimension // new_m
        if new_m + new_n > m + n or new_m > factor:
            break
        m, n = new_m, new_n
    return (n, m) if m > n else (m, n)


def lokr_sizes(fan_in: int, fan_out: int, rank: int, factor: int = -1) -> list[int]:
    """Sizes of LoKr's trainable tensors on one fan_in -> fan_out layer: W1 full, W2 full or split at ``rank``."""
    in_m, in_n = factorization(fan_in, factor)
    out_l, out_k = factorization(fan_out, factor)
    w1 = [out_l * in_m]  # decompose_both=False: the first factor is always a full (small) matrix
    w2 = [out_k * in_n] if not rank < max(out_k, in_n) / 2 else [out_k * rank, rank * in_n]
    return w1 + w2


def apply_lokr(model, cfg: LokrSpec):
    """Wrap ``model`` with LoKr; the Kronecker factors of each target layer train."""
    from peft import LoKrConfig, get_peft_model

    check_targets(model, cfg.target_modules)
    return get_peft_model(model, LoKrConfig(r=cfg.rank, alpha=cfg.alpha, target_modules=cfg.target_modules,
                                            decompose_factor=cfg.decompose_factor, task_type="CAUSAL_LM"))


register_method(
    "lokr", config=LokrSpec, apply=apply_lokr,
    summary="LoKr: ΔW = W1 ⊗ W2, a Kronecker product of two small factors: full-rank updates from few numbers",
    adds="two factors per target layer (the second split into two rank-r pieces on wide layers), one starting at zero",
    stores="the Kronecker factors of every target layer",
    trainable=(r"\.lokr_w[12](_[ab])?\.default$",),
    title="LoKr", order=130, family="kronecker", core=False,
    default_lr=1e-3,  # LoRA's default: ΔW starts at zero like B·A; checked in lab 03's portrait
    size_knob="rank", takes_targets=True, mergeable=True, adds_latency=False,
    note="merges into W; unmerged it rebuilds the full ΔW at every forward pass",
)
