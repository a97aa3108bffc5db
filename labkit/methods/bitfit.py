"""BitFit: train only the bias terms (Ben Zaken et al. 2022)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import LabkitError
from . import freeze, register_method


@dataclass
class BitFitSpec:
    """BitFit has no settings: every bias trains and nothing else."""


def apply_bitfit(model, cfg: BitFitSpec):
    """Freeze ``model`` except its bias vectors; refuse a model without any."""
    biases = [p for n, p in model.named_parameters() if n.endswith(".bias")]
    if not biases:
        arch = getattr(model.config, "model_type", "this model")
        raise LabkitError(f"BitFit trains only bias terms, and {arch} has none (Llama, Mistral and SmolLM2 layers are "
                          "bias-free): use method='norm' (train the normalisation weights), the nearest analogue.")
    freeze(model)
    for p in biases:
        p.requires_grad_(True)
    return model


register_method(
    "bitfit", config=BitFitSpec, apply=apply_bitfit,
    summary="bias-only fine-tuning: every weight matrix is frozen, every bias vector trains",
    adds="nothing new; the existing biases receive gradients (Llama-family models have no biases: use 'norm')",
    stores="the bias vectors only",
    trainable=(r"\.bias$",),
)
