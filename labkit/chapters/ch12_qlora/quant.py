"""Quantization up close: NF4, FP4 and int8 with bitsandbytes, their error, and the bits they really cost.

Also the views Lab 12 needs around QLoRA: which tokens an SFT example trains on, a de-quantized base to merge
into, and how closely two models agree.

>>> from labkit import quant
>>> result = quant.quantize(model.model.layers[0].mlp.down_proj.weight, "nf4", double_quant=True)  # doctest: +SKIP
>>> result.bits_per_param  # doctest: +SKIP
4.127...
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core import LabkitError
from ...units import IGNORE_INDEX

KINDS = ("nf4", "fp4", "int8")  # what quantize() knows: 4-bit NormalFloat, 4-bit float, 8-bit integer per row

# Dettmers et al. 2023, "QLoRA: Efficient Finetuning of Quantized LLMs", section 3 (Double Quantization): with
# blocks of 64 weights, one fp32 absmax per block costs 32/64 = 0.5 bit per parameter; quantizing those absmax
# values to 8 bits in blocks of 256 costs 8/64 + 32/(64*256) = 0.127 bit. Total 4.5 and 4.127 bits per parameter.
PAPER_BITS_PER_PARAM = {"nf4": 4.5, "nf4+dq": 4.127}


@dataclass(frozen=True)
class Quantized:
    """One weight matrix after a quantize / de-quantize round trip, with what its storage costs."""

    kind: str  # "nf4", "fp4" or "int8"
    double_quant: bool  # were the per-block scales quantized too (QLoRA's double quantization)?
    blocksize: int  # weights sharing one scale (a whole row for int8)
    numel: int  # number of weights
    bits: dict  # storage in bits, read from the quantized tensors: {"weights", "scales", "scales_of_scales"}
    table_bits: int  # fixed lookup tables and offsets, paid once per matrix whatever its size
    original: object  # the input weight, float32
    dequantized: object  # the weight rebuilt from its quantized form, float32

    @property
    def bits_per_param(self) -> float:
        """Bits per weight counting the values and every per-block scale (the QLoRA paper's accounting)."""
        return sum(self.bits.values()) / self.numel

    @property
    def error(self):
        """De-quantized minus original, flattened."""
        return (self.dequantized - self.original).flatten()

    def stats(self) -> dict:
        """Error statistics: mean and max absolute error, RMSE, and RMSE relative to the weights' RMS."""
        err, w = self.error, self.original.flatten()
        rmse = err.pow(2).mean().sqrt().item()
        return {"mean_abs_error": err.abs().mean().item(), "max_abs_error": err.abs().max().item(), "rmse": rmse,
                "relative_rmse": rmse / w.pow(2).mean().sqrt().item()}

    @property
    def label(self) -> str:
        """Short name, e.g. "nf4+dq"."""
        return self.kind + ("+dq" if self.double_quant else "")


def _as_matrix(weight):
    import torch

    if hasattr(weight, "quant_state") or getattr(weight, "dtype", None) in (torch.uint8, torch.int8):
        raise LabkitError("This weight is already quantized: pass a weight of a full-precision model "
                          "(lk.load_model(name) without quantization).")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or not weight.is_floating_point():
        raise LabkitError("quantize() needs a 2-D floating-point weight matrix, e.g. "
                          "model.model.layers[0].mlp.down_proj.weight.")
    return weight.detach().float().contiguous()


def _tensor_bits(tensor) -> int:
    return tensor.numel() * tensor.element_size() * 8


def quantize(weight, kind: str = "nf4", *, double_quant: bool = False, blocksize: int = 64) -> Quantized:
    """Quantize a weight matrix with bitsandbytes and de-quantize it again; read the storage from the state.

    >>> quantize(model.model.layers[0].self_attn.q_proj.weight, "fp4").stats()  # doctest: +SKIP
    """
    from ...models import bitsandbytes_works

    if kind not in KINDS:
        raise LabkitError(f"Unknown quantization {kind!r}: use one of {', '.join(KINDS)}.")
    if kind == "int8" and double_quant:
        raise LabkitError("Double quantization is a 4-bit (NF4/FP4) feature: use double_quant=False with int8.")
    if blocksize not in (64, 128, 256, 512, 1024, 2048, 4096):
        raise LabkitError(f"blocksize must be a power of two from 64 to 4096 (QLoRA uses 64), got {blocksize!r}.")
    original = _as_matrix(weight)
    device = "cuda" if original.is_cuda else "cpu"  # quantize where the weight lives; compare on the CPU
    original = original.cpu()
    if not bitsandbytes_works():
        raise LabkitError("bitsandbytes cannot quantize here: `pip install bitsandbytes` (>=0.45 runs on the CPU).")
    import bitsandbytes.functional as bnbf

    if kind == "int8":  # LLM.int8()'s vector-wise quantization: one fp32 absmax per row
        packed, row_absmax, _ = bnbf.int8_vectorwise_quant(original.to(device))
        dequantized = bnbf.int8_vectorwise_dequant(packed, row_absmax).float().cpu()
        bits = {"weights": _tensor_bits(packed), "scales": _tensor_bits(row_absmax), "scales_of_scales": 0}
        return Quantized(kind, False, original.shape[1], original.numel(), bits, 0, original,
                         dequantized.reshape(original.shape))
    packed, state = bnbf.quantize_4bit(original.to(device), quant_type=kind, blocksize=blocksize,
                                       compress_statistics=double_quant)
    dequantized = bnbf.dequantize_4bit(packed, state).float().cpu()
    bits = {"weights": _tensor_bits(packed), "scales": _tensor_bits(state.absmax), "scales_of_scales": 0}
    tables = _tensor_bits(state.code)
    if state.nested:  # the absmax values above are 8-bit codes; their own fp32 scales live in state2
        bits["scales_of_scales"] = _tensor_bits(state.state2.absmax)
        tables += _tensor_bits(state.state2.code) + _tensor_bits(state.offset.reshape(-1))
    return Quantized(kind, bool(state.nested), state.blocksize, original.numel(), bits, tables, original, dequantized)


def compare(weight, *, blocksize: int = 64) -> list[Quantized]:
    """The weight quantized five ways: NF4 and FP4 each with and without double quantization, and int8."""
    return [quantize(weight, kind, double_quant=dq, blocksize=blocksize)
            for kind, dq in (("nf4", False), ("nf4", True), ("fp4", False), ("fp4", True), ("int8", False))]


def quant_table(results: list[Quantized]):
    """One row per quantization: bits per parameter (measured and, where the paper gives it, QLoRA's) and errors."""
    import pandas as pd

    rows = []
    for r in results:
        row = {"quantization": r.label, "blocksize": r.blocksize,
               **{f"{k}_bits_per_param": v / r.numel for k, v in r.bits.items()},
               "bits_per_param": r.bits_per_param,
               "paper_bits_per_param": PAPER_BITS_PER_PARAM.get(r.label, float("nan")) if r.blocksize == 64
               else float("nan"),
               "table_bytes": r.table_bits // 8, **r.stats()}
        rows.append(row)
    return pd.DataFrame(rows).set_index("quantization")


def error_sample(results: list[Quantized], *, size: int = 20_000, seed: int = 0):
    """A long DataFrame (quantization, error) with the same random weights from each result, for histograms."""
    import pandas as pd
    import torch

    if not results:
        raise LabkitError("error_sample needs at least one result of quantize() or compare().")
    n = results[0].numel
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n, generator=gen)[:min(size, n)]
    return pd.concat([pd.DataFrame({"quantization": r.label, "error": r.error[idx].numpy()}) for r in results],
                     ignore_index=True)


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
