"""(IA)^3: trainable vectors that rescale keys, values and MLP activations (through peft)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import LabkitError
from . import check_targets, register_method

TARGETS = ("k_proj", "v_proj", "down_proj")  # peft's (IA)^3 defaults for Llama/Mistral
FEEDFORWARD = ("down_proj",)  # of those, the feed-forward layers (scaled on their input)

@dataclass
class IA3Spec:
    """Settings of (IA)^3."""

    target_modules: list[str] | str = field(default_factory=lambda: list(TARGETS))  # rescaled layers: a name or a list
    feedforward_modules: list[str] | str = field(default_factory=lambda: list(FEEDFORWARD))  # of those, scaled on input

    def __post_init__(self):
        self.target_modules = [self.target_modules] if isinstance(self.target_modules, str) else \
            list(self.target_modules)
        self.feedforward_modules = [self.feedforward_modules] if isinstance(self.feedforward_modules, str) else \
            list(self.feedforward_modules)
        if not self.target_modules:
            raise LabkitError("target_modules is empty: name at least one layer, e.g. ['k_proj', 'v_proj'].")
        stray = [m for m in self.feedforward_modules if m not in self.target_modules]
        if stray:
            raise LabkitError(f"feedforward_modules {stray} must also be in target_modules {self.target_modules}.")


def apply_ia3(model, cfg: IA3Spec):
    """Wrap ``model`` with (IA)^3 scaling vectors; the base stays frozen."""
    from peft import IA3Config, get_peft_model

    check_targets(model, cfg.target_modules, allow_all_linear=False)
    return get_peft_model(model, IA3Config(task_type="CAUSAL_LM", target_modules=cfg.target_modules,
                                           feedforward_modules=cfg.feedforward_modules))


register_method(
    "ia3", config=IA3Spec, apply=apply_ia3,
    summary="(IA)^3 (Liu et al. 2022): learned vectors that rescale keys, values and feed-forward activations",
    adds="one vector per target layer (its output size; input size for feed-forward layers), starting at ones",
    stores="the scaling vectors only; they can be merged into the weights",
    trainable=(r"\.ia3_l\.default$",),
    title="(IA)^3", order=70, family="scaling",
    default_lr=1e-2,  # tried on the intents task (SmolLM2-135M), 20-200 steps, in lab 01a's comparison
    size_knob=None, takes_targets=True, mergeable=True, adds_latency=False,
    note="the scaling vectors fold into the weights when merged",
)
