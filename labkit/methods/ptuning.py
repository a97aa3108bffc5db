"""P-tuning: virtual-token embeddings produced by a small trainable MLP, in front of the input (peft)."""

from __future__ import annotations

from dataclasses import dataclass

from . import register_method
from .lora import positive_whole


@dataclass
class PtuningSpec:
    """Settings of P-tuning (Liu et al. 2021, "GPT Understands, Too"), peft's MLP prompt encoder."""

    num_virtual_tokens: int = 20  # virtual tokens in front of every input
    encoder_hidden_size: int = 128  # width of the prompt encoder's MLP (hidden -> e -> e -> hidden)

    def __post_init__(self):
        positive_whole("num_virtual_tokens (the prompt length)", self.num_virtual_tokens, 20)
        positive_whole("encoder_hidden_size", self.encoder_hidden_size, 128)


def apply_ptuning(model, cfg: PtuningSpec):
    """Wrap ``model`` with a P-tuning prompt encoder; the base stays frozen."""
    from peft import PromptEncoderConfig, get_peft_model

    return get_peft_model(model, PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=cfg.num_virtual_tokens,
                                                     encoder_hidden_size=cfg.encoder_hidden_size,
                                                     encoder_reparameterization_type="MLP"))


register_method(
    "ptuning", config=PtuningSpec, apply=apply_ptuning,
    summary="P-tuning: a small MLP turns learned seeds into the soft prompt, which steadies prompt tuning",
    adds="an embedding table (num_virtual_tokens x hidden) and a 3-layer MLP that re-encodes it",
    stores="the seed table and the MLP (peft can also store just the encoded prompt)",
    trainable=(r"^prompt_encoder\.default\.(embedding\.weight|mlp_head\.\d+\.(weight|bias))$",),
    title="P-tuning", order=160, family="prompt_encoder", core=False,
    default_lr=1e-2,  # between prompt tuning's 3e-2 and the adapters: its MLP sits between the seeds and the prompt
    size_knob="num_virtual_tokens", takes_targets=False, mergeable=False, adds_latency=True,
    note="not mergeable: the virtual tokens lengthen every input at inference",
)
