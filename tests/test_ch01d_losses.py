"""Lab 01d losses: values and gradients against torch.nn.functional, hand-worked values, and bad input refused."""

import math

import pytest
import torch
import torch.nn.functional as F

from labkit.chapters.ch01d_tasks import losses
from labkit.core import LabkitError
from labkit.methods.linear_probe import is_classifier

LOGITS = torch.tensor([[2.0, 0.0], [2.0, 0.0]])
L0, L1 = math.log(1 + math.exp(-2)), math.log(1 + math.exp(2))  # -log softmax of [2, 0]: 0.126928, 2.126928
TOL = 1e-6  # float32 log-softmax of numbers near 1: a few units in the last place


def test_hand_worked_values():
    assert losses.cross_entropy(LOGITS[:1], torch.tensor([0])).item() == pytest.approx(L0, abs=TOL)
    # smoothing 0.2: 0.8 * nll + 0.2 * mean over classes of -log p = 0.8 * L0 + 0.2 * (L0 + L1) / 2
    smoothed = losses.cross_entropy(LOGITS[:1], torch.tensor([0]), smoothing=0.2).item()
    assert smoothed == pytest.approx(0.8 * L0 + 0.1 * (L0 + L1), abs=TOL)
    # class weights [1, 3], targets [0, 1]: (1 * L0 + 3 * L1) / (1 + 3)
    weighted = losses.cross_entropy(LOGITS, torch.tensor([0, 1]), class_weights=[1.0, 3.0]).item()
    assert weighted == pytest.approx((L0 + 3 * L1) / 4, abs=TOL)


def test_token_and_sequence_averaging_differ_when_lengths_differ():
    logits = torch.zeros(2, 3, 4)  # every predicted token costs ln 4
    logits[0, 0, 1] = 2.0  # ... except one: -log softmax([0, 2, 0, 0])[1] = log(3 + e^2) - 2
    targets = torch.tensor([[1, 2, 3], [0, -100, -100]])
    first = math.log(3 + math.exp(2)) - 2
    token = (first + 3 * math.log(4)) / 4  # 4 predicted tokens, each counted once
    sequence = ((first + 2 * math.log(4)) / 3 + math.log(4)) / 2  # mean of the two sequences' means
    assert losses.cross_entropy(logits, targets).item() == pytest.approx(token, abs=TOL)
    assert losses.cross_entropy(logits, targets, reduction="sequence").item() == pytest.approx(sequence, abs=TOL)
    loss, per_sequence = losses.cross_entropy(logits, targets, return_per_example=True)
    assert loss.item() == pytest.approx(token, abs=TOL)
    assert per_sequence.tolist() == pytest.approx([(first + 2 * math.log(4)) / 3, math.log(4)], abs=TOL)
    assert losses.example_shares(targets.tolist(), "token") == [0.75, 0.25]
    assert losses.example_shares(targets.tolist(), "sequence") == [0.5, 0.5]


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.45])
@pytest.mark.parametrize("weighted", [False, True])
def test_values_and_gradients_match_torch(smoothing, weighted):
    gen = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(7, 5, generator=gen)).requires_grad_(True)
    targets = torch.tensor([0, 4, 2, 2, -100, 1, 3])
    weights = torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0]) if weighted else None
    ours = losses.cross_entropy(logits, targets, smoothing=smoothing, class_weights=weights)
    theirs = F.cross_entropy(logits, targets, weight=weights, label_smoothing=smoothing)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)  # logits up to ~10: rounding of ~1e-6 per term
    g_ours, = torch.autograd.grad(ours, logits)
    g_theirs, = torch.autograd.grad(theirs, logits)
    assert torch.allclose(g_ours, g_theirs, atol=1e-6)  # gradients are probabilities / N: below 1, float32 rounding


def test_token_logits_match_torch_on_flattened_tokens():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, 6, generator=gen, requires_grad=True)
    targets = torch.tensor([[1, 2, -100, -100], [0, 5, 5, 4], [3, -100, -100, -100]])
    ours = losses.cross_entropy(logits, targets, smoothing=0.1)
    theirs = F.cross_entropy(logits.reshape(-1, 6), targets.reshape(-1), label_smoothing=0.1)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert torch.allclose(torch.autograd.grad(ours, logits)[0], torch.autograd.grad(theirs, logits)[0], atol=1e-7)


