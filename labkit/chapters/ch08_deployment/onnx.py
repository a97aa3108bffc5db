"""ONNX Runtime on the CPU against PyTorch: the served model exported to ONNX, checked for the same logits and timed on
the same prompts in the same run.

The issue asks for Optimum's exporter. Its ONNX exporter now lives in ``optimum-onnx``, and every release of it
(0.0.1 to 0.1.0) requires transformers < 4.58, while the kit runs transformers 5.x: pip refuses the install
(``ResolutionImpossible``, transformers==5.23.0 against optimum-onnx's transformers<4.58.0). The next best real tool
is the exporter Optimum itself builds on, ``torch.onnx.export`` (its dynamo path, with ``onnxscript``), and the same
ONNX Runtime session Optimum would run. What this exports is the model's forward pass (token ids to logits): the
prefill of a request. Optimum would also export a decoder that carries the KV cache, which generation needs.

>>> path = export_onnx(merged, tokenizer, lk.cache_dir() / "onnx" / "smollm2")  # doctest: +SKIP
>>> compare_onnx(merged, tokenizer, path, prompts)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from pathlib import Path

from ...core import LabkitError

ONNX_PINS = "onnx==1.23.2 onnxscript==0.7.2 onnxruntime==1.32.0"  # the versions this lab was checked with
OPTIMUM_REFUSAL = ("optimum-onnx (Optimum's ONNX exporter, 0.0.1-0.1.0) requires transformers<4.58; this kit runs "
                   "transformers 5.x, so pip refuses it (ResolutionImpossible)")


def _logits_module(model):
    """The model's forward pass as the exporter sees it: (input_ids, attention_mask) -> logits, no KV cache."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    return Logits(model)


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise LabkitError(f"The ONNX path needs {module}: run `pip install {ONNX_PINS}` (make setup installs them)."
                          ) from None


@contextlib.contextmanager
def _quiet():
    """The exporter prints its progress and warns about its own internals (shape renames, deprecations)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_onnx(model, tokenizer, folder) -> Path:
    """Export ``model``'s forward pass to ``folder/model.onnx`` (weights beside it as external data); return the path.

    Batch size and sequence length stay dynamic, so one export serves every prompt.
    """
    import torch

    if hasattr(model, "peft_config"):
        raise LabkitError("Export the merged model (lk.methods.merge_lora(model)), not one that still has adapters.")
    if not callable(tokenizer):
        raise LabkitError("tokenizer must be the model's tokenizer (the second value lk.load_model returns).")
    _require("onnxscript")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    sample = tokenizer(["an example prompt", "and a second, longer example prompt"], return_tensors="pt",
                       padding=True)
    dynamic = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}}
    model.eval()
    with _quiet(), torch.no_grad():
        torch.onnx.export(_logits_module(model), (sample["input_ids"], sample["attention_mask"]), str(path), dynamo=True,
                          input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_shapes=dynamic, external_data=True)
    return path


def _best_s(fn, repeats: int) -> float:
    fn()  # warm-up: first-call allocations and kernel choices are not timed
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def compare_onnx(model, tokenizer, path, prompts: list[str], *, repeats: int = 5) -> dict:
    """ONNX Runtime (CPU) against PyTorch on one batch of ``prompts``: the largest logit difference, how often the
    next-token choice agrees, and the best-of-``repeats`` prefill time of each, measured back to back."""
    import numpy as np
    import torch

    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise LabkitError("prompts must be a non-empty list of non-empty strings.")
    if not isinstance(repeats, int) or repeats < 1:
        raise LabkitError(f"repeats must be a whole number >= 1, got {repeats!r}.")
    path = Path(path)
    if not path.is_file():
        raise LabkitError(f"No ONNX model at {path}: export one first with export_onnx(model, tokenizer, folder).")
    ort = _require("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    feed = {"input_ids": batch["input_ids"].numpy(), "attention_mask": batch["attention_mask"].numpy()}
    model.eval()
    with torch.no_grad():
        reference = _logits_module(model)(batch["input_ids"], batch["attention_mask"]).float().numpy()
        torch_s = _best_s(lambda: model(**batch, use_cache=False), repeats)
    logits = session.run(None, feed)[0]
    ort_s = _best_s(lambda: session.run(None, feed), repeats)
    mask = feed["attention_mask"].astype(bool)  # padded positions are not compared
    return {
        "max_abs_logit_diff": float(np.abs(logits - reference)[mask].max()),
        "next_token_agreement": float((logits.argmax(-1) == reference.argmax(-1))[mask].mean()),
        "torch_prefill_s": torch_s, "onnxruntime_prefill_s": ort_s, "speedup": torch_s / ort_s,
        "tokens": int(mask.sum()), "onnx_mib": sum(f.stat().st_size for f in path.parent.iterdir()) / 2**20,
    }
