"""PEFT Lab Kit: the shared helpers behind every lab notebook.

Importing ``labkit`` is cheap: heavy modules (torch, transformers, peft) load on first use.

>>> import labkit as lk
>>> lk.setup(seed=0)  # doctest: +SKIP
>>> model, tokenizer = lk.load_model("smollm2-135m")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import logging
import warnings

from .core import LabkitError, cache_dir, fast_mode, offline, pick, resolve_device

__version__ = "0.1.0"

# Library log messages that are expected and harmless here, hidden so that no lab shows red text that asks for no
# action (bitsandbytes' opened every set-up cell): {logger name: start of the message}. Installed on import, before
# any labkit path can import the library (a logger's filter holds for records logged later; nothing else is
# filtered). tests/test_quiet.py shows each one hidden, and shown without labkit.
_EXPECTED_LOG_MESSAGES = {
    # bitsandbytes 0.50 on a CPU with AVX512-BF16, at import: it tries the optional `kernels` package, which would
    # download a kernel from the hub; without it bitsandbytes falls back to its own CPU kernel, which the kit uses.
    "bitsandbytes.backends.cpu.ops": "Failed to load CPU gemm_4bit_forward from kernels-community",
    # bitsandbytes' int8 matmul on the CPU, for every layer on every call: its inputs are cast to fp16 as designed.
    "bitsandbytes.autograd._functions": "MatMul8bitLt: inputs will be cast",
    # transformers, each time lab 12 de-quantizes a 4-bit model (quant.dequantized_copy): it names the dtype asked for.
    "transformers.integrations.bitsandbytes": "The modules are dequantized in",
    # torchao 0.18 at import (transformers imports it whenever it is installed): its CUDA-only kernels (cutlass, mxfp8)
    # cannot load in a CPU build of torch; its CPU int8 paths, the ones labs 05 and 08 use, do not need them.
    "torchao": "Failed to load ",
    # torch 2.13, when torchao 0.18 registers its Enum options with pytree: a deprecation between the two libraries.
    "torch.utils._pytree": "<enum '",
    # DeepSpeed 0.19 (transformers imports it when it is installed, e.g. on save_pretrained) on a machine without a GPU:
    # it runs on its CPU accelerator, which is what lab 06 wants; there is nothing to do about it.
    "DeepSpeed": "Setting accelerator to CPU",
}


class _HideExpected(logging.Filter):
    """Drops one logger's records whose message starts with ``start``."""

    def __init__(self, start: str):
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


for _name, _start in _EXPECTED_LOG_MESSAGES.items():
    _logger = logging.getLogger(_name)
    if not any(getattr(f, "start", None) == _start for f in _logger.filters):  # once, even if labkit is reloaded
        _logger.addFilter(_HideExpected(_start))
del _name, _start, _logger

# Library warnings that are expected and harmless here, hidden for the same reason: (category, start of the message).
_EXPECTED_WARNINGS = [
    # peft 0.21 reads transformers 5.23's deprecated alias each time it wraps a model (PeftModel.__init__): a notice
    # between the two libraries that no learner can act on.
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
    # peft's LN tuning (the kit's "norm" method) asks each norm layer it wraps for a Linear layer's in/out features,
    # which norms do not have, so it warns about its own target type; the kit's tests show LN tuning train on them.
    (UserWarning, r"Unsupported layer type '<class '[\w.]+(RMSNorm|LayerNorm)'>' encountered"),
    # peft warns on every merge into a 4-bit layer that rounding may change generations; the kit measures that error
    # where it merges (lab 01a's merge_max_diff, lab 12's merged vs unmerged answers) instead of warning about it.
    (UserWarning, r"Merge lora module to 4-bit linear may get different generations"),
]
for _category, _start in _EXPECTED_WARNINGS:
    warnings.filterwarnings("ignore", message=_start, category=_category)  # adding the same filter again is a no-op
del _category, _start

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
    "load_raw_instructions": "data",
    "load_raw_intents": "data",
    "load_metric": "metrics",
    "train": "training",
    "TrainConfig": "training",
    "preflight": "validation",
}
_SUBMODULES = ("models", "doctor", "data", "metrics", "meters", "plots", "methods", "training", "widgets", "grading",
               "chapters", "notebooks", "fourbit", "units", "session", "validation", "ledger", "tracker", "quant")

__all__ = ["LabkitError", "cache_dir", "fast_mode", "offline", "pick", "resolve_device", "setup", "Session",  # noqa: RUF022
           "load_model", "MODEL_PRESETS", "train", "TrainConfig", "preflight", "get_method", "apply_method",
           "list_methods", "load_corpus", "load_intents", "load_instructions", "load_probe", "load_raw_instructions",
           "load_raw_intents", "load_metric", "models",
           "doctor", "data", "metrics", "meters", "plots", "methods", "training", "widgets", "grading", "chapters",
           "notebooks", "fourbit", "units", "session", "validation", "ledger", "tracker", "quant"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")
