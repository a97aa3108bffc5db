"""Plots: every function returns a plotly Figure with the expected traces and refuses malformed input."""

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from labkit import plots
from labkit.core import LabkitError
from labkit.meters import PeakMemory, compare_costs, param_table, predict_memory, sweep_memory
from labkit.units import MIB

CFG = "HuggingFaceTB/SmolLM2-135M"


def test_memory_breakdown_stacks_predicted_and_shows_measured():
    est = predict_memory(CFG, "lora")
    fig = plots.memory_breakdown(est, measured=PeakMemory(peak_bytes=est.total))
    assert isinstance(fig, go.Figure) and fig.layout.barmode == "stack"
    names = [t.name for t in fig.data]
    assert names == ["weights", "gradients", "optimizer", "activations", "overhead", "measured peak"]
    assert fig.layout.yaxis.title.text == "memory (GiB)"
    assert sum(t.y[0] for t in fig.data[:5]) == pytest.approx(est.total_gib)
    assert fig.data[5].y[0] == pytest.approx(est.total_gib)


def test_memory_breakdown_several_runs_and_small_units():
    runs = {"lora": predict_memory("tiny-llama", "lora"), "full": predict_memory("tiny-llama", "full")}
    fig = plots.memory_breakdown(runs, measured={"lora": 400 * MIB})
    assert list(fig.data[0].x) == ["lora predicted", "full predicted"] and list(fig.data[-1].x) == ["lora measured"]
    assert fig.layout.yaxis.title.text == "memory (MiB)" and fig.data[-1].y[0] == pytest.approx(400)
    with pytest.raises(LabkitError, match="same labels"):
        plots.memory_breakdown(runs, measured={"dora": 1})
    with pytest.raises(LabkitError, match="MemoryEstimate"):
        plots.memory_breakdown(123)
    with pytest.raises(LabkitError, match="bytes"):
        plots.memory_breakdown(runs["lora"], measured="a lot")


def test_memory_sweep_stacked_and_per_method():
    one = sweep_memory(CFG, "lora", vary="rank", values=[4, 8, 16])
    fig = plots.memory_sweep(one, x="rank")
    assert [t.stackgroup for t in fig.data] == ["memory"] * 5 and list(fig.data[0].x) == [4, 8, 16]
    several = sweep_memory(CFG, ["lora", "full"], vary="batch_size", values=[1, 2, 4])
    fig = plots.memory_sweep(several, x="batch_size")
    assert [t.name for t in fig.data] == ["lora", "full"]
    assert list(fig.data[1].y) == list(several[several["method"] == "full"]["total_gib"])
    with pytest.raises(LabkitError, match="seq_len"):
        plots.memory_sweep(one, x="seq_len")


def test_cost_comparison_marks_setups_that_do_not_fit():
    table = compare_costs("meta-llama/Llama-3.1-8B", 1e8, hardware=["T4", "H100"])
    fig = plots.cost_comparison(table)
    assert fig.layout.barmode == "group" and [t.name for t in fig.data] == ["full", "lora", "qlora"]
    full = fig.data[0]
    assert list(full.marker.pattern.shape) == ["x", "x"]  # 8B full fine-tuning fits on neither
    assert list(fig.data[2].marker.pattern.shape) == ["", ""]  # QLoRA fits on both
    with pytest.raises(LabkitError, match="cost_usd"):
        plots.cost_comparison(pd.DataFrame({"method": ["lora"]}))


def test_loss_curves_train_and_eval():
    hist = pd.DataFrame({"step": [1, 2, 3], "loss": [3.0, 2.5, 2.0], "eval_loss": [None, None, 2.2]})
    fig = plots.loss_curves({"lora": hist, "full": hist[["step", "loss"]]})
    assert [t.name for t in fig.data] == ["lora", "lora (eval)", "full"]
    assert list(fig.data[1].x) == [3] and fig.data[1].line.dash == "dash"
    with pytest.raises(LabkitError, match="loss"):
        plots.loss_curves({"bad": pd.DataFrame({"step": [1]})})
    with pytest.raises(LabkitError, match="non-empty"):
        plots.loss_curves({})


def test_param_breakdown_from_param_table():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, vocab_size=100))
    for name, p in model.named_parameters():
        p.requires_grad_("norm" in name)
    fig = plots.param_breakdown(param_table(model))
    assert fig.layout.xaxis.type == "log" and [t.name for t in fig.data] == ["total", "trainable"]
    trainable = dict(zip(fig.data[1].y, fig.data[1].x))
    assert trainable["norms"] == 3 * 32 and pd.isna(trainable["mlp"]) and torch.is_tensor(torch.ones(1))
    with pytest.raises(LabkitError, match="trainable"):
        plots.param_breakdown(pd.DataFrame({"total": [1]}))


def test_use_best_renderer_never_fails():
    before = pio.renderers.default
    try:
        assert plots.use_best_renderer(colab=True) == "colab"
        pio.renderers.default = before
        assert plots.use_best_renderer(colab=False) == before  # not in Jupyter here: left alone
    finally:
        pio.renderers.default = before


def test_on_colab_third_party_widgets_are_switched_on(monkeypatch):
    """plotly's FigureWidget needs Colab's custom widget manager; setup asks for it on Colab only."""
    import sys
    import types

    calls = []
    output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append("on"))
    colab = types.ModuleType("google.colab")
    colab.output = output
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    before = pio.renderers.default
    try:
        plots.use_best_renderer(colab=False)
        assert calls == []
        plots.use_best_renderer(colab=True)
        assert calls == ["on"]
    finally:
        pio.renderers.default = before
