"""LoRA: frozen weights plus a trainable low-rank update B·A on chosen linear layers (through peft)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from ..core import LabkitError
from . import check_targets, linear_module_names, register_method

# init -> peft's init_lora_weights: B = 0 with Kaiming A (default), Gaussian A, PiSSA (principal singular vectors,
# Meng et al. 2024; "pissa_niter_N" is its fast randomized SVD), OLoRA (QR of W, Büyükakyüz 2024), orthogonal A.
INITS = {"default": True, "gaussian": "gaussian", "pissa": "pissa", "olora": "olora", "orthogonal": "orthogonal"}


@dataclass
class LoraSpec:
    """Settings of a LoRA adapter."""

    rank: int = 8  # r: inner size of the update B·A; LoRA parameters grow linearly with it
    alpha: float = 16.0  # the update is scaled by alpha / rank
    dropout: float = 0.0  # dropout on the adapter's input during training
    target_modules: list[str] | str = "all-linear"  # layer names like ["q_proj", "v_proj"], or "all-linear"
    use_rslora: bool = False  # rsLoRA (Kalajdzievski 2023): scale by alpha / sqrt(rank) instead of alpha / rank
    init: str = "default"  # how A and B start: a key of INITS, or "pissa_niter_N" (PiSSA with a fast SVD)
    rank_pattern: dict | None = None  # per-layer ranks, e.g. {"layers.0.self_attn.q_proj": 16} (peft's regex keys)
    alpha_pattern: dict | None = None  # per-layer alphas, the same keys
    layers: list[int] | None = None  # adapt only these decoder layers (peft layers_to_transform); None: all
    loraplus_ratio: float | None = None  # LoRA+ (Hayou et al. 2024): B learns this many times faster than A; None: off

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
        if self.init not in INITS and not re.fullmatch(r"pissa_niter_[1-9]\d*", self.init):
            raise LabkitError(f"Unknown init {self.init!r}: peft knows {', '.join(INITS)} and 'pissa_niter_N' "
                              "(PiSSA with N subspace iterations, e.g. 'pissa_niter_4').")
        if self.loraplus_ratio is not None and not self.loraplus_ratio > 0:
            raise LabkitError(f"loraplus_ratio (B's learning rate over A's) must be positive; LoRA+ suggests 16, and "
                              f"None turns LoRA+ off. Got {self.loraplus_ratio!r}.")
        for name in ("rank_pattern", "alpha_pattern"):
            pattern = getattr(self, name) or {}
            bad = {k: v for k, v in pattern.items() if not isinstance(k, str) or isinstance(v, bool)
                   or not isinstance(v, (int, float)) or v <= 0 or (name == "rank_pattern" and not isinstance(v, int))}
            if bad:
                raise LabkitError(f"{name} maps layer names to positive {'whole numbers' if name == 'rank_pattern' else 'numbers'}"
                                  f", e.g. {{'layers.0.self_attn.q_proj': 16}}; these entries are not: {bad}.")
        if self.layers is not None:
            self.layers = list(self.layers)
            if not self.layers or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in self.layers):
                raise LabkitError(f"layers must be a non-empty list of layer numbers from 0 (or None for every layer), "
                                  f"got {self.layers!r}.")


def check_rank(rank: int, layer: str, fan_in: int, fan_out: int) -> None:
    """Refuse a rank above min(fan_in, fan_out): B·A cannot have a higher rank than the layer it updates."""
    if rank > min(fan_in, fan_out):
        raise LabkitError(f"rank={rank} is larger than {layer} ({fan_in} -> {fan_out}) can use: pick a rank of at "
                          f"most {min(fan_in, fan_out)}.")


def pattern_value(pattern: dict | None, full_name: str, default):
    """The value ``pattern`` gives the layer called ``full_name`` (peft's rule: a key matches the name's end)."""
    for key, value in (pattern or {}).items():
        if re.match(rf"(.*\.)?({key})$", full_name):
            return value
    return default


def check_model_ranks(model, cfg: LoraSpec) -> None:
    """Apply check_rank to every linear layer of ``model`` that ``cfg`` targets (the meters' rule, on real layers)."""
    import torch

    targets = set(linear_module_names(model) if cfg.target_modules == "all-linear" else cfg.target_modules)
    num_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if cfg.layers is not None and num_layers is not None and max(cfg.layers) >= num_layers:
        raise LabkitError(f"layers {cfg.layers} name a layer this model does not have: it has layers 0 to "
                          f"{num_layers - 1}.")
    for full_name, module in model.named_modules():
        layer = full_name.rsplit(".", 1)[-1]
        if isinstance(module, torch.nn.Linear) and layer in targets:
            rank = pattern_value(getattr(cfg, "rank_pattern", None), full_name, cfg.rank)
            check_rank(rank, layer, module.in_features, module.out_features)


def lora_config(cfg: LoraSpec, *, use_dora: bool = False):
    """The peft LoraConfig for these settings."""
    from peft import LoraConfig

    extra = {}  # only what differs from peft's defaults, so that plain LoRA builds the very same LoraConfig
    if cfg.use_rslora:
        extra["use_rslora"] = True
    if cfg.init != "default":
        extra["init_lora_weights"] = INITS.get(cfg.init, cfg.init)
    if cfg.rank_pattern:
        extra["rank_pattern"] = dict(cfg.rank_pattern)
    if cfg.alpha_pattern:
        extra["alpha_pattern"] = dict(cfg.alpha_pattern)
    if cfg.layers is not None:
        extra["layers_to_transform"] = list(cfg.layers)
    return LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=cfg.target_modules,
                      use_dora=use_dora, bias="none", task_type="CAUSAL_LM", **extra)


