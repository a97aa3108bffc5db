"""Smaller and faster: int8 dynamic quantization (torchao, or torch.ao where torchao is not installed) of the served model against fp32, in the same run:
decode speed, stored bytes and exact match on the kit's task.

>>> table = compare_int8(merged, tokenizer, "What is 12 plus 7?", test_data, limit=8)  # doctest: +SKIP
"""

from __future__ import annotations

from ...core import LabkitError
from ...quant import (  # noqa: F401  (moved to labkit.quant, shared with lab 05; re-exported for lab 08)
    TORCHAO_PIN,
    int8_backend,
    int8_copy,
    stored_bytes,
)
from .latency import anatomy


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
