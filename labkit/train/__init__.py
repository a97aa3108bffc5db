"""The training loop (``train``) and evaluation helpers.

``lk.train(...)`` works whether ``lk.train`` resolves to this function or to this module: Python binds a
submodule to its package's attribute once it is imported, so the module is made callable as well.
"""

from __future__ import annotations

import sys
import types

from .evaluate import ExactMatch, evaluate_exact_match, evaluate_loss, generate_answers
from .loop import TrainResult, train


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["ExactMatch", "TrainResult", "evaluate_exact_match", "evaluate_loss", "generate_answers", "train"]
