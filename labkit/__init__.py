"""PEFT Lab Kit: the shared helpers behind every lab notebook.

Importing ``labkit`` is cheap: heavy modules (torch, transformers, peft) load on first use.

>>> import labkit as lk
>>> lk.setup(seed=0)  # doctest: +SKIP
>>> model, tokenizer = lk.load_model("smollm2-135m")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

from .core import LabkitError, cache_dir, fast_mode, offline, pick, resolve_device

__version__ = "0.1.0"

# name -> module that defines it; loaded lazily on first attribute access.
_LAZY = {
    "setup": "session",
    "Session": "session",
    "load_model": "models",
    "MODEL_PRESETS": "models",
    "get_method": "methods",
    "apply_method": "methods",
    "list_methods": "methods",
    "load_corpus": "data",
    "load_intents": "data",
    "load_instructions": "data",
    "load_probe": "data",
    "load_metric": "metrics",
    "train": "training",
}
_SUBMODULES = ("models", "doctor", "data", "metrics", "meters", "plots", "methods", "training", "widgets", "grading",
               "chapters", "notebooks", "fourbit", "units", "session")

__all__ = ["LabkitError", "cache_dir", "fast_mode", "offline", "pick", "resolve_device", "setup", "Session",  # noqa: RUF022
           "load_model", "MODEL_PRESETS", "train", "get_method", "apply_method", "list_methods", "load_corpus",
           "load_intents", "load_instructions", "load_probe", "load_metric", "models", "doctor", "data", "metrics",
           "meters", "plots", "methods", "training", "widgets", "grading", "chapters", "notebooks", "fourbit", "units", "session"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")
