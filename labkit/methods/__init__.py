"""Fine-tuning methods: a registry that each method module fills, plus save, load and merge.

>>> import labkit as lk
>>> model, tokenizer = lk.load_model("tiny-llama")  # doctest: +SKIP
>>> model = lk.apply_method(model, "lora", rank=8, target_modules=["q_proj", "v_proj"])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass

from ..core import LabkitError

# What a method trains, in the words the meters' formulas are keyed by; several methods can share one.
FAMILIES = {
    "all_weights": "every weight of the model",
    "low_rank": "a low-rank update B·A on chosen linear layers",
    "low_rank_magnitude": "a low-rank update of each weight's direction plus a magnitude per output feature",
    "bottleneck": "small residual MLPs inserted after chosen blocks",
    "kv_prefix": "learned keys and values in front of every layer's attention",
    "soft_prompt": "learned embeddings in front of the input",
    "scaling": "vectors that rescale chosen layers' activations",
    "biases": "the model's own bias vectors",
    "norm_weights": "the model's own normalisation weights",
    "head": "a new classification head on the frozen model",
    "low_rank_adaptive": "an SVD-shaped update P·Λ·Q whose rank budget is moved between layers while training",
    "shared_projection": "two frozen random matrices shared by all layers, scaled by trainable vectors per layer",
    "hadamard": "the Hadamard (element-wise) product of two low-rank updates on chosen linear layers",
    "kronecker": "a Kronecker product of two small factors on chosen linear layers",
    "orthogonal": "a block-diagonal orthogonal rotation of chosen linear layers' inputs",
    "prompt_encoder": "learned input embeddings produced by a small trainable MLP (P-tuning)",
}


@dataclass(frozen=True)
class Method:
    """One registered fine-tuning method: its typed config, how to apply it, what it trains and its facts."""

    name: str  # the registry key, shared with meters.analytic_trainable_params
    config: type  # dataclass of the method's settings, validated in __post_init__
    apply: Callable  # apply(model, cfg) -> model with exactly the promised parameters trainable
    summary: str  # one line for learners
    adds: str  # what the method adds to (or changes in) the model
    stores: str  # what one task's checkpoint holds
    trainable: tuple[str, ...]  # regexes; a parameter is trainable after apply iff its name matches one
    title: str  # its name in prose, e.g. "LoRA"
    order: int  # position in list_methods(): the order learners see (smaller first)
    family: str  # what it trains (a key of FAMILIES); the meters' formulas are keyed by it
    default_lr: float  # learning rate that moves it within a short budget on the kit's model (its module says how)
    size_knob: str | None  # the config field that sets its size ("rank", "bottleneck", ...), or None
    takes_targets: bool  # whether the learner picks the linear layers it adapts (a target_modules setting)
    mergeable: bool  # whether its update folds into the base weights (merge_lora), leaving a plain model
    adds_latency: bool  # whether it adds work at every inference, after merging where it can merge
    note: str  # one line about merging and inference, shown in comparisons
    analogue: str | None = None  # the method to use where this one does not apply (bitfit -> norm), or None
    base_quantization: str | None = None  # the quantization its base model must have ("nf4" for QLoRA), or None
    core: bool = True  # one of section 1.1's families: listed by list_methods() (lab 01a, the method explorer)
    make_optimizer: Callable | None = None  # (model, cfg, optimizer, lr, weight_decay) -> optimizer or None (LoRA+)
    after_step: Callable | None = None  # (model, cfg, step, num_steps) after each optimizer step (AdaLoRA's budget)

    def make_config(self, **cfg_kwargs):
        """Build and validate this method's config from keyword arguments (each checked against its field's type)."""
        names = [f.name for f in dataclasses.fields(self.config)]
        unknown = sorted(set(cfg_kwargs) - set(names))
        if unknown:
            raise LabkitError(f"{self.name!r} has no setting {', '.join(unknown)}: its settings are "
                              f"{', '.join(names) or '(none)'}.")
        hints = typing.get_type_hints(self.config)
        for key, value in cfg_kwargs.items():
            if not _matches(value, hints[key]):
                default = self._default(key)
                example = "" if default is dataclasses.MISSING else f", like the default {key}={default!r}"
                raise LabkitError(f"The {self.name} setting {key} must be {_describe(hints[key])}{example}; "
                                  f"got {value!r}.")
        return self.config(**cfg_kwargs)

    def default(self, setting: str):
        """The default value of one of this method's settings.

        >>> get_method("lora").default("rank")
        8
        """
        value = self._default(setting)
        if value is dataclasses.MISSING:
            raise LabkitError(f"{self.name!r} has no default for {setting!r}: give it explicitly.")
        return value

    def _default(self, setting: str):
        for f in dataclasses.fields(self.config):
            if f.name == setting:
                return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        return dataclasses.MISSING

    def promises(self, param_name: str) -> bool:
        """True when this method promises to train the parameter called ``param_name``."""
        return any(re.search(pattern, param_name) for pattern in self.trainable)

    def describe(self) -> str:
        """A short paragraph: what the method is, what it adds, what it stores per task."""
        return f"{self.name}: {self.summary}\n  adds: {self.adds}\n  stores per task: {self.stores}"


def _matches(value, hint) -> bool:
    """True when ``value`` has the type a config field is annotated with (a tuple passes for a list)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if typing.get_origin(hint) is list:
        return isinstance(value, (list, tuple))
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):  # a whole number is a fine float; True is not a number
        return isinstance(value, int if hint is int else (int, float)) and not isinstance(value, bool)
    return not isinstance(hint, type) or isinstance(value, hint)


