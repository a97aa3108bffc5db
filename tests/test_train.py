"""The training loop: loss falls, seeded runs repeat, accumulation and checkpointing agree, bad input refused."""

import copy
import math

import datasets
import pytest
import torch

import labkit as lk
from labkit import LabkitError, apply_method
from labkit.models import bitsandbytes_works, load_model
from labkit.training import evaluate as evaluate_module
from labkit.training import evaluate_exact_match, evaluate_loss, train

QUIET = {"progress": False, "live_plot": False}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run fastest on one thread (conftest)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama")


@pytest.fixture()
def lora(tiny):
    return apply_method(copy.deepcopy(tiny[0]), "lora", rank=4, target_modules="all-linear")


def _ids(n=8, seq_len=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return datasets.Dataset.from_dict({"input_ids": torch.randint(3, 5000, (n, seq_len), generator=gen).tolist()})


def test_loss_falls_and_the_history_has_one_row_per_step(lora, tiny):
    result = train(lora, tiny[1], _ids(), num_steps=4, batch_size=4, seq_len=16, lr=2e-2, **QUIET)
    h = result.history
    assert list(h.columns[:5]) == ["step", "loss", "tokens", "lr", "time_s"]
    assert list(h["step"]) == [1, 2, 3, 4]
    assert list(h["tokens"]) == [64, 128, 192, 256]
    assert h["time_s"].is_monotonic_increasing
    assert h["loss"].iloc[-1] < h["loss"].iloc[0]
    assert result.tokens_per_s == pytest.approx(256 / result.time_s)
    assert result.time_per_step_s == pytest.approx(result.time_s / 4)
    assert 0 < result.peak_mem_gib < 2  # measured above the level before training: logits, grads, Adam state
    assert "4 steps" in repr(result)
    assert not lora.training  # back in eval mode


def test_same_seed_same_losses_other_seed_other_losses(tiny):
    def run(seed):
        model = apply_method(copy.deepcopy(tiny[0]), "lora", rank=4, dropout=0.1)
        return train(model, tiny[1], _ids(), num_steps=3, batch_size=2, seq_len=16, lr=1e-2, seed=seed,
                     **QUIET).history["loss"].tolist()

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_gradient_accumulation_matches_a_bigger_batch(tiny):
    def run(batch_size, grad_accum):
        model = apply_method(copy.deepcopy(tiny[0]), "lora", rank=4)
        return train(model, tiny[1], _ids(), num_steps=3, batch_size=batch_size, grad_accum=grad_accum,
                     seq_len=16, lr=1e-2, **QUIET)

    big, accumulated = run(4, 1), run(2, 2)
    assert accumulated.history["loss"].tolist() == pytest.approx(big.history["loss"].tolist(), abs=1e-5)
    assert list(accumulated.history["tokens"]) == list(big.history["tokens"])


def test_gradient_checkpointing_gives_the_same_losses(tiny):
    def run(checkpointing):
        model = apply_method(copy.deepcopy(tiny[0]), "lora", rank=4)
        return train(model, tiny[1], _ids(), num_steps=2, batch_size=2, seq_len=16, lr=1e-2,
                     grad_checkpointing=checkpointing, **QUIET).history["loss"].tolist()

    assert run(True) == pytest.approx(run(False), abs=1e-5)


def test_periodic_evaluation_fills_eval_columns(lora, tiny):
    result = train(lora, tiny[1], _ids(), num_steps=4, batch_size=2, seq_len=16, lr=1e-2, eval_data=_ids(4, seed=1),
                   eval_every=2, **QUIET)
    evaluated = result.history.dropna(subset=["eval_loss"])
    assert list(evaluated["step"]) == [2, 4]
    assert evaluated["eval_perplexity"].tolist() == pytest.approx([math.exp(x) for x in evaluated["eval_loss"]])
    assert result.eval_loss == evaluated["eval_loss"].iloc[-1]


def test_fast_mode_caps_the_evaluation_set(lora, tiny, monkeypatch):
    sizes = []
    real = evaluate_module.run_eval
    monkeypatch.setattr("labkit.training.loop.run_eval", lambda m, ex, *a, **k: sizes.append(len(ex)) or real(m, ex, *a, **k))
    monkeypatch.setenv("LABKIT_FAST", "1")
    train(lora, tiny[1], _ids(), num_steps=1, batch_size=2, seq_len=8, eval_data=_ids(40, 8), **QUIET)
    assert sizes == [32]


def test_classification_with_a_linear_probe_learns(tiny):
    model = apply_method(copy.deepcopy(tiny[0]), "linear_probe", labels=["a", "b"])
    data = datasets.Dataset.from_dict({"text": ["red red red", "blue blue blue"] * 4, "label": ["a", "b"] * 4})
    result = train(model, tiny[1], data, num_steps=8, batch_size=4, seq_len=8, lr=5e-2, eval_data=data, **QUIET)
    assert result.settings["objective"] == "classification"
    assert result.history["eval_accuracy"].dropna().iloc[-1] == 1.0
    assert result.history["loss"].iloc[-1] < result.history["loss"].iloc[0]


def test_sft_on_instruction_data(tiny):
    model = apply_method(copy.deepcopy(tiny[0]), "lora", rank=4)
    data = datasets.Dataset.from_dict({"instruction": ["Who keeps the north light?"] * 4, "answer": ["Maren Holt"] * 4})
    result = train(model, tiny[1], data, num_steps=3, batch_size=2, seq_len=64, lr=2e-2, **QUIET)
    assert result.settings["objective"] == "sft"
    assert result.history["loss"].iloc[-1] < result.history["loss"].iloc[0]


def test_evaluate_loss_reports_perplexity(lora, tiny):
    metrics = evaluate_loss(lora, tiny[1], ["The north light burns all night."], seq_len=16)
    assert metrics["eval_perplexity"] == pytest.approx(math.exp(metrics["eval_loss"]))
    assert 5 < metrics["eval_loss"] < 15  # a random 49k-vocabulary model: about ln(49152) = 10.8


def test_exact_match_uses_the_kit_metric_with_aliases(tiny, monkeypatch):
    data = datasets.Dataset.from_dict({"question": ["q1", "q2", "q3", "q4"], "answer": ["Paris", "Maren Holt", "7", "x"],
                                       "aliases": [[], ["Holt"], [], []]})
    monkeypatch.setattr(evaluate_module, "generate_answers",
                        lambda *a, **k: [" Paris ", "Holt", "It is 7", "y"])
    em = evaluate_exact_match(tiny[0], tiny[1], data)
    assert em.score == 0.5
    assert em.table["correct"].tolist() == [True, True, False, False]
    assert em.table["contains"].tolist() == [True, True, True, False]
    assert evaluate_exact_match(tiny[0], tiny[1], data, contains=True).score == 0.75
    strict = datasets.Dataset.from_dict({"question": ["q"], "answer": ["cave, egg, glide"]})
    monkeypatch.setattr(evaluate_module, "generate_answers", lambda *a, **k: ["cave egg glide"])
    assert evaluate_exact_match(tiny[0], tiny[1], strict).score == 0.0  # punctuation counts by default


def test_exact_match_generates_with_the_real_model(tiny):
    data = datasets.Dataset.from_dict({"instruction": ["Say hi", "Count to three please"], "answer": ["hi", "1 2 3"]})
    em = evaluate_exact_match(tiny[0], tiny[1], data, max_new_tokens=3)
    assert len(em.table) == 2 and em.score == 0.0  # a random model does not answer
    assert tiny[1].padding_side == "right"  # left padding was only borrowed


def test_8bit_adamw_trains_on_the_cpu_and_paged_falls_back(tiny, capsys):
    if not bitsandbytes_works():
        pytest.skip("bitsandbytes cannot run here")
    model = apply_method(copy.deepcopy(tiny[0]), "lora", rank=4)
    result = train(model, tiny[1], _ids(), num_steps=3, batch_size=4, seq_len=16, lr=2e-2,
                   optimizer="paged_adamw8bit", **QUIET)
    assert "unpaged 8-bit AdamW" in capsys.readouterr().out
    assert result.history["loss"].iloc[-1] < result.history["loss"].iloc[0]


def test_lk_train_is_the_function_even_after_importing_the_training_module(lora, tiny):
    import labkit.training  # noqa: F401  (binds the submodule to lk.training, not lk.train)

    assert lk.train(lora, tiny[1], _ids(2), num_steps=1, batch_size=2, seq_len=8, **QUIET).num_steps == 1


def test_the_live_figure_updates_in_place():
    import plotly.graph_objects as go

    from labkit.plots.live import refresh_figure

    widget = go.FigureWidget(go.Figure(go.Scatter(x=[1], y=[3.0], name="run")))
    refresh_figure(widget, go.Figure(go.Scatter(x=[1, 2], y=[3.0, 2.5], name="run")))
    assert list(widget.data[0].y) == [3.0, 2.5]
    refresh_figure(widget, go.Figure([go.Scatter(x=[1], y=[1.0], name="a"), go.Scatter(x=[1], y=[2.0], name="b")]))
    assert [t.name for t in widget.data] == ["a", "b"]


# ---- bad input ----

def test_training_on_an_empty_data_set_is_refused(lora, tiny):
    with pytest.raises(LabkitError, match="empty"):
        train(lora, tiny[1], datasets.Dataset.from_dict({"text": []}), num_steps=1, **QUIET)


def test_other_bad_arguments_are_refused(tiny, lora):
    with pytest.raises(LabkitError, match="Nothing to train"):
        frozen = copy.deepcopy(tiny[0]).requires_grad_(False)
        train(frozen, tiny[1], _ids(), num_steps=1, **QUIET)
    with pytest.raises(LabkitError, match="classifier head"):
        train(lora, tiny[1], _ids(), objective="classification", num_steps=1, **QUIET)
    with pytest.raises(LabkitError, match="Unknown optimizer"):
        train(lora, tiny[1], _ids(), num_steps=1, optimizer="lion", **QUIET)
    with pytest.raises(LabkitError, match="num_steps must be a positive"):
        train(lora, tiny[1], _ids(), num_steps=0, **QUIET)
    with pytest.raises(LabkitError, match="lr must be positive"):
        train(lora, tiny[1], _ids(), num_steps=1, lr=0, **QUIET)
    with pytest.raises(LabkitError, match="Unknown mixed_precision"):
        train(lora, tiny[1], _ids(), num_steps=1, mixed_precision="fp8", **QUIET)


@pytest.mark.requires_gpu
def test_mixed_precision_on_a_gpu(tiny):
    model = apply_method(copy.deepcopy(tiny[0]).cuda(), "lora", rank=4)
    result = train(model, tiny[1], _ids(), num_steps=3, batch_size=4, seq_len=16, lr=2e-2, **QUIET)
    assert result.history["loss"].iloc[-1] < result.history["loss"].iloc[0]


def test_in_a_notebook_the_loss_curve_redraws_in_place(lora, tiny, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr("labkit.training.loop.in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj))
    train(lora, tiny[1], _ids(), num_steps=4, batch_size=2, seq_len=8, lr=1e-2, progress=False, live_plot=True)
    (widget,) = shown  # displayed once, then updated
    assert type(widget).__name__ == "FigureWidget"
    assert list(widget.data[0].x) == [1, 2, 3, 4] and len(widget.data[0].y) == 4


def test_outside_notebooks_nothing_is_displayed(lora, tiny, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj))
    train(lora, tiny[1], _ids(), num_steps=2, batch_size=2, seq_len=8, progress=False, live_plot=True)
    assert shown == []


def test_exact_memory_is_asked_of_the_meter_only_when_wanted(lora, tiny, monkeypatch):
    from labkit import meters

    asked = []
    real = meters.measure_peak_memory
    monkeypatch.setattr(meters, "measure_peak_memory", lambda **kw: asked.append(kw) or real(pin_allocator=False))
    train(lora, tiny[1], _ids(), num_steps=1, batch_size=2, seq_len=8, **QUIET)
    result = train(lora, tiny[1], _ids(), num_steps=1, batch_size=2, seq_len=8, exact_memory=True, **QUIET)
    assert asked == [{"pin_allocator": False}, {"pin_allocator": True}]
    assert result.settings["exact_memory"] is True
