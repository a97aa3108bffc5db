"""Full fine-tuning: every parameter trains (the baseline the other methods are measured against)."""

from __future__ import annotations

from dataclasses import dataclass

from . import register_method


@dataclass
class FullSpec:
    """Full fine-tuning has no settings."""


def apply_full(model, cfg: FullSpec):
    """Make every parameter of ``model`` trainable."""
    for p in model.parameters():
        p.requires_grad_(True)
    return model


register_method(
    "full", config=FullSpec, apply=apply_full,
    summary="every weight trains; the most memory (gradients and optimizer state for all parameters)",
    adds="nothing; all existing parameters receive gradients",
    stores="a complete copy of the model per task",
    trainable=(r".",),
)
