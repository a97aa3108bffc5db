"""Lab 12's quant module: label view, de-quantized copy, agreement (bits and errors moved to tests/test_quant.py)."""

import pandas as pd
import pytest
import torch

from labkit import LabkitError
from labkit.chapters.ch12_qlora import quant
from labkit.models import bitsandbytes_works, load_model
from labkit.units import IGNORE_INDEX

needs_bnb = pytest.mark.skipif(not bitsandbytes_works(), reason="bitsandbytes cannot quantize on this machine")


def test_label_view_marks_only_the_answer():
    from labkit.models import _tokenizer

    tokenizer = _tokenizer()
    view = quant.label_view(tokenizer, "What is 2 + 3?", "5")
    trained = view[view["trained"]]
    assert list(trained["token"]) == ["5", "<|im_end|>"]
    assert (view.loc[~view["trained"], "label"] == IGNORE_INDEX).all()
    assert (trained["label"] == trained["input_id"]).all()
    assert view["token"].iloc[-3] == "\n"  # the assistant header ends just before the answer


@pytest.fixture(scope="module")
def tiny_nf4():
    if not bitsandbytes_works():
        pytest.skip("bitsandbytes cannot quantize on this machine")
    return load_model("tiny-llama", quantization="nf4")


# bf16 keeps 8 significant bits: rounding a value to bf16 moves it by at most u = 2^-8 of itself (unit roundoff).
BF16_UNIT_ROUNDOFF = 2.0 ** -8
# Where the 4-bit layers compute in fp32 they de-quantize with bitsandbytes' dequantize_4bit, the very function the
# copy's weights come from, and run the same fp32 matmul: only the summation order may differ (~1e-7 relative).
FP32_LOGIT_ATOL = 1e-4
# Where bitsandbytes runs its bf16 CPU kernel instead (backends/cpu/ops.py gemv_4bit, chosen in eval mode without
# grad on a CPU with AVX512-BF16 after Linear4bit.forward repacks the weight), each 4-bit layer rounds its input, its
# block scales and its output to bf16 and accumulates in fp32: each rounding is at most u relative, the errors enter
# the residual stream through the branches and reach the logits through the fp32 norm and lm_head without being
# amplified, so the logits move by a few u of their size. Allowed: 4 u * max|logit| (0.020 for tiny-llama). Seen on
# an AMD EPYC with AVX512-BF16: 0.0036 (0.7 u * max|logit|); a copy holding the original, unquantized weights is
# off by 0.10 (20 u * max|logit|), so the bound still tells the de-quantized weights from the original ones.
BF16_LOGIT_ULPS = 4


def _kernel_tolerance(model, logits) -> float:
    """The logit tolerance for the kernel the 4-bit layers just ran: bf16 if bitsandbytes repacked them for it."""
    from labkit.fourbit import linear4bit_layers

    bf16 = any(getattr(layer.weight.quant_state, "packing_format_for_cpu", False)
               for layer in linear4bit_layers(model))
    return BF16_LOGIT_ULPS * BF16_UNIT_ROUNDOFF * logits.abs().max().item() if bf16 else FP32_LOGIT_ATOL