def _describe(hint) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(hint))
    words = {int: "a whole number", float: "a number", bool: "True or False", str: "a string", type(None): "None"}
    return "a list" if typing.get_origin(hint) is list else words.get(hint, getattr(hint, "__name__", str(hint)))


_REGISTRY: dict[str, Method] = {}


def register_method(name: str, *, config: type, apply: Callable, summary: str, adds: str, stores: str,
                    trainable: tuple[str, ...], title: str, order: int, family: str, default_lr: float,
                    size_knob: str | None, takes_targets: bool, mergeable: bool, adds_latency: bool, note: str,
                    analogue: str | None = None, base_quantization: str | None = None, core: bool = True,
                    make_optimizer: Callable | None = None, after_step: Callable | None = None) -> Method:
    """Add a method and its facts to the registry; a second method with the same name is refused.

    The facts are what the rest of the kit reads instead of keeping tables of its own: ``default_lr``,
    ``size_knob`` (a config field), ``takes_targets``, ``mergeable``, ``adds_latency``, ``note`` (merging and
    inference), ``analogue``, ``family`` (what it trains, for the meters), ``base_quantization``, ``title``, ``order``,
    ``core`` (False for chapter 3's variants, which list_methods() leaves out unless asked), and the two training
    hooks lk.train calls: ``make_optimizer`` (LoRA+) and ``after_step`` (AdaLoRA).
    """
    if name in _REGISTRY:
        raise LabkitError(f"A method called {name!r} is already registered: pick another name.")
    if not dataclasses.is_dataclass(config):
        raise LabkitError(f"The config of {name!r} must be a dataclass, got {config!r}.")
    fields = [f.name for f in dataclasses.fields(config)]
    if size_knob is not None and size_knob not in fields:
        raise LabkitError(f"size_knob {size_knob!r} of {name!r} is not a setting of its config: use one of "
                          f"{', '.join(fields) or '(none)'}, or None.")
    if takes_targets != ("target_modules" in fields):
        raise LabkitError(f"takes_targets of {name!r} must be True exactly when its config has target_modules.")
    if family not in FAMILIES:
        raise LabkitError(f"Unknown family {family!r} for {name!r}: use one of {', '.join(FAMILIES)}.")
    if isinstance(default_lr, bool) or not isinstance(default_lr, (int, float)) or not default_lr > 0:
        raise LabkitError(f"default_lr of {name!r} must be a positive number, got {default_lr!r}.")
    if mergeable and adds_latency:
        raise LabkitError(f"{name!r} cannot be both mergeable and add latency: once merged it runs as the base.")
    method = Method(name=name, config=config, apply=apply, summary=summary, adds=adds, stores=stores,
                    trainable=tuple(trainable), title=title, order=order, family=family, default_lr=float(default_lr),
                    size_knob=size_knob, takes_targets=takes_targets, mergeable=mergeable, adds_latency=adds_latency,
                    note=note, analogue=analogue, base_quantization=base_quantization, core=core,
                    make_optimizer=make_optimizer, after_step=after_step)
    _REGISTRY[name] = method
    return method


def list_methods(core_only: bool = True) -> list[str]:
    """Names of the registered methods, in the order learners see (each method's ``order``).

    ``core_only=True`` lists section 1.1's families (what lab 01a compares and the method explorer offers);
    ``core_only=False`` adds chapter 3's LoRA variants and rivals (VeRA, LoHa, LoKr, OFT, AdaLoRA, P-tuning).

    >>> len(list_methods(core_only=False)) >= 17
    True
    """
    names = [n for n in _REGISTRY if _REGISTRY[n].core or not core_only]
    return sorted(names, key=lambda name: (_REGISTRY[name].order, name))


def get_method(name: str) -> Method:
    """The registered method called ``name``.

    >>> get_method("lora").default_lr
    0.001
    """
    if name not in _REGISTRY:
        raise LabkitError(f"Unknown method {name!r}: use one of {', '.join(list_methods(core_only=False))}.")
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


class TrainingHooks:
    """What lk.train asks of the applied method: an optimizer of its own (LoRA+) and a call after each step."""

    def __init__(self, model, num_steps: int):
        applied = applied_method(model)
        self.model, self.num_steps = model, num_steps
        method = get_method(applied[0]) if applied is not None else None
        hooked = method is not None and (method.make_optimizer or method.after_step) is not None
        self.method = method if hooked else None  # None: lk.train runs as it does for every other method
        self.cfg = method.make_config(**applied[1]) if hooked else None

    def __bool__(self) -> bool:
        return self.method is not None

    def optimizer(self, name: str, lr: float, weight_decay: float):
        """The method's own optimizer, or None for lk.train's usual one."""
        make = self.method.make_optimizer if self.method is not None else None
        return None if make is None else make(self.model, self.cfg, name, lr, weight_decay)

    def step_done(self, step: int) -> None:
        """Call after each optimizer step, before the gradients are cleared."""
        if self.method is not None and self.method.after_step is not None:
            self.method.after_step(self.model, self.cfg, step, self.num_steps)


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


def discover_methods() -> list[str]:
    """Import every module of this package and return their names; each method module registers itself on import."""
    found = [info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")]
    for module in found:
        importlib.import_module(f".{module}", __name__)
    return found


discover_methods()

from .saving import load_trainable, merge_lora, save_trainable

__all__ = ["FAMILIES", "Method", "TrainingHooks", "applied_method", "apply_method", "discover_methods", "get_method",
           "linear_module_names", "list_methods", "load_trainable", "merge_lora", "register_method", "save_trainable",
           "trainable_names"]
