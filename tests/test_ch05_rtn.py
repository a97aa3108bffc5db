"""Lab 05's round-to-nearest quantization: codes, bits predicted and measured from the packed tensors, the round trip
through the stored bytes, and bad input."""

import pytest
import torch

from labkit import LabkitError
from labkit.chapters.ch05_compression import rtn
from labkit.chapters.ch05_compression.panel import predicted_setting_bits


@pytest.fixture(scope="module")
def weight():
    return torch.randn(64, 256, generator=torch.Generator().manual_seed(0)) * 0.02


@pytest.mark.parametrize("bits", [8, 4, 3, 2])
@pytest.mark.parametrize("scheme", rtn.SCHEMES)
@pytest.mark.parametrize("group", ["tensor", "channel", 32, 128])
def test_error_bounded_and_bits_match(weight, bits, scheme, group):
    w_hat = rtn.fake_quantize(weight, bits, scheme, group)
    codes, scale, _ = rtn.quantize_codes(weight, bits, scheme, group)
    assert len(codes.unique()) <= 2**bits
    # round to nearest: half a step, plus at most half a step more where the top code (absmax) or the rounded zero
    # point (zero-point) clips the range's end
    step = scale.max().item()
    assert (w_hat - weight).abs().max() <= step * 1.0 + 1e-7
    predicted = rtn.predicted_bits(bits, scheme, group, tuple(weight.shape))
    measured = rtn.measured_bits(weight, bits, scheme, group)
    assert measured == pytest.approx(predicted, abs=8 / weight.numel() * 2)  # byte padding of two packed streams
    stored = rtn.stored_tensors(weight, bits, scheme, group)
    assert torch.equal(rtn.unpack(stored, bits, scheme, group, tuple(weight.shape)), w_hat)  # the bytes hold it all


def test_finer_groups_and_more_bits_err_less(weight):
    err = {(b, g): (rtn.fake_quantize(weight, b, "zeropoint", g) - weight).pow(2).mean().item()
           for b in (2, 3, 4, 8) for g in ("tensor", "channel", 32)}
    for g in ("tensor", "channel", 32):
        assert err[(8, g)] < err[(4, g)] < err[(3, g)] < err[(2, g)]
    assert err[(3, 32)] < err[(3, "channel")] < err[(3, "tensor")]
    assert rtn.predicted_bits(4, "zeropoint", 128) == 4 + 20 / 128
    assert rtn.predicted_bits(4, "absmax", "channel", (64, 256)) == 4 + 16 / 256


@pytest.mark.parametrize("kwargs, says", [
    ({"bits": 1}, "2 to 8"), ({"bits": 9}, "2 to 8"), ({"bits": 4.0}, "2 to 8"),
    ({"group": 100}, "divides the width"), ({"group": 0}, "divides"), ({"scheme": "nf4"}, "scheme"),
])
def test_bad_input(weight, kwargs, says):
    with pytest.raises(LabkitError, match=says):
        rtn.fake_quantize(weight, **{"bits": 4, "scheme": "zeropoint", "group": 32, **kwargs})


def test_bad_input_elsewhere(weight):
    with pytest.raises(LabkitError, match="2-D"):
        rtn.fake_quantize(weight.flatten(), 4)
    with pytest.raises(LabkitError, match="shape"):
        rtn.predicted_bits(4, "zeropoint", "channel")
    with pytest.raises(LabkitError, match="pattern"):
        predicted_setting_bits(4, 128, 0.0, "3:4", 0.5)
    with pytest.raises(LabkitError, match="level"):
        predicted_setting_bits(4, 128, 0.0, "unstructured", 1.0)
    assert predicted_setting_bits(None, 128, 0.0, "none", 0.0) == 32
    assert predicted_setting_bits(4, 128, 0.0, "2:4", 0.5) == pytest.approx(0.5 * (4 + 20 / 128) + 1)
