"""Fine-tuning methods: a registry that each method module fills, plus save, load and merge.

>>> import labkit as lk
>>> model, tokenizer = lk.load_model("tiny-llama")  # doctest: +SKIP
>>> model = lk.apply_method(model, "lora", rank=8, target_modules=["q_proj", "v_proj"])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..core import LabkitError


@dataclass(frozen=True)
class Method:
    """One registered fine-tuning method: its typed config, how to apply it and what it trains."""

    name: str  # the registry key, shared with meters.analytic_trainable_params
    config: type  # dataclass of the method's settings, validated in __post_init__
    apply: Callable  # apply(model, cfg) -> model with exactly the promised parameters trainable
    summary: str  # one line for learners
    adds: str  # what the method adds to (or changes in) the model
    stores: str  # what one task's checkpoint holds
    trainable: tuple[str, ...]  # regexes; a parameter is trainable after apply iff its name matches one

    def make_config(self, **cfg_kwargs):
        """Build and validate this method's config from keyword arguments."""
        names = [f.name for f in dataclasses.fields(self.config)]
        unknown = sorted(set(cfg_kwargs) - set(names))
        if unknown:
            raise LabkitError(f"{self.name!r} has no setting {', '.join(unknown)}: its settings are "
                              f"{', '.join(names) or '(none)'}.")
        return self.config(**cfg_kwargs)

    def promises(self, param_name: str) -> bool:
        """True when this method promises to train the parameter called ``param_name``."""
        return any(re.search(pattern, param_name) for pattern in self.trainable)

    def describe(self) -> str:
        """A short paragraph: what the method is, what it adds, what it stores per task."""
        return f"{self.name}: {self.summary}\n  adds: {self.adds}\n  stores per task: {self.stores}"


_REGISTRY: dict[str, Method] = {}


def register_method(name: str, *, config: type, apply: Callable, summary: str, adds: str, stores: str,
                    trainable: tuple[str, ...]) -> Method:
    """Add a method to the registry; a second method with the same name is refused."""
    if name in _REGISTRY:
        raise LabkitError(f"A method called {name!r} is already registered: pick another name.")
    if not dataclasses.is_dataclass(config):
        raise LabkitError(f"The config of {name!r} must be a dataclass, got {config!r}.")
    method = Method(name, config, apply, summary, adds, stores, tuple(trainable))
    _REGISTRY[name] = method
    return method


def list_methods() -> list[str]:
    """Names of the registered methods, in registration order."""
    return list(_REGISTRY)


def get_method(name: str) -> Method:
    """The registered method called ``name``."""
    if name not in _REGISTRY:
        raise LabkitError(f"Unknown method {name!r}: use one of {', '.join(_REGISTRY)}.")
    return _REGISTRY[name]


def applied_method(model) -> tuple[str, dict] | None:
    """(name, settings) of the method applied to ``model`` through apply_method, or None."""
    return getattr(model, "labkit_method", None)


def apply_method(model, name: str, *, seed: int | None = 0, **cfg_kwargs):
    """Apply a registered method; only the parameters the method promises stay trainable.

    New weights (e.g. LoRA's A) are drawn with ``seed`` so that runs repeat; ``seed=None`` uses the global RNG.

    >>> model = apply_method(model, "lora", rank=8, alpha=16)  # doctest: +SKIP
    """
    import torch

    method = get_method(name)
    cfg = method.make_config(**cfg_kwargs)
    if applied_method(model) is not None or hasattr(model, "peft_config"):
        raise LabkitError("This model already has a fine-tuning method applied: load a fresh model with "
                          "lk.load_model(...) before applying another one.")
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        model = method.apply(model, cfg)
    model.labkit_method = (name, dataclasses.asdict(cfg))
    return model


def trainable_names(model) -> set[str]:
    """Names of the parameters that will receive gradients."""
    return {n for n, p in model.named_parameters() if p.requires_grad}


def linear_module_names(model) -> list[str]:
    """Short names of the linear layers a method can target (lm_head and classifier heads excluded)."""
    import torch

    names = {full.rsplit(".", 1)[-1] for full, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and full}
    return sorted(names - {"lm_head", "score", "head", "classifier"})


def check_targets(model, target_modules, allow_all_linear: bool = True) -> None:
    """Refuse target module names the model does not have, listing the ones it does."""
    if target_modules == "all-linear" and allow_all_linear:
        return
    available = linear_module_names(model)
    missing = [t for t in target_modules if t not in available]
    if missing:
        extra = " or 'all-linear'" if allow_all_linear else ""
        raise LabkitError(f"target_modules {missing} are not in this model: choose from {available}{extra}.")


def freeze(model) -> None:
    """Make every parameter of ``model`` frozen."""
    for p in model.parameters():
        p.requires_grad_(False)


# Each method module registers itself on import; this order is the order learners see.
METHOD_MODULES = ("full", "lora", "dora", "qlora", "adapter", "prefix", "prompt", "ia3", "bitfit", "norm",
                  "linear_probe")
for _module in METHOD_MODULES:
    importlib.import_module(f".{_module}", __name__)

from .saving import load_trainable, merge_lora, save_trainable

__all__ = ["Method", "applied_method", "apply_method", "get_method", "linear_module_names", "list_methods",
           "load_trainable", "merge_lora", "register_method", "save_trainable", "trainable_names"]
