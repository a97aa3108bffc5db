"""labkit.quant: bits read from bitsandbytes' quantization state and its errors (moved from lab 12's tests), torchao
int8 (weight-only and dynamic) on a whole model, stored bytes, and the re-exports labs 08 and 12 keep using."""

import pandas as pd
import pytest
import torch

import labkit as lk
from labkit import LabkitError, quant
from labkit.models import bitsandbytes_works

needs_bnb = pytest.mark.skipif(not bitsandbytes_works(), reason="bitsandbytes cannot quantize on this machine")
needs_torchao = pytest.mark.skipif(quant.int8_backend() != "torchao", reason="torchao is not installed")


@pytest.fixture(scope="module")
def weight():
    """128 x 256 Gaussian weights: 32,768 values = 512 blocks of 64 = 2 nested blocks of 256 scales."""
    return torch.randn(128, 256, generator=torch.Generator().manual_seed(0)) * 0.02


@needs_bnb
def test_bits_per_param_come_from_the_state(weight):
    table = quant.quant_table(quant.compare(weight))
    bits = table["bits_per_param"]
    assert bits["nf4"] == bits["fp4"] == 4.5  # 4 + 32/64
    assert bits["nf4+dq"] == bits["fp4+dq"] == pytest.approx(4 + 8 / 64 + 2 * 32 / 32768)  # 4.12695
    assert bits["int8"] == pytest.approx(8 + 32 / 256)  # one fp32 absmax per row of 256
    assert table.loc["nf4+dq", "paper_bits_per_param"] == 4.127
    assert table.loc["nf4", "paper_bits_per_param"] == 4.5
    assert pd.isna(table.loc["int8", "paper_bits_per_param"])
    assert table.loc["nf4+dq", "scales_bits_per_param"] == 0.125
    assert table.loc["nf4", "table_bytes"] == 64  # the 16-entry NF4 code book in fp32
    assert table.loc["nf4+dq", "table_bytes"] == 64 + 1024 + 4  # + the 8-bit code book of the scales and an offset


@needs_bnb
def test_errors_rank_as_expected_on_gaussian_weights(weight):
    table = quant.quant_table(quant.compare(weight))
    rmse = table["relative_rmse"]
    assert rmse["int8"] < 0.02 < rmse["nf4"] < rmse["fp4"] < 0.2  # NF4 fits normal weights better than FP4
    assert rmse["nf4+dq"] == pytest.approx(rmse["nf4"], rel=0.02)  # quantizing the scales costs little accuracy
    result = quant.quantize(weight, "nf4", blocksize=128)
    assert result.bits_per_param == 4.25 and result.dequantized.shape == weight.shape


@needs_bnb
def test_error_sample_uses_the_same_weights_for_every_kind(weight):
    sample = quant.error_sample(quant.compare(weight), size=1000)
    assert list(sample["quantization"].unique()) == ["nf4", "nf4+dq", "fp4", "fp4+dq", "int8"]
    assert len(sample) == 5000
    with pytest.raises(LabkitError, match="at least one"):
        quant.error_sample([])


@needs_bnb
@pytest.mark.parametrize("bad, kwargs, says", [
    ("w", {"kind": "int4"}, "Unknown quantization"),
    ("w", {"kind": "int8", "double_quant": True}, "4-bit"),
    ("w", {"blocksize": 100}, "power of two"),
    (torch.randn(64), {}, "2-D"),
    (torch.ones(4, 64, dtype=torch.int8), {}, "already quantized"),
    ([[1.0, 2.0]], {}, "2-D floating-point"),
])
def test_quantize_bad_input(weight, bad, kwargs, says):
    with pytest.raises(LabkitError, match=says):
        quant.quantize(weight if isinstance(bad, str) else bad, **kwargs)




def test_labs_08_and_12_still_see_the_same_functions():
    from labkit.chapters.ch08_deployment import quant as q08
    from labkit.chapters.ch12_qlora import quant as q12

    assert q12.quantize is quant.quantize and q12.compare is quant.compare and q12.Quantized is quant.Quantized
    assert q08.int8_copy is quant.int8_copy and q08.stored_bytes is quant.stored_bytes


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = lk.load_model("tiny-llama")
    return model.eval(), tokenizer


@needs_torchao
@pytest.mark.parametrize("mode", ["weight_only", "dynamic"])
def test_torchao_int8_shrinks_the_linear_layers_and_stays_close(tiny, mode):
    model, _ = tiny
    small = quant.int8_copy(model, mode=mode)
    ids = torch.arange(1, 17).reshape(1, 16)
    with torch.no_grad():
        ref, out = model(ids).logits, small(ids).logits
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()  # int8 steps are 1/127 of each row's (or token's) range
    measured, predicted = quant.stored_bytes(small), quant.predict_int8_bytes(model)
    assert measured == pytest.approx(predicted, rel=0.01)  # torch.save adds a little pickle framing per tensor
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    float_only = quant.stored_bytes(model)
    # the tiny model ties its head to the embedding: int8 adds the head's int8 copy and saves 3 bytes on the others
    head = model.lm_head.weight.numel()
    rest = sum(m.weight.numel() for m in linears) - head
    rows = sum(m.weight.shape[0] for m in linears)
    assert measured - float_only == pytest.approx(head - 3 * rest + 5 * rows, rel=0.02)
    assert isinstance(next(m for m in model.modules() if isinstance(m, torch.nn.Linear)).weight.data,
                      torch.Tensor)  # the original is left alone


def test_int8_copy_bad_input(tiny):
    model, _ = tiny
    with pytest.raises(LabkitError, match="mode must be"):
        quant.int8_copy(model, mode="int4")
    with pytest.raises(LabkitError, match="only dynamic"):
        quant.int8_copy(model, backend="torch.ao", mode="weight_only")
    with pytest.raises(LabkitError, match="backend"):
        quant.int8_copy(model, backend="int3")
    with pytest.raises(LabkitError, match="torch model"):
        quant.predict_int8_bytes("smollm2-135m")
