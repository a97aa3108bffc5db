"""Prompt tuning: trainable soft-prompt embeddings prepended to the input (through peft)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import LabkitError
from . import register_method


@dataclass
class PromptSpec:
    """Settings of prompt tuning."""

    num_virtual_tokens: int = 20  # soft-prompt length: embeddings prepended to every input
    init_text: str | None = None  # start from the embeddings of this text instead of random vectors

    def __post_init__(self):
        n = self.num_virtual_tokens
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            raise LabkitError(f"num_virtual_tokens (the prompt length) must be a positive whole number (try 20), "
                              f"got {n!r}.")
        if self.init_text is not None and not self.init_text.strip():
            raise LabkitError("init_text is empty: give a sentence describing the task, or None for random.")


def apply_prompt(model, cfg: PromptSpec):
    """Wrap ``model`` with a trainable soft prompt; the base stays frozen."""
    from peft import PromptTuningConfig, get_peft_model

    kwargs = {}
    if cfg.init_text is not None:
        path = getattr(model.config, "_name_or_path", None)
        kwargs = {"prompt_tuning_init": "TEXT", "prompt_tuning_init_text": cfg.init_text,
                  "tokenizer_name_or_path": path}
    peft_cfg = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=cfg.num_virtual_tokens, **kwargs)
    return get_peft_model(model, peft_cfg)


register_method(
    "prompt", config=PromptSpec, apply=apply_prompt,
    summary="prompt tuning (Lester et al. 2021): a few learned input embeddings in front of every example",
    adds="num_virtual_tokens x hidden trainable numbers at the input only",
    stores="the soft-prompt table only (the smallest of all methods)",
    trainable=(r"^prompt_encoder\.default\.embedding\.weight$",),
    title="prompt tuning", order=60, family="soft_prompt",
    default_lr=3e-2,  # tried on the intents task (SmolLM2-135M), 20-200 steps, in lab 01a's comparison
    size_knob="num_virtual_tokens", takes_targets=False, mergeable=False, adds_latency=True,
    note="not mergeable: the soft prompt lengthens every input at inference",
)
