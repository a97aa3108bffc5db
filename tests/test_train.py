"""The training loop: loss falls, seeded runs repeat, accumulation and checkpointing agree, bad input refused."""

import copy
import dataclasses
import math

import datasets
import pytest
import torch

import labkit as lk
from labkit import LabkitError, apply_method
from labkit.models import bitsandbytes_works, load_model
from labkit.training import TrainConfig, evaluate_exact_match, evaluate_loss, train
from labkit.training import evaluate as evaluate_module

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


def test_accumulation_weights_micro_batches_by_their_label_tokens(tiny):
    # lengths 3..16: a plain mean of micro-batch means would weight a 3-token example like a 16-token one (trl#2175)
    gen = torch.Generator().manual_seed(1)
    ragged = datasets.Dataset.from_dict({"input_ids": [torch.randint(3, 5000, (n,), generator=gen).tolist()
                                                       for n in (3, 16, 5, 12, 4, 16, 7, 9)]})

    def run(batch_size, grad_accum):
        model = apply_method(copy.deepcopy(tiny[0]), "lora", rank=4)
        return train(model, tiny[1], ragged, num_steps=3, batch_size=batch_size, grad_accum=grad_accum,
                     seq_len=16, lr=1e-2, optimizer="sgd", **QUIET).history["loss"].tolist()

    # fp32 sums in another order: agreement to ~1e-6 relative, far below the ~10% a wrong weighting makes here
    assert run(1, 4) == pytest.approx(run(4, 1), rel=1e-4)


def test_loss_items_counts_what_the_mean_loss_averages():
    from labkit.training.loop import loss_items

    labels = torch.tensor([[5, 6, 7, -100], [8, -100, -100, -100]])  # shifted: 6, 7 and nothing
    assert loss_items({"labels": labels}) == 2
    assert loss_items({"labels": torch.tensor([0, 2, 1])}) == 3  # a classifier: one term per example


def test_gradient_checkpointing_gives_the_same_losses(tiny):
    def run(checkpointing):
        model = apply_method(copy.deepcopy(tiny[0]), "lora", rank=4)
        return train(model, tiny[1], _ids(), num_steps=2, batch_size=2, seq_len=16, lr=1e-2,
                     grad_checkpointing=checkpointing, **QUIET).history["loss"].tolist()

    assert run(True) == pytest.approx(run(False), abs=1e-5)


