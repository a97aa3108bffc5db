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
                          "bias-free): use method='norm' (train the normalisation weights), the nearest analogue, or "
                          "try BitFit on labkit.methods.bitfit.tiny_model_with_biases().")
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
    title="BitFit", order=80, family="biases", analogue="norm",  # Llama-family models have no biases
    default_lr=1e-3,  # not measured: SmolLM2 has no biases, so lab 01a never trains it; LoRA's rate
    size_knob=None, takes_targets=False, mergeable=False, adds_latency=False,
    note="changes the biases themselves: nothing to merge, no extra work at inference",
)


def tiny_model_with_biases(seed: int = 0):
    """A tiny random Llama whose linear layers have biases (attention_bias, mlp_bias), to try BitFit on.

    >>> model = tiny_model_with_biases()  # doctest: +SKIP
    >>> model = apply_method(model, "bitfit")  # 14 bias vectors train  # doctest: +SKIP
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True, attention_bias=True,
                      mlp_bias=True)  # tiny-llama's sizes (SmolLM2's vocabulary), plus biases
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(cfg).eval()