def test_dequantized_copy_gives_the_4bit_outputs():
    import bitsandbytes.functional as bnbf

    from labkit.fourbit import linear4bit_layers

    if not bitsandbytes_works():
        pytest.skip("bitsandbytes cannot quantize on this machine")
    model, tokenizer = load_model("tiny-llama", quantization="nf4")  # fresh: no forward has repacked a layer yet
    plain = quant.dequantized_copy(model)
    assert not any("4bit" in type(m).__name__ for m in plain.modules())
    assert any("4bit" in type(m).__name__ for m in model.modules())  # the original stays quantized
    # The copy's weights are bitsandbytes' own de-quantization of each 4-bit layer, bit for bit, on any CPU.
    copies = dict(plain.named_modules())
    four_bit = linear4bit_layers(model)
    layers = {name: m for name, m in model.named_modules() if any(m is layer for layer in four_bit)}
    assert len(layers) == 7 * model.config.num_hidden_layers  # q, k, v, o, gate, up, down
    for name, layer in layers.items():
        assert torch.equal(copies[name].weight, bnbf.dequantize_4bit(layer.weight.data, layer.weight.quant_state))

    texts = ["Sort ascending: 42, 7, 19.", "What is 17 + 25?"]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)  # as compare_outputs does
    with torch.no_grad():
        reference = plain(**enc).logits[enc["attention_mask"].bool()]
    # Train mode (tiny-llama has no dropout) keeps bitsandbytes on its fp32 path on every CPU: de-quantize, then matmul.
    assert model.config.attention_dropout == 0.0
    model.train()
    agree = quant.compare_outputs(model, plain, tokenizer, texts)
    model.eval()
    assert agree["max_abs_logit_diff"] <= FP32_LOGIT_ATOL and agree["greedy_agreement"] == 1.0

    # Eval mode without grad: what a learner's generation and evaluation run, with this CPU's kernel.
    agree = quant.compare_outputs(model, plain, tokenizer, texts)
    atol = _kernel_tolerance(model, reference)
    assert agree["max_abs_logit_diff"] <= atol
    # A logit error below atol cannot swap two tokens further apart than 2 * atol: those must agree; closer ones may
    # flip with the kernel's rounding (tiny-llama's random logits have top-2 gaps under 1e-3).
    top2 = reference.topk(2, dim=-1).values
    decided = ((top2[:, 0] - top2[:, 1]) > 2 * atol).float().mean().item()
    assert decided > 0.5 and agree["greedy_agreement"] >= decided


def test_dequantized_copy_refuses_plain_and_adapted_models(tiny_nf4):
    plain, _ = load_model("tiny-llama")
    with pytest.raises(LabkitError, match="quantization='nf4'"):
        quant.dequantized_copy(plain)
    model, _ = tiny_nf4
    model.peft_config = {"default": None}  # looks adapted
    try:
        with pytest.raises(LabkitError, match="without an adapter"):
            quant.dequantized_copy(model)
    finally:
        del model.peft_config


def test_compare_outputs_sees_a_change():
    model, tokenizer = load_model("tiny-llama")
    other, _ = load_model("tiny-llama")
    texts = ["What is 17 + 25?"]
    same = quant.compare_outputs(model, other, tokenizer, texts)
    assert same["max_abs_logit_diff"] == 0.0 and same["greedy_agreement"] == 1.0 and same["tokens"] == 10
    with torch.no_grad():
        other.lm_head.weight.add_(torch.randn_like(other.lm_head.weight))  # tied: the embedding changes too
    moved = quant.compare_outputs(model, other, tokenizer, texts)
    assert moved["max_abs_logit_diff"] > 0.1 and moved["greedy_agreement"] < 1.0
    with pytest.raises(LabkitError, match="at least one text"):
        quant.compare_outputs(model, other, tokenizer, [])


class _Scores:
    def __init__(self, questions, correct):
        self.table = pd.DataFrame({"question": questions, "correct": correct})


def test_by_family_splits_scores_per_family():
    import datasets

    data = datasets.Dataset.from_dict({"instruction": ["a", "b", "c", "d"], "answer": ["1", "2", "3", "4"],
                                       "family": ["x", "y", "x", "y"]})
    frame = quant.by_family({"before": _Scores(["a", "b", "c"], [False, False, True]),
                             "after": _Scores(["a", "b", "c"], [True, True, True])}, data)
    assert frame.loc["x", "before"] == 0.5 and frame.loc["y", "before"] == 0.0
    assert frame.loc["all", "before"] == pytest.approx(1 / 3) and frame.loc["all", "after"] == 1.0
    with pytest.raises(LabkitError, match="same test split"):
        quant.by_family({"after": _Scores(["b", "a"], [True, True])}, data)