def apply_lora(model, cfg: LoraSpec, *, use_dora: bool = False):
    """Wrap ``model`` with a LoRA (or DoRA) adapter; only the adapter is trainable."""
    from peft import get_peft_model

    check_targets(model, cfg.target_modules)
    check_model_ranks(model, cfg)
    if cfg.layers is not None and cfg.target_modules == "all-linear":  # peft takes chosen layers with named targets
        cfg = dataclasses.replace(cfg, target_modules=linear_module_names(model))
    return get_peft_model(model, lora_config(cfg, use_dora=use_dora))


def loraplus_optimizer(model, cfg: LoraSpec, name: str, lr: float, weight_decay: float):
    """LoRA+'s optimizer (peft.optimizers.create_loraplus_optimizer) when cfg.loraplus_ratio is set, else None."""
    if cfg.loraplus_ratio is None:
        return None
    import torch
    from peft.optimizers import create_loraplus_optimizer

    classes = {"adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    if name not in classes:
        raise LabkitError(f"LoRA+ runs here with optimizer 'adamw' or 'sgd', not {name!r}: pick one of those, or "
                          "set loraplus_ratio=None.")
    opt = create_loraplus_optimizer(model, classes[name], lr=lr, loraplus_lr_ratio=cfg.loraplus_ratio,
                                    weight_decay=weight_decay)
    return opt, name


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
    make_optimizer=loraplus_optimizer,
)


def normalise_targets(target_modules, *, allow_all_linear: bool = True):
    """A list of layer names (or "all-linear"); one name becomes a list; an empty list is refused."""
    if isinstance(target_modules, str):
        return target_modules if target_modules == "all-linear" and allow_all_linear else [target_modules]
    target_modules = list(target_modules)
    if not target_modules:
        raise LabkitError("target_modules is empty: name at least one layer, e.g. ['q_proj', 'v_proj'].")
    return target_modules


def positive_whole(name: str, value, example) -> None:
    """Refuse ``value`` unless it is a whole number > 0, naming the setting and a value to try."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise LabkitError(f"{name} must be a positive whole number (try {example}), got {value!r}.")
