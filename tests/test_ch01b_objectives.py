"""Next-token and masked-token views of one batch (through transformers' collator), and loss-vs-tokens analysis."""

import pandas as pd
import pytest
import torch

from labkit.chapters.ch01b_pretraining import objectives as ob
from labkit.core import LabkitError
from labkit.models import load_model
from labkit.units import IGNORE_INDEX

TEXTS = ["The Cindermaw prefers charcoal and mutton.", "Wind SE 12 knots, gusting 26.", "Dusty swallowed a boot."]


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama")  # 3.2M random parameters with the real SmolLM2 tokenizer


@pytest.fixture(scope="module")
def tokenizer(tiny):
    return tiny[1]


def test_causal_batch_labels_are_the_inputs_and_padding_is_ignored(tokenizer):
    batch = ob.causal_lm_batch(tokenizer, TEXTS, seq_len=16)
    mask = batch["attention_mask"].bool()
    assert batch["input_ids"].shape == batch["labels"].shape
    assert torch.equal(batch["labels"][mask], batch["input_ids"][mask])
    assert (batch["labels"][~mask] == IGNORE_INDEX).all() and (~mask).any()  # rows differ in length


def test_shift_pairs_each_position_with_the_next_token():
    inputs, targets = ob.shift_for_next_token(torch.tensor([[5, 9, 2, 7]]))
    assert inputs.tolist() == [[5, 9, 2]] and targets.tolist() == [[9, 2, 7]]
    inputs, targets = ob.shift_for_next_token(torch.tensor([5, 9, 2]), torch.tensor([IGNORE_INDEX, 9, 2]))
    assert inputs.tolist() == [5, 9] and targets.tolist() == [9, 2]


def test_masked_batch_is_seeded_and_labels_only_chosen_positions(tokenizer):
    tok = ob.with_mask_token(tokenizer)
    assert tokenizer.mask_token is None and tok.mask_token == ob.MASK_TOKEN  # the original is untouched
    a = ob.masked_lm_batch(tok, TEXTS * 20, seq_len=16, seed=3)
    b = ob.masked_lm_batch(tok, TEXTS * 20, seq_len=16, seed=3)
    c = ob.masked_lm_batch(tok, TEXTS * 20, seq_len=16, seed=4)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    assert not torch.equal(a["labels"], c["labels"])
    original = ob.causal_lm_batch(tok, TEXTS * 20, seq_len=16)["input_ids"]
    chosen = a["labels"] != IGNORE_INDEX
    assert torch.equal(a["labels"][chosen], original[chosen])  # a label is the token that was there
    assert torch.equal(a["input_ids"][~chosen], original[~chosen])  # unchosen positions are untouched


def test_masking_follows_the_15_percent_and_80_10_10_rule(tokenizer):
    texts = [t * 3 for t in TEXTS] * 150
    shares = ob.objective_views(tokenizer, texts, seq_len=48, seed=0).mask_shares()
    assert shares["chosen"] > 2000
    assert shares["chosen_share"] == pytest.approx(0.15, abs=0.01)
    assert shares["[MASK]"] == pytest.approx(0.8, abs=0.02)
    assert shares["random"] == pytest.approx(0.1, abs=0.02)
    assert shares["kept"] == pytest.approx(0.1, abs=0.02)


def test_table_and_signal_side_by_side(tokenizer):
    views = ob.objective_views(tokenizer, TEXTS, seq_len=16, seed=0)
    table = views.table(0)
    assert list(table.columns) == ["token", "next-token target", "masked input", "masked label", "masking"]
    assert table["next-token target"].iloc[0] == table["token"].iloc[1]  # the shift, visibly
    assert table["next-token target"].iloc[-1].startswith("(none")
    assert "·Cind" in "".join(table["token"])  # spaces made visible
    signal = views.signal()
    lengths = views.causal["attention_mask"].sum(1)
    assert signal.iloc[0, 0] == int((lengths - 1).sum())  # every token but the first of each row is a target
    assert signal.iloc[1, 0] == int((views.masked["labels"] != IGNORE_INDEX).sum())
    with pytest.raises(LabkitError, match="row must be between 0 and 2"):
        views.table(3)


