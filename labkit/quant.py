"""Quantization shared by the labs: bitsandbytes NF4/FP4/int8 on one weight matrix (bits read from the quantized
state), torchao int8 on a whole model (weight-only or with dynamically quantized activations), and stored bytes.

Lab 12 uses ``quantize`` for QLoRA's NF4, lab 08 ``int8_copy`` for serving, lab 05 both to check its own
round-to-nearest code against real kernels.

>>> result = quantize(model.model.layers[0].mlp.down_proj.weight, "nf4", double_quant=True)  # doctest: +SKIP
>>> result.bits_per_param  # doctest: +SKIP
4.127...
>>> small = int8_copy(model, mode="weight_only")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from dataclasses import dataclass

from .core import LabkitError

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
    from .models import bitsandbytes_works

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


INT8_MODES = ("dynamic", "weight_only")  # int8 weights with int8 activations quantized per call / fp activations


def int8_copy(model, backend: str | None = None, *, mode: str = "dynamic"):
    """A copy of ``model`` with every Linear layer in int8: ``mode="dynamic"`` also quantizes each layer's input to
    int8 on every call (torchao ``Int8DynamicActivationInt8WeightConfig``), ``"weight_only"`` keeps activations in
    float (``Int8WeightOnlyConfig``). ``backend="torch.ao"`` is PyTorch's built-in dynamic int8 (dynamic only)."""
    import torch

    backend = backend or int8_backend()
    if backend not in ("torchao", "torch.ao"):
        raise LabkitError(f"backend must be 'torchao' or 'torch.ao' (or None to pick), got {backend!r}.")
    if mode not in INT8_MODES:
        raise LabkitError(f"mode must be one of {', '.join(INT8_MODES)}, got {mode!r}.")
    if backend == "torch.ao" and mode != "dynamic":
        raise LabkitError(f"torch.ao has only dynamic int8 for Linear layers: use mode='dynamic', or "
                          f"`pip install {TORCHAO_PIN}` for weight-only int8.")
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
            from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_
    except ImportError:
        raise LabkitError(f"backend='torchao' needs torchao: run `pip install {TORCHAO_PIN}`.") from None
    config = Int8DynamicActivationInt8WeightConfig() if mode == "dynamic" else Int8WeightOnlyConfig()
    with _quiet_torchao():
        quantize_(quantized, config)
    return quantized


def stored_bytes(model) -> int:
    """Bytes of the model's state dict as torch.save writes it (quantized tensors at their packed size)."""
    import torch

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()




INT8_EXTRA_BYTES_PER_ROW = 5  # torchao's Int8Tensor keeps an fp32 scale and an int8 zero point per output row


def predict_int8_bytes(model) -> int:
    """Bytes ``stored_bytes(int8_copy(model))`` should come to, before any is measured: each Linear weight at one
    byte per weight plus a scale and zero point per row, everything else (embeddings, norms, biases) as it is. A
    tied output layer gets its own int8 copy, so the embedding is counted in float and the head again in int8."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise LabkitError("predict_int8_bytes needs a torch model, e.g. lk.load_model('smollm2-135m')[0].")
    total, seen = 0, set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if isinstance(module, torch.nn.Linear) and name == "weight":
                total += param.numel() + param.shape[0] * INT8_EXTRA_BYTES_PER_ROW
            elif id(param) not in seen:
                seen.add(id(param))
                total += param.numel() * param.element_size()
        for name, buf in module.named_buffers(recurse=False):
            if name not in module._non_persistent_buffers_set and id(buf) not in seen:
                seen.add(id(buf))
                total += buf.numel() * buf.element_size()
    return total
