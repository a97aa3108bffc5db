"""QLoRA: LoRA on top of a frozen 4-bit NF4 base model (bitsandbytes + peft)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import LabkitError
from . import check_targets, register_method
from .lora import LoraSpec, check_model_ranks, lora_config, loraplus_optimizer


@dataclass
class QLoraSpec(LoraSpec):
    """Settings of a QLoRA adapter: LoRA's settings plus how to prepare the 4-bit base."""

    grad_checkpointing: bool = False  # recompute activations in backward (peft's prepare step turns it on)


def apply_qlora(model, cfg: QLoraSpec):
    """Prepare a 4-bit model for training and add LoRA; refuses a model that is not 4-bit."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    from ..models import bitsandbytes_works

    if not bitsandbytes_works():
        raise LabkitError("QLoRA needs bitsandbytes 4-bit, which cannot run here: `pip install bitsandbytes` "
                          "(>=0.45 runs on the CPU), or use method='lora' on a full-precision model.")
    if not getattr(model, "is_loaded_in_4bit", False):
        raise LabkitError("QLoRA needs a 4-bit base model: load it with lk.load_model(name, quantization='nf4'), "
                          "or use method='lora' on this model.")
    check_targets(model, cfg.target_modules)
    check_model_ranks(model, cfg)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.grad_checkpointing,
                                            gradient_checkpointing_kwargs={"use_reentrant": False})
    return get_peft_model(model, lora_config(cfg))


register_method(
    "qlora", config=QLoraSpec, apply=apply_qlora,
    summary="LoRA on a base model stored in 4-bit NF4 (double-quantized): the base costs ~0.5 byte per weight",
    adds="LoRA's A and B per target layer (in 16/32-bit); the frozen base weights are 4-bit",
    stores="only A and B (the same file as LoRA); the base is re-quantized from the original at load time",
    trainable=(r"\.lora_[AB]\.default\.weight$",),
    title="QLoRA", order=30, family="low_rank", base_quantization="nf4",
    default_lr=1e-3,  # tried on the intents task (SmolLM2-135M), 20-200 steps, in lab 01a's comparison
    size_knob="rank", takes_targets=True, mergeable=True, adds_latency=False,
    note="4-bit base (its own base latency); merging re-quantizes the weights, so it is slightly lossy",
    make_optimizer=loraplus_optimizer,
)
