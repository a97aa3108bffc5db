"""LoRA: frozen weights plus a trainable low-rank update B·A on chosen linear layers (through peft)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import LabkitError
from . import check_targets, linear_module_names, register_method


@dataclass
class LoraSpec:
    """Settings of a LoRA adapter."""

    rank: int = 8  # r: inner size of the update B·A; LoRA parameters grow linearly with it
    alpha: float = 16.0  # the update is scaled by alpha / rank
    dropout: float = 0.0  # dropout on the adapter's input during training
    target_modules: list[str] | str = "all-linear"  # layer names like ["q_proj", "v_proj"], or "all-linear"

    def __post_init__(self):
        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank <= 0:
            raise LabkitError(f"rank must be a positive whole number (try 8), got {self.rank!r}.")
        if self.alpha <= 0:
            raise LabkitError(f"alpha must be positive (a common choice is 2 * rank), got {self.alpha!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise LabkitError(f"dropout must be in [0, 1), got {self.dropout!r}.")
        if isinstance(self.target_modules, str) and self.target_modules != "all-linear":
            self.target_modules = [self.target_modules]
        if not isinstance(self.target_modules, str):
            self.target_modules = list(self.target_modules)
            if not self.target_modules:
                raise LabkitError("target_modules is empty: name at least one layer, e.g. ['q_proj', 'v_proj'].")


def check_rank(rank: int, layer: str, fan_in: int, fan_out: int) -> None:
    """Refuse a rank above min(fan_in, fan_out): B·A cannot have a higher rank than the layer it updates."""
    if rank > min(fan_in, fan_out):
        raise LabkitError(f"rank={rank} is larger than {layer} ({fan_in} -> {fan_out}) can use: pick a rank of at "
                          f"most {min(fan_in, fan_out)}.")


def check_model_ranks(model, cfg: LoraSpec) -> None:
    """Apply check_rank to every linear layer of ``model`` that ``cfg`` targets (the meters' rule, on real layers)."""
    import torch

    targets = set(linear_module_names(model) if cfg.target_modules == "all-linear" else cfg.target_modules)
    for full_name, module in model.named_modules():
        layer = full_name.rsplit(".", 1)[-1]
        if isinstance(module, torch.nn.Linear) and layer in targets:
            check_rank(cfg.rank, layer, module.in_features, module.out_features)


def lora_config(cfg: LoraSpec, *, use_dora: bool = False):
    """The peft LoraConfig for these settings."""
    from peft import LoraConfig

    return LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=cfg.target_modules,
                      use_dora=use_dora, bias="none", task_type="CAUSAL_LM")


def apply_lora(model, cfg: LoraSpec, *, use_dora: bool = False):
    """Wrap ``model`` with a LoRA (or DoRA) adapter; only the adapter is trainable."""
    from peft import get_peft_model

    check_targets(model, cfg.target_modules)
    check_model_ranks(model, cfg)
    return get_peft_model(model, lora_config(cfg, use_dora=use_dora))


register_method(
    "lora", config=LoraSpec, apply=apply_lora,
    summary="low-rank adaptation: W stays frozen, a trainable B·A (rank r) is added to chosen linear layers",
    adds="two small matrices A (r x in) and B (out x r) per target layer; B starts at zero so the model starts "
         "unchanged",
    stores="only A and B for every target layer (a few MB); can be merged into W for zero extra latency",
    trainable=(r"\.lora_[AB]\.default\.weight$",),
    title="LoRA", order=10, family="low_rank",
    default_lr=1e-3,  # tried on the intents task (SmolLM2-135M), 20-200 steps, in lab 01a's comparison
    size_knob="rank", takes_targets=True, mergeable=True, adds_latency=False,
    note="merges into W: no extra work at inference once merged",
)
