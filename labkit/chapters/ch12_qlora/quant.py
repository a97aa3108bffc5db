"""Quantization up close: NF4, FP4 and int8 with bitsandbytes, their error, and the bits they really cost (the code
lives in ``labkit.quant``, shared with labs 05 and 08; its names are re-exported here).

Also the views Lab 12 needs around QLoRA: which tokens an SFT example trains on, a de-quantized base to merge
into, and how closely two models agree.

>>> from labkit.chapters.ch12_qlora import quant
>>> result = quant.quantize(model.model.layers[0].mlp.down_proj.weight, "nf4", double_quant=True)  # doctest: +SKIP
>>> result.bits_per_param  # doctest: +SKIP
4.127...
"""

from __future__ import annotations

from ...core import LabkitError
from ...quant import (  # noqa: F401  (moved to labkit.quant, shared with labs 05 and 08; re-exported for lab 12)
    KINDS,
    PAPER_BITS_PER_PARAM,
    Quantized,
    compare,
    error_sample,
    quant_table,
    quantize,
)
from ...units import IGNORE_INDEX


def label_view(tokenizer, instruction: str, answer: str, *, seq_len: int = 128):
    """The SFT example the training loop builds (labkit.batches), token by token: which tokens carry the loss.

    >>> label_view(tokenizer, "What is 2 + 3?", "5").query("trained")  # doctest: +SKIP
    """
    import pandas as pd

    from ...batches import tokenize

    example = tokenize([{"instruction": instruction, "answer": answer}], tokenizer, "sft", seq_len=seq_len)[0]
    return pd.DataFrame({"token": [tokenizer.decode([t]) for t in example["input_ids"]],
                         "input_id": example["input_ids"], "label": example["labels"],
                         "trained": [label != IGNORE_INDEX for label in example["labels"]]})


def dequantized_copy(model):
    """A float copy of a bitsandbytes-quantized model: every 4/8-bit layer rebuilt as nn.Linear (transformers).

    Merging a QLoRA adapter into this copy keeps the base weights the adapter was trained against.
    """
    import copy

    if not (getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)):
        raise LabkitError("dequantized_copy needs a model loaded with quantization='nf4' or 'int8'.")
    if hasattr(model, "peft_config"):
        raise LabkitError("Pass the quantized base model without an adapter: load a fresh one with "
                          "lk.load_model(name, quantization='nf4').")
    plain = copy.deepcopy(model).dequantize()
    plain.is_loaded_in_4bit = plain.is_loaded_in_8bit = False  # transformers leaves the flags set
    return plain


def compare_outputs(model_a, model_b, tokenizer, texts: list[str], *, seq_len: int = 128) -> dict:
    """How closely two models agree on the same inputs: max/mean logit difference and argmax-token agreement."""
    import torch

    if not texts:
        raise LabkitError("compare_outputs needs at least one text to run both models on.")
    enc = tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True, max_length=seq_len,
                    add_special_tokens=False)
    mask = enc["attention_mask"].bool()
    with torch.no_grad():
        a = model_a(**enc.to(next(model_a.parameters()).device)).logits.float().cpu()[mask]
        b = model_b(**enc.to(next(model_b.parameters()).device)).logits.float().cpu()[mask]
    diff = (a - b).abs()
    return {"tokens": int(mask.sum()), "max_abs_logit_diff": diff.max().item(),
            "mean_abs_logit_diff": diff.mean().item(), "logit_scale": a.abs().mean().item(),
            "greedy_agreement": (a.argmax(-1) == b.argmax(-1)).float().mean().item()}


def by_family(runs: dict, data):
    """Exact match per instruction family, one column per run: ``by_family({"before": em0, "after": em1}, test)``."""
    import pandas as pd

    columns = {}
    for name, em in runs.items():
        table = em.table
        if len(table) > len(data) or list(table["question"]) != list(data["instruction"][:len(table)]):
            raise LabkitError(f"The {name!r} scores were computed on other questions: pass the same test split "
                              "(and subset) that evaluate_exact_match was given.")
        families = pd.Series(list(data["family"][:len(table)]), name="family")
        columns[name] = table["correct"].astype(float).groupby(families).mean()
    frame = pd.DataFrame(columns)
    frame.loc["all"] = [float(runs[name].table["correct"].mean()) for name in runs]
    return frame
