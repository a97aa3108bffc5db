"""Full fine-tuning: every parameter trains (the baseline the other methods are measured against)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import LabkitError
from . import register_method


@dataclass
class FullSpec:
    """Full fine-tuning has no settings."""


def apply_full(model, cfg: FullSpec):
    """Make every parameter of ``model`` trainable; refuse a quantized model (its weights cannot train)."""
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        raise LabkitError("Full fine-tuning cannot train 4-bit/8-bit weights: load the model with "
                          "quantization=None, or use method='qlora' to train LoRA on the quantized base.")
    for p in model.parameters():
        p.requires_grad_(True)
    return model


register_method(
    "full", config=FullSpec, apply=apply_full,
    summary="every weight trains; the most memory (gradients and optimizer state for all parameters)",
    adds="nothing; all existing parameters receive gradients",
    stores="a complete copy of the model per task",
    trainable=(r".",),
    title="full fine-tuning", order=0, family="all_weights",
    default_lr=5e-5,  # tried on the intents task (SmolLM2-135M), 20-200 steps, in lab 01a's comparison
    size_knob=None, takes_targets=False, mergeable=False, adds_latency=False,
    note="the model itself changed: nothing to merge, but a full copy per task",
)
