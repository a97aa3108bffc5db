"""Lab 05 exercises: each check passes the solution and rejects the typical mistakes, never showing the answer."""

import torch

from labkit.chapters.ch05_compression import exercises as ex
from labkit.chapters.ch05_compression.exercises import q1, q2, q3, q4
from labkit.chapters.ch05_compression.rtn import fake_quantize


def _status(exercise, answer):
    return exercise.evaluate(answer).status


def test_q1_zero_point_round_trip():
    assert _status(q1, ex._zp_fake_quant) == "correct"
    # the kit's own code stores float16 scales: off by up to 2^-11 of a weight, which the check (atol 1e-5) rejects
    assert _status(q1, lambda w, b: fake_quantize(w, b, "zeropoint", "channel")) == "incorrect"
    assert "absmax" in q1.evaluate(ex._absmax_fake_quant).message
    assert "zero point to an integer" in q1.evaluate(ex._zp_no_round_zero).message
    assert "per output row" in q1.evaluate(ex._zp_per_tensor).message
    assert "shape" in q1.evaluate(lambda w, b: ex._zp_fake_quant(w, b).flatten()).message
    assert _status(q1, lambda w, b: w) == "incorrect"
    assert _status(q1, lambda w, b: ...) == "not attempted"


def test_q2_bits_per_weight():
    assert _status(q2, lambda b, g, scale_bits=16: b + (scale_bits + b) / g) == "correct"
    assert "zero point" in q2.evaluate(lambda b, g, scale_bits=16: b + scale_bits / g).message
    assert "spread them" in q2.evaluate(lambda b, g, scale_bits=16: b).message
    assert _status(q2, lambda b, g, scale_bits=16: b + 16 / g) == "incorrect"


def test_q3_wanda():
    assert _status(q3, lambda w, x: w.abs() * x.pow(2).sum(0).sqrt()) == "correct"
    assert "plain magnitude" in q3.evaluate(lambda w, x: w.abs()).message
    assert "mean |x|" in q3.evaluate(lambda w, x: w.abs() * x.abs().mean(0)).message
    assert "|W|" in q3.evaluate(lambda w, x: w * x.norm(dim=0)).message
    assert _status(q3, lambda w, x: w.abs() * x.norm(dim=1).mean()) == "incorrect"


def test_q4_mask_24():
    from labkit.chapters.ch05_compression.pruning import nm_mask

    assert _status(q4, lambda w: nm_mask(w.abs(), 2, 4)) == "correct"
    assert "two largest" in q4.evaluate(ex._mask_smallest).message
    assert "magnitudes" in q4.evaluate(ex._mask_signed).message
    assert "unstructured" in q4.evaluate(ex._mask_row_half).message
    assert _status(q4, lambda w: nm_mask(w.abs(), 2, 4).float()) == "incorrect"  # a float mask is not a mask


def test_messages_never_show_the_expected_tensor():
    for exercise, wrong in ((q1, lambda w, b: w * 0), (q3, lambda w, x: w), (q4, lambda w: torch.ones_like(w).bool())):
        message = exercise.evaluate(wrong).message
        assert "tensor(" not in message and "[" not in message
