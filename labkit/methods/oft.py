"""OFT: a trainable block-diagonal orthogonal rotation of each target layer's input (peft)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import LabkitError
from . import check_targets, linear_module_names, register_method
from .lora import normalise_targets, positive_whole


@dataclass
class OftSpec:
    """Settings of OFT (Qiu et al. 2023, "Controlling Text-to-Image Diffusion by Orthogonal Finetuning")."""

    block_size: int = 32  # b: side of each orthogonal block; a layer with fan_in inputs gets fan_in / b blocks
    target_modules: list[str] | str = "all-linear"  # layer names like ["q_proj", "v_proj"], or "all-linear"

    def __post_init__(self):
        positive_whole("block_size", self.block_size, 32)
        if self.block_size < 2:
            raise LabkitError("block_size must be at least 2: a 1x1 rotation cannot change anything.")
        self.target_modules = normalise_targets(self.target_modules)


def apply_oft(model, cfg: OftSpec):
    """Wrap ``model`` with OFT; one skew-symmetric parameter vector per block (Cayley map to a rotation) trains."""
    import torch
    from peft import OFTConfig, get_peft_model

    check_targets(model, cfg.target_modules)
    targets = set(linear_module_names(model) if cfg.target_modules == "all-linear" else cfg.target_modules)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets \
                and module.in_features % cfg.block_size:
            raise LabkitError(f"block_size={cfg.block_size} does not divide {name.rsplit('.', 1)[-1]}'s "
                              f"{module.in_features} inputs: pick a divisor of it, e.g. 16 or 32.")
    return get_peft_model(model, OFTConfig(r=0, oft_block_size=cfg.block_size, target_modules=cfg.target_modules,
                                           task_type="CAUSAL_LM"))


register_method(
    "oft", config=OftSpec, apply=apply_oft,
    summary="OFT: each target layer's input is rotated by a learned block-diagonal orthogonal matrix",
    adds="b(b-1)/2 numbers per block of size b (a skew-symmetric matrix, Cayley-mapped to a rotation), fan_in / b "
         "blocks per layer, starting at the identity",
    stores="the skew-symmetric parameters of every block",
    trainable=(r"\.oft_R\.default\.weight$",),
    title="OFT", order=140, family="orthogonal", core=False,
    default_lr=1e-3,  # starts at the identity rotation; checked in lab 03's portrait
    size_knob="block_size", takes_targets=True, mergeable=True, adds_latency=False,
    note="merges into W (W R); keeps the angles between W's neurons (its hyperspherical energy)",
)
