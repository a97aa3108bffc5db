"""Smaller and faster: int8 dynamic quantization (torchao, or torch.ao where torchao is not installed) of the served model against fp32, in the same run:
decode speed, stored bytes and exact match on the kit's task.

>>> table = compare_int8(merged, tokenizer, "What is 12 plus 7?", test_data, limit=8)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings

from ...core import LabkitError
from .latency import anatomy

TORCHAO_PIN = "torchao==0.18.0"  # the version this lab was checked with (CPU wheel, torch 2.13)


@contextlib.contextmanager
def _quiet_torchao():
    """torchao logs at import that its CUDA-only kernels (cutlass, sm90) cannot load on a CPU: expected here."""
    loggers = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def int8_backend() -> str:
    """'torchao' when it is installed (the issue's library), else 'torch.ao' (PyTorch's built-in int8 dynamic
    quantization, torchao's predecessor: the same scheme of int8 weights and int8 activations quantized per call)."""
    import importlib.util

    return "torchao" if importlib.util.find_spec("torchao") is not None else "torch.ao"


def int8_copy(model, backend: str | None = None):
    """A copy of ``model`` with every Linear layer in int8 weights and dynamically quantized int8 activations."""
    import torch

    backend = backend or int8_backend()
    if backend not in ("torchao", "torch.ao"):
        raise LabkitError(f"backend must be 'torchao' or 'torch.ao' (or None to pick), got {backend!r}.")
    if hasattr(model, "peft_config"):
        raise LabkitError("Quantize the merged model (lk.methods.merge_lora(model)), not one that still has adapters.")
    quantized = copy.deepcopy(model).eval()
    if backend == "torch.ao":
        with warnings.catch_warnings():
            # torch 2.13 warns that its own int8 tensors are deprecated in favour of torchao, which this branch lacks
            warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor", category=UserWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.ao.quantization.quantize_dynamic(quantized, {torch.nn.Linear}, dtype=torch.qint8)
    try:
        with _quiet_torchao():
            from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError:
        raise LabkitError(f"backend='torchao' needs torchao: run `pip install {TORCHAO_PIN}`.") from None
    with _quiet_torchao():
        quantize_(quantized, Int8DynamicActivationInt8WeightConfig())
    return quantized


def stored_bytes(model) -> int:
    """Bytes of the model's state dict as torch.save writes it (quantized tensors at their packed size)."""
    import torch

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def compare_int8(model, tokenizer, prompt: str, data, *, quantized=None, limit: int = 8, max_new_tokens: int = 16):
    """fp32 against torchao int8 on one prompt (decode speed) and ``limit`` questions of ``data`` (exact match)."""
    import pandas as pd

    from ...training import evaluate_exact_match

    if not isinstance(limit, int) or limit < 1:
        raise LabkitError(f"limit must be a whole number >= 1 (questions to score), got {limit!r}.")
    quantized = quantized if quantized is not None else int8_copy(model)
    rows, answers = [], {}
    names = ("fp32", f"int8 ({int8_backend()})")
    for name, m in zip(names, (model, quantized)):
        timing = anatomy(m, tokenizer, prompt, max_new_tokens=max_new_tokens)
        em = evaluate_exact_match(m, tokenizer, data, limit=limit, max_new_tokens=max_new_tokens)
        answers[name] = list(em.table["prediction"])
        rows.append({"model": name, "stored_mib": stored_bytes(m) / 2**20, "prefill_s": timing["prefill_s"],
                     "decode_tokens_per_s": timing["decode_tokens_per_s"], "exact_match": em.score})
    table = pd.DataFrame(rows).set_index("model")
    same = sum(a == b for a, b in zip(answers[names[0]], answers[names[1]]))
    table["answers_same_as_fp32"] = [len(answers[names[0]]), same]
    return table
