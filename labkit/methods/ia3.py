"""(IA)^3: trainable vectors that rescale keys, values and MLP activations (through peft)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import LabkitError
from . import check_targets, register_method


@dataclass
class IA3Spec:
    """Settings of (IA)^3."""

    target_modules: list[str] = field(default_factory=lambda: ["k_proj", "v_proj", "down_proj"])  # rescaled layers
    feedforward_modules: list[str] = field(default_factory=lambda: ["down_proj"])  # of those, scaled on the input

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
)