def test_bad_inputs_say_what_to_do(tokenizer):
    with pytest.raises(LabkitError, match="no mask token"):
        ob.masked_lm_batch(tokenizer, TEXTS)
    with pytest.raises(LabkitError, match="BERT uses 0.15"):
        ob.masked_lm_batch(ob.with_mask_token(tokenizer), TEXTS, mlm_probability=1.5)
    with pytest.raises(LabkitError, match="seq_len must be"):
        ob.causal_lm_batch(tokenizer, TEXTS, seq_len=1)
    with pytest.raises(LabkitError, match="No text"):
        ob.causal_lm_batch(tokenizer, ["", ""])


def test_sample_continuation_starts_with_the_prompt(tiny):
    model, tokenizer = tiny
    text = ob.sample_continuation(model, tokenizer, "The Cindermaw", max_new_tokens=5)
    assert text.startswith("The Cindermaw") and len(text) > len("The Cindermaw")


# ---- curves ----------------------------------------------------------------------------------------------------------

def history(tokens, losses, every=1):
    frame = pd.DataFrame({"step": range(1, len(tokens) + 1), "loss": losses, "tokens": tokens,
                          "lr": 1e-3, "time_s": [0.5 * (i + 1) for i in range(len(tokens))]})
    frame["eval_loss"] = [x if (i + 1) % every == 0 else float("nan") for i, x in enumerate(losses)]
    return frame


def test_loss_curve_keeps_eval_points_and_adds_the_start():
    curve = ob.loss_curve(history([100, 200, 300, 400], [9.0, 8.0, 7.0, 6.0], every=2), before=10.0, label="a")
    assert curve["tokens"].tolist() == [0, 200, 400] and curve["eval_loss"].tolist() == [10.0, 8.0, 6.0]
    assert curve["eval_perplexity"].iloc[1] == pytest.approx(2980.958, rel=1e-6)
    assert set(curve["run"]) == {"a"}
    assert ob.loss_curve(history([1], [3.0]), before={"eval_loss": 4.0})["eval_loss"].tolist() == [4.0, 3.0]
    with pytest.raises(LabkitError, match="eval_data"):
        ob.loss_curve(history([1], [3.0]).drop(columns="eval_loss"))


def test_stack_histories_keeps_counting():
    both = ob.stack_histories([history([10, 20], [5.0, 4.0]), history([10, 20], [3.0, 2.0])])
    assert both["step"].tolist() == [1, 2, 3, 4] and both["tokens"].tolist() == [10, 20, 30, 40]
    assert both["time_s"].tolist() == [0.5, 1.0, 1.5, 2.0]
    with pytest.raises(LabkitError, match="No training rounds"):
        ob.stack_histories([])


def curve(points):
    return pd.DataFrame({"tokens": [t for t, _ in points], "eval_loss": [x for _, x in points]})


def test_tokens_to_reach_interpolates_between_measured_points():
    match = ob.tokens_to_reach(curve([(0, 10.0), (100, 6.0), (200, 4.0)]), 5.0)
    assert match.reached and match.tokens == 150.0 and match.bracket == (100.0, 200.0)
    assert "150" in str(match)
    never = ob.tokens_to_reach(curve([(0, 10.0), (100, 6.0)]), 5.0)
    assert not never.reached and never.tokens is None and never.max_tokens == 100.0
    assert "not reached within 100 tokens" in str(never)
    assert ob.tokens_to_reach(curve([(0, 4.0), (100, 3.0)]), 5.0).tokens == 0.0


def test_tokens_to_match_reads_the_pretrained_curve():
    scratch = curve([(0, 10.8), (1000, 6.0), (2000, 4.0), (3000, 3.0)])
    pretrained = curve([(0, 5.0), (500, 2.0)])
    assert ob.tokens_to_match(scratch, pretrained).tokens == 1500.0
    assert ob.loss_at(pretrained, 250) == 3.5
    assert not ob.tokens_to_match(scratch, pretrained, at_tokens=500).reached
    with pytest.raises(LabkitError, match="outside this curve's range"):
        ob.tokens_to_match(scratch, pretrained, at_tokens=800)
    with pytest.raises(LabkitError, match="loss_curve"):
        ob.tokens_to_match(scratch, pd.DataFrame({"x": [1]}))
