"""Real quantized kernels on the same model: torchao int8 weight-only and dynamic int8 (``quantize_``), bitsandbytes
NF4 and LLM.int8(). For each: model bytes predicted and measured (torch.save of the state dict), CPU latency per
generated token, and perplexity on the kit's corpus."""

from __future__ import annotations

import time

from ...core import LabkitError
from ...quant import PAPER_BITS_PER_PARAM, int8_copy, predict_int8_bytes, stored_bytes
from .rtn import perplexity

BACKENDS = ("float32", "torchao int8 weight-only", "torchao int8 dynamic", "bitsandbytes nf4", "bitsandbytes int8")


def predict_bytes(model, linear_bits: float, *, row_bytes: int = 0, skip=("lm_head",)) -> int:
    """Bytes of ``model`` with every Linear weight (except those named in ``skip``) at ``linear_bits`` per weight
    plus ``row_bytes`` per output row, everything else as stored now."""
    import torch

    total, seen = 0, set()
    for mname, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            quantized = (isinstance(module, torch.nn.Linear) and name == "weight" and linear_bits < 32
                         and mname.split(".")[-1] not in skip)
            if quantized:
                total += round(p.numel() * linear_bits / 8) + p.shape[0] * row_bytes
            elif id(p) not in seen:
                seen.add(id(p))
                total += p.numel() * p.element_size()
    return total


def latency_per_token(model, tokenizer, prompt: str, *, new_tokens: int = 16) -> float:
    """Seconds per generated token (greedy, KV cache on), after a one-token warm-up."""
    import torch

    if new_tokens < 2:
        raise LabkitError(f"new_tokens must be >= 2 to time decoding, got {new_tokens!r}.")
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    kw = {"do_sample": False, "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id}
    with torch.no_grad():
        model.generate(ids, max_new_tokens=1, **kw)
        start = time.perf_counter()
        model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
    return (time.perf_counter() - start) / new_tokens


def bnb_copy(model, kind: str = "nf4"):
    """``model`` re-loaded through transformers with a bitsandbytes config (NF4 + double quantization, or
    LLM.int8()), the way lk.load_model(name, quantization=...) loads a named model; works for any float model."""
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from ...models import bitsandbytes_works

    if kind not in ("nf4", "int8"):
        raise LabkitError(f"kind must be 'nf4' or 'int8', got {kind!r}.")
    if not bitsandbytes_works():
        raise LabkitError("bitsandbytes cannot quantize here: `pip install bitsandbytes` (>=0.45 runs on the CPU).")
    config = (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                 bnb_4bit_compute_dtype=torch.float32) if kind == "nf4"
              else BitsAndBytesConfig(load_in_8bit=True))  # the settings lk.load_model(name, quantization=kind) uses
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        return AutoModelForCausalLM.from_pretrained(folder, quantization_config=config, device_map="cpu").eval()


def build(name: str, model):
    """The float32 ``model`` quantized by one back-end (a copy; the float model is left alone)."""
    if name == "float32":
        return model
    if name == "torchao int8 weight-only":
        return int8_copy(model, "torchao", mode="weight_only")
    if name == "torchao int8 dynamic":
        return int8_copy(model, "torchao", mode="dynamic")
    if name in ("bitsandbytes nf4", "bitsandbytes int8"):
        return bnb_copy(model, name.split()[-1])
    raise LabkitError(f"Unknown back-end {name!r}: use one of {', '.join(BACKENDS)}.")


def predicted(name: str, model) -> int:
    """Bytes predicted for one back-end from the float model, before quantizing."""
    if name == "float32":
        return predict_bytes(model, 32, skip=())
    if name.startswith("torchao"):
        return predict_int8_bytes(model)
    if name == "bitsandbytes nf4":  # NF4 + double quantization (the kit loads it so): 4.127 bits per weight
        return predict_bytes(model, PAPER_BITS_PER_PARAM["nf4+dq"])
    return predict_bytes(model, 8, row_bytes=4)  # LLM.int8(): int8 weights and one fp32 scale per row


def compare_backends(model, tokenizer, data, *, backends=BACKENDS, prompt: str = "Incident report",
                     new_tokens: int = 16, seq_len: int = 128, progress: bool = True):
    """One row per back-end: predicted and measured MiB, seconds per token, perplexity (or the error it raised)."""
    import pandas as pd
    from tqdm.auto import tqdm

    rows = []
    for name in tqdm(backends, desc="back-ends", disable=not progress):
        row = {"backend": name, "predicted_mib": predicted(name, model) / 2**20}
        try:
            q = build(name, model)
            row.update(measured_mib=stored_bytes(q) / 2**20,
                       s_per_token=latency_per_token(q, tokenizer, prompt, new_tokens=new_tokens),
                       perplexity=perplexity(q, tokenizer, data, seq_len=seq_len), error="")
        except Exception as err:  # noqa: BLE001  (a back-end that cannot run here is shown with its error)
            row.update(measured_mib=float("nan"), s_per_token=float("nan"), perplexity=float("nan"),
                       error=f"{type(err).__name__}: {str(err).splitlines()[0][:200]}")
        rows.append(row)
    table = pd.DataFrame(rows).set_index("backend")
    table["size_error"] = table["measured_mib"] / table["predicted_mib"] - 1
    table["speed_vs_float32"] = table.loc["float32", "s_per_token"] / table["s_per_token"] \
        if "float32" in table.index else float("nan")
    return table
