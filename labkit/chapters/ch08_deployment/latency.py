"""Latency anatomy in process: prefill vs decode with the KV cache on and off, the roofline prediction of decode
speed from bytes per token over the memory bandwidth (measured by lk.meters.measure_copy_bandwidth_gbs), and the KV
cache's bytes per token.

>>> bw = lk.meters.measure_copy_bandwidth_gbs()  # doctest: +SKIP
>>> roofline_tokens_per_s(weight_bytes(model), bw)  # doctest: +SKIP
"""

from __future__ import annotations

import time

from ...core import LabkitError


def weight_bytes(model) -> int:
    """Bytes of the model's parameters (tied weights once): what a decode step reads for every new token."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def kv_bytes_per_token(config, dtype_bytes: int = 4) -> int:
    """Bytes the KV cache grows by per token: 2 (K and V) x layers x KV heads x head size x bytes per number."""
    if not isinstance(dtype_bytes, int) or dtype_bytes <= 0:
        raise LabkitError(f"dtype_bytes must be a positive whole number (4 for fp32, 2 for bf16), got {dtype_bytes!r}.")
    heads = getattr(config, "num_attention_heads", None)
    if heads is None or getattr(config, "num_hidden_layers", None) is None:
        raise LabkitError("This config has no num_hidden_layers / num_attention_heads: pass a decoder's model.config.")
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return 2 * config.num_hidden_layers * kv_heads * head_dim * dtype_bytes


def roofline_tokens_per_s(bytes_per_token: float, bandwidth_gbs: float) -> float:
    """Decode speed if every step only waits for memory: bandwidth / bytes read per token (batch 1)."""
    if not bytes_per_token > 0 or not bandwidth_gbs > 0:
        raise LabkitError(f"bytes_per_token and bandwidth_gbs must be positive, got {bytes_per_token!r} and "
                          f"{bandwidth_gbs!r}: measure them with weight_bytes(model) and lk.meters.measure_copy_bandwidth_gbs().")
    return bandwidth_gbs * 1e9 / bytes_per_token


def _generate_s(model, enc, new_tokens: int, use_cache: bool) -> float:
    import torch

    begin = time.perf_counter()
    with torch.no_grad():
        model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                       use_cache=use_cache, pad_token_id=enc["input_ids"][0, -1].item())
    return time.perf_counter() - begin


def anatomy(model, tokenizer, prompt: str, *, max_new_tokens: int = 16, use_cache: bool = True) -> dict:
    """Prefill time (generate 1 token) and decode time per token (the rest) of one greedy request, batch 1."""
    from ...batches import prompt_text

    if not isinstance(max_new_tokens, int) or max_new_tokens < 2:
        raise LabkitError(f"max_new_tokens must be a whole number >= 2 (one prefill, then decode), got {max_new_tokens!r}.")
    enc = tokenizer(prompt_text(tokenizer, prompt), return_tensors="pt", add_special_tokens=False)
    enc = enc.to(next(model.parameters()).device)
    _generate_s(model, enc, 2, use_cache)  # warm-up: first calls allocate
    prefill_s = _generate_s(model, enc, 1, use_cache)
    total_s = _generate_s(model, enc, max_new_tokens, use_cache)
    decode_s = max(total_s - prefill_s, 1e-9) / (max_new_tokens - 1)
    return {"use_cache": use_cache, "prompt_tokens": enc["input_ids"].shape[1], "new_tokens": max_new_tokens,
            "prefill_s": prefill_s, "decode_s_per_token": decode_s, "decode_tokens_per_s": 1 / decode_s,
            "total_s": total_s}


def anatomy_table(model, tokenizer, prompt: str, *, max_new_tokens: int = 16):
    """anatomy() with the KV cache on and off, side by side (a pandas DataFrame)."""
    import pandas as pd

    rows = [anatomy(model, tokenizer, prompt, max_new_tokens=max_new_tokens, use_cache=c) for c in (True, False)]
    return pd.DataFrame(rows).set_index("use_cache")
