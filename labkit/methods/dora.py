"""DoRA: LoRA on the direction of each weight plus a trainable magnitude vector (peft ``use_dora=True``)."""

from __future__ import annotations

from . import register_method
from .lora import LoraSpec, apply_lora, loraplus_optimizer


def apply_dora(model, cfg: LoraSpec):
    """Wrap ``model`` with a DoRA adapter; A, B and the magnitude vectors are trainable."""
    return apply_lora(model, cfg, use_dora=True)


register_method(
    "dora", config=LoraSpec, apply=apply_dora,
    summary="weight-decomposed LoRA: the weight is split into magnitude and direction; LoRA updates the direction",
    adds="LoRA's A and B per target layer plus one magnitude value per output feature",
    stores="A, B and the magnitude vector of every target layer",
    trainable=(r"\.lora_[AB]\.default\.weight$", r"\.lora_magnitude_vector\.default\.weight$"),
    title="DoRA", order=20, family="low_rank_magnitude",
    default_lr=1e-3,  # tried on the intents task (SmolLM2-135M), 20-200 steps, in lab 01a's comparison
    size_knob="rank", takes_targets=True, mergeable=True, adds_latency=False,
    note="merges into W (magnitude and direction): no extra work once merged",
    make_optimizer=loraplus_optimizer,
)
