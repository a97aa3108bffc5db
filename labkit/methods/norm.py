"""Norm tuning: train only the normalisation weights (peft LN tuning), BitFit's analogue for bias-free models."""

from __future__ import annotations

from dataclasses import dataclass

from . import register_method


@dataclass
class NormSpec:
    """Norm tuning has no settings: every RMSNorm/LayerNorm of the model trains."""


def apply_norm(model, cfg: NormSpec):
    """Wrap ``model`` with peft LN tuning: trainable copies of the norm layers, the rest frozen."""
    from peft import LNTuningConfig, get_peft_model

    return get_peft_model(model, LNTuningConfig(task_type="CAUSAL_LM"))


register_method(
    "norm", config=NormSpec, apply=apply_norm,
    summary="norm tuning (Zhao et al. 2024, peft LN tuning): only the RMSNorm/LayerNorm scales train",
    adds="nothing new in size: a trainable copy of each norm layer (2 per decoder layer plus the final norm)",
    stores="the norm weights only (hidden numbers per norm layer)",
    trainable=(r"\.ln_tuning_layers\.default\.(weight|bias)$",),
    title="norm tuning", order=90, family="norm_weights",
    default_lr=1e-2,  # tried on the intents task (SmolLM2-135M), 20-200 steps, in lab 01a's comparison
    size_knob=None, takes_targets=False, mergeable=True, adds_latency=False,
    note="changes the norm weights themselves: merging just swaps them in",
)