def test_checkpointing_uses_the_current_name_and_works_under_a_linear_probe(tiny):
    """transformers 5.23 warns (FutureWarning, gone in v6) on gradient_checkpointing_enable; a linear probe's
    wrapper had no way to turn checkpointing off, so its run broke after the last step."""
    import warnings

    from labkit.models import set_checkpointing

    model = copy.deepcopy(tiny[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        set_checkpointing(model, True)
        assert model.is_activation_checkpointing
        set_checkpointing(model, False)
        assert not model.is_activation_checkpointing
        probe = apply_method(copy.deepcopy(tiny[0]), "linear_probe", labels=["a", "b"])
        data = datasets.Dataset.from_dict({"text": ["red red red", "blue blue blue"] * 2, "label": ["a", "b"] * 2})
        losses = [train(probe, tiny[1], data, num_steps=2, batch_size=2, seq_len=8, lr=5e-2, seed=0,
                        grad_checkpointing=on, **QUIET).history["loss"].tolist() for on in (True, False)]
    assert not probe.backbone.is_activation_checkpointing  # off again after the run
    assert len(losses[0]) == 2
    with pytest.raises(LabkitError, match="does not support gradient checkpointing"):
        set_checkpointing(torch.nn.Linear(2, 2), True)


def test_periodic_evaluation_fills_eval_columns(lora, tiny):
    result = train(lora, tiny[1], _ids(), num_steps=4, batch_size=2, seq_len=16, lr=1e-2, eval_data=_ids(4, seed=1),
                   eval_every=2, **QUIET)
    evaluated = result.history.dropna(subset=["eval_loss"])
    assert list(evaluated["step"]) == [2, 4]
    assert evaluated["eval_perplexity"].tolist() == pytest.approx([math.exp(x) for x in evaluated["eval_loss"]])
    assert result.eval_loss == evaluated["eval_loss"].iloc[-1]


def test_early_stopping_stops_after_patience_and_puts_the_best_weights_back(lora, tiny, monkeypatch):
    scripted = iter([3.0, 2.0, 2.5, 2.6, 1.0])  # the best is the 2nd evaluation; patience 2 stops at the 4th
    seen = {}

    def fake_eval(model, *args, **kwargs):
        seen[len(seen) + 1] = [p.detach().clone() for p in model.parameters() if p.requires_grad]
        return {"eval_loss": next(scripted)}

    monkeypatch.setattr("labkit.training.loop.run_eval", fake_eval)
    result = train(lora, tiny[1], _ids(), num_steps=10, batch_size=2, seq_len=16, lr=1e-2, eval_data=_ids(4, seed=1),
                   eval_every=1, early_stopping_patience=2, **QUIET)
    assert (result.num_steps, result.best_step, result.stopped_early) == (4, 2, True)
    assert list(result.history["step"]) == [1, 2, 3, 4] and result.history["eval_loss"].tolist() == [3, 2, 2.5, 2.6]
    now = [p for p in lora.parameters() if p.requires_grad]
    assert all(torch.equal(a, b) for a, b in zip(now, seen[2]))  # the weights of step 2, not of step 4
    assert not all(torch.equal(a, b) for a, b in zip(now, seen[4]))


def test_early_stopping_without_evaluations_is_refused(lora, tiny):
    with pytest.raises(LabkitError, match="early_stopping_patience needs evaluations during training: set eval_every"):
        TrainConfig(early_stopping_patience=2)
    with pytest.raises(LabkitError, match="early_stopping_patience watches the evaluation loss: pass eval_data"):
        train(lora, tiny[1], _ids(), num_steps=2, eval_every=1, early_stopping_patience=1, **QUIET)
    result = train(lora, tiny[1], _ids(), num_steps=2, batch_size=2, seq_len=16, eval_data=_ids(4, seed=1),
                   eval_every=1, early_stopping_patience=5, **QUIET)  # patience never runs out: every step runs
    assert (result.num_steps, result.stopped_early) == (2, False) and result.best_step in (1, 2)


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
    assert result.config.optimizer == "adamw8bit"  # recorded as it ran
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
    with pytest.raises(LabkitError, match="lr must be a positive number"):
        train(lora, tiny[1], _ids(), num_steps=1, lr=0, **QUIET)
    with pytest.raises(LabkitError, match="Unknown mixed_precision"):
        train(lora, tiny[1], _ids(), num_steps=1, mixed_precision="fp8", **QUIET)


@pytest.mark.requires_gpu
def test_mixed_precision_on_a_gpu(tiny):
    model = apply_method(copy.deepcopy(tiny[0]).cuda(), "lora", rank=4)
    result = train(model, tiny[1], _ids(), num_steps=3, batch_size=4, seq_len=16, lr=2e-2, **QUIET)
    assert result.history["loss"].iloc[-1] < result.history["loss"].iloc[0]
    assert result.config.mixed_precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")  # "auto" as run


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


# ---- TrainConfig ----

# (field, a wrong value, the start of its message, a right value): every field is checked, each check fires on the
# wrong value and lets the right one through
CHECKS = [
    ("objective", "regression", "Unknown objective 'regression': use 'auto' or one of causal_lm", "sft"),
    ("num_steps", 0, r"num_steps must be a positive whole number \(e.g. num_steps=20\), got 0", 1),
    ("num_steps", 2.5, "num_steps must be a positive whole number", 2),
    ("batch_size", -1, "batch_size must be a positive whole number", 1),
    ("seq_len", True, "seq_len must be a positive whole number", 8),
    ("grad_accum", 0, "grad_accum must be a positive whole number", 2),
    ("lr", 0, r"lr must be a positive number, or None for the registered default of the method", 1e-3),
    ("lr", float("nan"), "lr must be a positive number", None),
    ("lr", "1e-3", "lr must be a positive number", 1),
    ("eval_every", 0, "eval_every must be a positive whole number or None", 5),
    ("eval_limit", -5, "eval_limit must be a positive whole number or None", None),
    ("grad_checkpointing", "yes", "grad_checkpointing must be True or False", True),
    ("optimizer", "lion", "Unknown optimizer 'lion': use one of adamw, adamw8bit, paged_adamw8bit, sgd", "sgd"),
    ("weight_decay", -0.1, r"weight_decay must be 0 \(off\) or a positive number", 0.1),
    ("warmup_steps", 21, r"warmup_steps must be a whole number from 0 to num_steps \(20\), got 21", 20),
    ("warmup_steps", -1, "warmup_steps must be a whole number from 0", 0),
    ("schedule", "cos", "Unknown schedule 'cos': use one of constant, constant_with_warmup, linear, cosine", "cosine"),
    ("max_grad_norm", 0, "max_grad_norm must be a positive number, or None to turn clipping off", None),
    ("mixed_precision", "fp8", "Unknown mixed_precision 'fp8': use one of auto, no, bf16, fp16", "bf16"),
    ("seed", "abc", r"seed must be a whole number from 0 to 2\*\*32 - 1, e.g. seed=0; got 'abc'", 2**32 - 1),
    ("seed", -1, "seed must be a whole number", 7),
    ("live_plot", None, "live_plot must be True or False", False),
    ("progress", 1, "progress must be True or False", False),
    ("label", 3, "label must be a string", "3"),
    ("report_to", "wandb", "report_to must be one of .none., .tensorboard. \\(the kit.s tracker is TensorBoard\\)",
     "tensorboard"),
    ("exact_memory", "no", "exact_memory must be True or False", True),
    ("live_memory", 1, "live_memory must be True or False", True),
    ("early_stopping_patience", 0, "early_stopping_patience must be a positive whole number or None", None),
]


def test_every_train_config_field_is_checked():
    assert {name for name, *_ in CHECKS} == {f.name for f in dataclasses.fields(TrainConfig)}


@pytest.mark.parametrize("name, wrong, message, right", CHECKS, ids=[f"{c[0]}={c[1]!r}" for c in CHECKS])
def test_train_config_refuses_a_wrong_value_and_says_what_to_use(name, wrong, message, right):
    with pytest.raises(LabkitError, match=f"^{message}"):
        TrainConfig(**{name: wrong})
    assert getattr(TrainConfig(**{name: right}), name) == right
    cfg = TrainConfig()
    setattr(cfg, name, wrong)  # set after creation: checked again when it is copied (as lk.train does)
    with pytest.raises(LabkitError, match=f"^{message}"):
        dataclasses.replace(cfg)


def test_train_takes_keywords_or_a_config_but_not_both(lora, tiny):
    keywords = {"num_steps": 2, "batch_size": 2, "seq_len": 8, "lr": 1e-2, "schedule": "linear", **QUIET}
    state = copy.deepcopy(lora.state_dict())
    by_keywords = train(lora, tiny[1], _ids(), **keywords)
    lora.load_state_dict(state)
    cfg = TrainConfig(**keywords)
    by_config = train(lora, tiny[1], _ids(), config=cfg)
    assert by_config.history["loss"].tolist() == pytest.approx(by_keywords.history["loss"].tolist(), rel=1e-4)
    assert by_config.config == by_keywords.config
    assert train(lora, tiny[1], _ids(), cfg).num_steps == 2  # the config may come fourth, unnamed

    with pytest.raises(LabkitError, match=r"either in config or as keywords, not both \(lr=..., seed=... was given"
                                          r" with config\): use config=dataclasses.replace\(config, lr=..., seed=...\)"):
        train(lora, tiny[1], _ids(), config=cfg, lr=1e-3, seed=1)
    with pytest.raises(LabkitError, match="lk.train has no setting 'num_step': did you mean 'num_steps'"):
        train(lora, tiny[1], _ids(), num_step=2, **QUIET)
    with pytest.raises(LabkitError, match="config must be a TrainConfig, got dict"):
        train(lora, tiny[1], _ids(), config={"num_steps": 2})


def test_the_result_records_the_whole_config_as_run(lora, tiny):
    cfg = TrainConfig(num_steps=3, batch_size=2, seq_len=8, lr=1e-2, grad_accum=2, schedule="cosine", warmup_steps=1,
                      weight_decay=0.1, max_grad_norm=0.5, mixed_precision="no", optimizer="sgd", seed=4, label="cos",
                      **QUIET)
    result = train(lora, tiny[1], _ids(), config=cfg)
    assert result.config == dataclasses.replace(cfg, objective="causal_lm")  # "auto" resolved, the rest as given
    assert cfg.objective == "auto"  # the caller's config is not changed
    assert result.history["lr"].tolist() == pytest.approx([0.0, 1e-2, 5e-3])  # warmup, then half a cosine
    assert result.label == "cos"
    assert result.settings == dataclasses.asdict(result.config)  # the plain-dict view notebooks read
    assert result.settings["schedule"] == "cosine" and result.settings["max_grad_norm"] == 0.5


def test_a_constant_schedule_with_warmup_warms_up(lora, tiny):
    result = train(lora, tiny[1], _ids(), num_steps=3, batch_size=2, seq_len=8, lr=1e-2, warmup_steps=2, **QUIET)
    assert result.history["lr"].tolist() == pytest.approx([0.0, 5e-3, 1e-2])
    assert result.config.schedule == "constant" and result.config.scheduler_name == "constant_with_warmup"


def test_lr_none_is_the_registered_default_of_the_applied_method(lora, tiny):
    result = train(lora, tiny[1], _ids(), num_steps=1, batch_size=2, seq_len=8, **QUIET)
    assert result.config.lr == 1e-3  # lora's registered default_lr
    assert result.history["lr"].tolist() == [1e-3]
    assert TrainConfig().lr is None
    on_cuda = next(lora.parameters()).device.type == "cuda"
    assert result.config.mixed_precision == ("no" if not on_cuda else "bf16" if torch.cuda.is_bf16_supported()
                                             else "fp16")  # "auto" recorded as what ran


def test_lr_none_without_a_method_keeps_2e_4(tiny):
    plain = copy.deepcopy(tiny[0])  # every parameter trainable, no method applied
    result = train(plain, tiny[1], _ids(), num_steps=1, batch_size=2, seq_len=8, **QUIET)
    assert result.config.lr == 2e-4


def test_embed_texts_mean_pools_the_real_tokens_and_refuses_nothing(one_thread):
    import numpy as np
    import torch

    from labkit.training import embed_texts

    model, tokenizer = lk.load_model("tiny-llama")
    model.train()
    texts = ["Feed Pip the dragon.", "Book a flight to the Duskwood Clearing tomorrow at noon.", "Hi",
             "Heal the griffin."]  # batched by length (Hi with Heal...), each row back in its text's place
    vectors = embed_texts(model, tokenizer, texts, batch_size=2)
    assert vectors.shape == (4, model.config.hidden_size) and model.training  # its mode comes back
    for text, vector in zip(texts, vectors):
        enc = tokenizer(text, return_tensors="pt")
        with torch.no_grad():  # alone, unpadded: the plain mean of the last hidden state over its tokens
            alone = model(**enc, output_hidden_states=True).hidden_states[-1][0].float().mean(0).numpy()
        np.testing.assert_allclose(vector, alone, rtol=1e-4, atol=1e-5)
    unit = embed_texts(model, tokenizer, texts, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(lk.LabkitError, match="No texts to embed"):
        embed_texts(model, tokenizer, [])
