"""Prefix tuning: trainable key/value vectors prepended at every layer (through peft)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import LabkitError
from . import register_method


@dataclass
class PrefixSpec:
    """Settings of prefix tuning."""

    num_virtual_tokens: int = 20  # prefix length: key/value pairs added in front at every layer

    def __post_init__(self):
        n = self.num_virtual_tokens
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            raise LabkitError(f"num_virtual_tokens (the prefix length) must be a positive whole number (try 20), "
                              f"got {n!r}.")


def apply_prefix(model, cfg: PrefixSpec):
    """Wrap ``model`` with trainable prefixes; the base stays frozen."""
    from peft import PrefixTuningConfig, get_peft_model

    return get_peft_model(model, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=cfg.num_virtual_tokens))


register_method(
    "prefix", config=PrefixSpec, apply=apply_prefix,
    summary="prefix tuning (Li & Liang 2021): learned keys and values that every layer's attention can attend to",
    adds="num_virtual_tokens x layers x 2 (key, value) x kv_heads x head_dim trainable numbers; the prefix uses up "
         "part of the context window",
    stores="the prefix table only",
    trainable=(r"^prompt_encoder\.default\.embedding\.weight$",),
    title="prefix tuning", order=50, family="kv_prefix",
    default_lr=1e-2,  # tried on the intents task (SmolLM2-135M), 20-200 steps, in lab 01a's comparison
    size_knob="num_virtual_tokens", takes_targets=False, mergeable=False, adds_latency=True,
    note="not mergeable: every layer attends to the prefix at every inference",
)