def test_smoothed_targets_are_torchs():
    assert losses.smoothed_targets([2], 4, 0.1)[0].tolist() == pytest.approx([0.025, 0.025, 0.925, 0.025])
    assert losses.smoothed_targets([0, 1], 2, 0.0).tolist() == [[1.0, 0.0], [0.0, 1.0]]


@pytest.mark.parametrize("smoothing", [-0.1, 1.0, 1.5, float("nan"), True, "0.1"])
def test_smoothing_outside_the_range_is_refused(smoothing):
    with pytest.raises(LabkitError, match="smoothing must be a number from 0"):
        losses.cross_entropy(LOGITS, torch.tensor([0, 1]), smoothing=smoothing)
    with pytest.raises(LabkitError, match="smoothing must be"):
        losses.smoothed_targets([0], 2, smoothing)


def test_class_weights_of_the_wrong_length_are_refused():
    with pytest.raises(LabkitError, match="3 values but there are 2 classes: give one weight per class"):
        losses.cross_entropy(LOGITS, torch.tensor([0, 1]), class_weights=[1.0, 2.0, 3.0])
    with pytest.raises(LabkitError, match="non-negative"):
        losses.cross_entropy(LOGITS, torch.tensor([0, 1]), class_weights=[1.0, -2.0])


def test_other_bad_input_is_refused():
    with pytest.raises(LabkitError, match="Unknown reduction 'mean'"):
        losses.cross_entropy(LOGITS, torch.tensor([0, 1]), reduction="mean")
    with pytest.raises(LabkitError, match="do not match logits"):
        losses.cross_entropy(LOGITS, torch.tensor([0, 1, 1]))
    with pytest.raises(LabkitError, match="class ids from 0 to 1"):
        losses.cross_entropy(LOGITS, torch.tensor([0, 2]))
    with pytest.raises(LabkitError, match="prompt_len must be a whole number from 0 to"):
        losses.answer_only_labels([1, 2, 3], 4)
    with pytest.raises(LabkitError, match="every label is the ignore index"):
        losses.example_shares([[-100, -100]])
    with pytest.raises(LabkitError, match="not in labels"):
        losses.balanced_weights(["a", "z"], ["a", "b"])


def test_answer_only_labels_and_balanced_weights():
    assert losses.answer_only_labels([7, 8, 9, 10], 2) == [-100, -100, 9, 10]
    assert losses.whole_sequence([{"input_ids": [1, 2], "labels": [-100, 2]}]) == [{"input_ids": [1, 2],
                                                                                       "labels": [1, 2]}]
    # 6 examples, 2 present classes: w = 6 / (2 * n_c); a class with no examples gets 0
    assert losses.balanced_weights(["a"] * 4 + ["b"] * 2, ["a", "b", "c"]) == [0.75, 1.5, 0.0]


def test_with_loss_wraps_a_language_model_and_a_classifier():
    from labkit import apply_method
    from labkit.models import load_model

    model, _ = load_model("tiny-llama")
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 0]])
    labels = torch.tensor([[-100, 6, 7, 8], [-100, 10, 11, -100]])
    wrapped = losses.with_loss(model, smoothing=0.1)
    out = wrapped(input_ids=ids, labels=labels)
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, out.logits.shape[-1]), labels[:, 1:].reshape(-1),
                               label_smoothing=0.1)
    assert out.loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert wrapped(input_ids=ids).loss is None or wrapped(input_ids=ids).logits.shape == out.logits.shape
    clf = apply_method(model, "linear_probe", labels=["a", "b"])
    weighted = losses.with_loss(clf, class_weights=[1.0, 3.0])
    assert is_classifier(weighted) and weighted.label2id == {"a": 0, "b": 1}
    out = weighted(input_ids=ids, labels=torch.tensor([0, 1]))
    assert out.loss.item() == pytest.approx(F.cross_entropy(out.logits, torch.tensor([0, 1]),
                                                            weight=torch.tensor([1.0, 3.0])).item(), abs=1e-6)
    with pytest.raises(LabkitError, match="one weight per class"):
        losses.with_loss(clf, class_weights=[1.0, 2.0, 3.0])
    with pytest.raises(LabkitError, match="class_weights go with a classifier"):
        losses.with_loss(model, class_weights=[1.0, 2.0])
    with pytest.raises(LabkitError, match="smoothing must be"):
        losses.with_loss(clf, smoothing=1.0)
