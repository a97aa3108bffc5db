"""bitsandbytes 4-bit layers: train them in the layout whose backward is right, and check that it is.

Upstream behaviour (bitsandbytes 0.50.2, read and seen on an AMD EPYC with AVX512-BF16): the first time a
``bnb.nn.Linear4bit`` runs in eval mode on a CPU input that needs no grad, on a CPU with AVX512-BF16, it repacks its
weight into a CPU inference layout (``_convert_weight_packed_for_cpu``, which sets
``quant_state.packing_format_for_cpu``) and never undoes it for training. ``matmul_4bit`` then sends every call to
``gemv_4bit``, which has no autograd: no gradient flows back through the frozen 4-bit layers, so the LoRA weights
below them barely learn (SmolLM2 QLoRA, 20 steps: loss 2.47 -> 0.64 without a generation first, 2.49 -> 2.12 after
one). Any generation or evaluation before training triggers it. Remove ``training_layout`` once bitsandbytes undoes
the packing itself when a layer trains; ``tests/test_fourbit.py`` fails loudly if the internals it uses change.

The repacked layout makes 4-bit inference about twice as fast on such a CPU, so the kit keeps it outside training:
``training_layout`` undoes it on entry (with bitsandbytes' own inverse, which it also uses before saving), keeping
the bf16 block scales the repacked kernel used, and lets bitsandbytes repack again after training.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import warnings

from .core import LabkitError

# Relative error allowed between the 4-bit layer's input gradient and the de-quantized reference. Both use the same
# de-quantized weight, so in fp32 they agree to ~1e-6; in a 16-bit compute dtype each product carries a rounding
# error of at most 2^-8 (bf16's unit roundoff, 0.4 %) and the summed error stays a few times that. A missing or
# wrong backward is off by ~100 % (no gradient, or one from a different weight layout).
GRAD_CHECK_RTOL = 0.05


def linear4bit_layers(model) -> list:
    """The bitsandbytes ``Linear4bit`` modules inside ``model`` (none if bitsandbytes was never imported)."""
    if "bitsandbytes" not in sys.modules:  # no 4-bit layer can exist before bitsandbytes is imported
        return []
    import bitsandbytes as bnb

    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


def _is_packed(layer) -> bool:
    return bool(getattr(layer.weight.quant_state, "packing_format_for_cpu", False))


def _standard_layout(data, state):
    """(data, state) of a repacked weight put back in the standard 4-bit layout, with bitsandbytes' own inverse.

    The block scales stay the bf16 values the repacked kernel used (as fp32, not re-quantized), so the weights
    that train are exactly the weights inference used, and repacking them again changes nothing.
    """
    from bitsandbytes import functional

    inverse = getattr(functional, "_convert_weight_packed_for_cpu_inverse", None)
    if inverse is None:
        raise LabkitError("This bitsandbytes repacked a 4-bit layer for CPU inference but has no inverse that labkit "
                          "knows: install the checked version with `pip install -c constraints.txt bitsandbytes`.")
    state.original_nested = False  # the inverse would re-quantize the scales (8-bit, a new offset) otherwise
    data, state = inverse(data, state)
    state.absmax = state.absmax.T.reshape(-1).float()  # from the repacked (blocks per row, rows) order back to flat
    return data, state


def _unpack(layer) -> None:
    layer.weight.data, layer.weight.quant_state = _standard_layout(layer.weight.data, layer.weight.quant_state)
    layer.quant_state = layer.weight.quant_state


@contextlib.contextmanager
def training_layout(model, *, check: bool = True):
    """Inside the block, ``model``'s 4-bit layers are in the layout whose backward is right, and stay so.

    Undoes bitsandbytes' CPU inference repacking, holds it off (evaluations inside the block run the standard
    kernels) and, with ``check``, runs ``check_4bit_gradients``. Afterwards bitsandbytes may repack again for fast
    inference. Models without 4-bit layers pass through untouched.

    >>> with training_layout(model):  # doctest: +SKIP
    ...     loss = model(**batch).loss; loss.backward()
    """
    layers = linear4bit_layers(model)
    before = [getattr(layer, "support_avx512bf16_for_cpu", None) for layer in layers]
    try:
        for layer in layers:
            if _is_packed(layer):
                _unpack(layer)
            if hasattr(layer, "support_avx512bf16_for_cpu"):
                layer.support_avx512bf16_for_cpu = False  # the switch Linear4bit.forward reads before repacking
        if check and layers:
            check_4bit_gradients(model)
        yield model
    finally:
        for layer, flag in zip(layers, before):
            if flag is not None:
                layer.support_avx512bf16_for_cpu = flag


def check_4bit_gradients(model) -> float:
    """Compare one small 4-bit layer's input gradient with the de-quantized reference; return the relative error.

    Raises a ``LabkitError`` when they disagree: training would then run silently wrong.
    """
    import torch
    from bitsandbytes import functional

    layers = linear4bit_layers(model)
    if not layers:
        return 0.0
    layer = min(layers, key=lambda m: m.in_features * m.out_features)
    state = layer.weight.quant_state
    weight = layer.weight.data
    if _is_packed(layer):  # the reference comes from a standard-layout copy; the layer itself stays as it is
        weight, state = _standard_layout(weight.clone(), copy.deepcopy(state))
    dtype = layer.compute_dtype or torch.float32
    reference_weight = functional.dequantize_4bit(weight, state).to(dtype)  # (out_features, in_features)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, layer.in_features, generator=gen).to(weight.device, dtype).requires_grad_(True)
    upstream = torch.randn(3, layer.out_features, generator=gen).to(weight.device, dtype)
    was_training = layer.training
    layer.train()  # a training-mode forward never repacks
    try:
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the repacked kernel's "no autograd kernel" warning: we raise instead
            out = layer(x)
            if out.requires_grad:
                (out.float() * upstream.float()).sum().backward()
    except RuntimeError as err:
        raise LabkitError(f"The 4-bit layers cannot backpropagate ({err}); reload the model with "
                          "lk.load_model(..., quantization='nf4') and train it with lk.train.") from err
    finally:
        layer.train(was_training)
    got = x.grad if x.grad is not None else torch.zeros_like(x)
    expected = upstream.float() @ reference_weight.float()
    error = ((got.float() - expected).norm() / expected.norm()).item()
    if not error <= GRAD_CHECK_RTOL:
        raise LabkitError(
            f"Gradients through the 4-bit layers are wrong (relative error {error:.2f} on one layer), so training "
            "would silently learn (almost) nothing. bitsandbytes probably repacked the weights for CPU inference: "
            "train with lk.train (it restores the training layout), wrap your own loop in "
            "`with lk.fourbit.training_layout(model):`, or reload the model before training.")
    return error
