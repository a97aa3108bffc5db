"""The method explorer without a browser: set controls from code, check readout and figures follow."""

import re

import datasets
import pytest
import torch

from labkit.models import load_model
from labkit.widgets import method_explorer

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models run fastest on one thread (conftest)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama")


@pytest.fixture(autouse=True)
def keep_the_allocator(monkeypatch):
    """The explorer measures with exact_memory, which would change malloc for the rest of the test process."""
    monkeypatch.setattr("labkit.meters.measure.pin_glibc_allocator", lambda: False)


@pytest.fixture()
def explorer(tiny):
    data = datasets.Dataset.from_dict({"instruction": ["Who keeps the north light?", "Name the ferry."] * 4,
                                       "answer": ["Maren Holt", "The Gull"] * 4})
    return method_explorer("tiny-llama", model=tiny[0], tokenizer=tiny[1], train_data=data)


def no_model_work(monkeypatch, explorer, what):
    """Moving a control must not train, load or run a model: each of those fails the test."""
    def fail(*args, **kwargs):
        pytest.fail(f"{what} touched a model")

    monkeypatch.setattr("labkit.training.train", fail)
    monkeypatch.setattr("labkit.models.load_model", fail)
    monkeypatch.setattr(explorer, "_fresh_model", fail)
    monkeypatch.setattr(torch.nn.Module, "__call__", fail)


def value(explorer, cls):
    """The data-value of a readout span, as a browser test reads it."""
    match = re.search(rf'class="{cls}" data-value="([^"]*)"', explorer.readout.value)
    return None if match is None else float(match.group(1))


def bars(fig):
    return [tuple(trace.y) for trace in fig.data if trace.type == "bar"]


def test_doubling_the_lora_rank_doubles_the_lora_parameters(explorer):
    explorer.targets.value = ("q_proj", "v_proj")
    explorer.rank.value = 4
    assert value(explorer, "lk-trainable") == 2 * 4 * (128 + 96)  # tiny-llama: q 64->64, v 64->32, 2 layers
    explorer.rank.value = 8
    assert value(explorer, "lk-trainable") == 2 * 8 * (128 + 96)
    assert value(explorer, "lk-adapter-bytes") == 4 * 2 * 8 * (128 + 96)


def test_controls_move_the_readout_and_the_memory_figure(explorer):
    before_bars, before_mem = bars(explorer.memory_fig), value(explorer, "lk-mem-total")
    explorer.batch_size.value = 32
    assert bars(explorer.memory_fig) != before_bars
    assert value(explorer, "lk-mem-total") > before_mem
    cost = value(explorer, "lk-cost")
    other = next(h for h in explorer.hardware.options if h != explorer.hardware.value)
    explorer.hardware.value = other
    assert value(explorer, "lk-cost") != cost
    targets = value(explorer, "lk-trainable")
    explorer.targets.value = ("q_proj", "k_proj", "v_proj", "o_proj")
    assert value(explorer, "lk-trainable") > targets


def test_method_choice_changes_what_the_slider_means(explorer):
    explorer.method.value = "full"
    assert explorer.rank.disabled and explorer.targets.disabled
    assert value(explorer, "lk-trainable") == 3_219_776
    assert value(explorer, "lk-trainable-pct") == 100.0
    explorer.method.value = "prompt"
    explorer.rank.value = 10
    assert not explorer.rank.disabled and explorer.targets.disabled
    assert value(explorer, "lk-trainable") == 10 * 64
    assert "num_virtual_tokens" in explorer.hint.value


# What the "rank" slider sets and whether targets can be picked, per method (hard-coded, read from the registry).
SLIDER = {"lora": "rank", "dora": "rank", "qlora": "rank", "adapter": "bottleneck", "prefix": "num_virtual_tokens",
          "prompt": "num_virtual_tokens"}
TARGETED = {"lora", "dora", "qlora", "ia3"}


def test_every_method_sets_the_controls_its_registry_entry_names(explorer):
    assert list(explorer.method.options)[:2] == ["full", "lora"]
    for name in explorer.method.options:
        explorer.method.value = name
        kwargs = explorer.method_kwargs()
        assert explorer.rank.disabled == (name not in SLIDER), name
        assert explorer.targets.disabled == (name not in TARGETED), name
        assert set(kwargs) == ({SLIDER[name]} if name in SLIDER else set()) | (
            {"target_modules"} if name in TARGETED else set()) | ({"num_labels"} if name == "linear_probe" else set())
        assert SLIDER.get(name, "nothing for this method") in explorer.hint.value


@pytest.mark.parametrize("name, lr", [("lora", 1e-3), ("prompt", 3e-2), ("full", 5e-5)])
def test_a_run_trains_at_the_registry_learning_rate(name, lr, explorer, monkeypatch):
    from labkit.core import LabkitError

    seen = {}

    def fake_train(*args, **kwargs):
        seen.update(kwargs)
        raise LabkitError("stopped by the test")

    monkeypatch.setattr("labkit.training.train", fake_train)
    explorer.method.value = name
    assert explorer.train_now(1) is None and "stopped by the test" in explorer.status.value
    assert seen["lr"] == lr


def test_quantizing_the_base_shrinks_the_predicted_weights(explorer):
    full_precision = value(explorer, "lk-mem-total")
    bars_before = bars(explorer.memory_fig)
    explorer.quantization.value = "nf4"
    assert value(explorer, "lk-mem-total") < full_precision
    assert bars(explorer.memory_fig) != bars_before
    explorer.quantization.value = "none"
    explorer.method.value = "qlora"
    assert explorer.quantization.value == "nf4"  # QLoRA means a 4-bit base


def test_training_adds_a_run_and_returning_to_its_setting_shows_it(explorer, monkeypatch):
    explorer.rank.value = 4
    explorer.seq_len.value = 64
    assert "lk-run-none" in explorer.readout.value
    result = explorer.train_now(2)
    assert result is not None and len(explorer.runs) == 1
    assert len(explorer.loss_fig.data) == 1 and len(explorer.loss_fig.data[0].y) == 2
    row = explorer.runs.iloc[0]
    assert row["method"] == "lora" and row["rank"] == 4 and row["num_steps"] == 2
    assert row["train_peak_mem_gib"] == pytest.approx(result.peak_mem_gib)
    assert row["peak_mem_gib"] >= row["train_peak_mem_gib"] - 0.01  # the whole run: weights copy plus training
    assert 7_000 < row["stored_bytes"] < 9_000  # the saved adapter file, measured on disk
    assert value(explorer, "lk-run-mem") == pytest.approx(row["peak_mem_gib"], abs=1e-4)
    explorer.rank.value = 16
    assert "lk-run-none" in explorer.readout.value
    no_model_work(monkeypatch, explorer, "returning to a stored run")  # it comes back without training
    explorer.rank.value = 4
    assert len(explorer.runs) == 1 and value(explorer, "lk-run-mem") == pytest.approx(row["peak_mem_gib"], abs=1e-4)
    assert "lk-runs" in explorer.table.value


def test_impossible_settings_are_explained_in_the_readout(explorer):
    explorer.targets.value = ()
    assert "lk-error" in explorer.readout.value and value(explorer, "lk-trainable") == 0
    explorer.targets.value = ("q_proj",)
    explorer.method.value = "full"
    explorer.quantization.value = "nf4"
    assert "cannot be quantized" in explorer.readout.value
    explorer.quantization.value = "none"
    assert "lk-error" not in explorer.readout.value


def test_a_refused_run_explains_itself_and_adds_nothing(explorer):
    explorer.method.value = "bitfit"
    assert explorer.train_now(1) is None
    assert "lk-error" in explorer.status.value and "norm" in explorer.status.value
    explorer.method.value = "adapter"
    explorer.quantization.value = "nf4"
    assert explorer.train_now(1) is None
    assert "cannot train on a nf4 base: pick lora or qlora" in explorer.status.value
    assert len(explorer.runs) == 0


def test_an_analytic_update_touches_no_model(explorer, monkeypatch):
    """Moving a control only recomputes formulas (benchmarks/widget_latency.py times it)."""
    no_model_work(monkeypatch, explorer, "an analytic update")
    seen = []
    for rank in (2, 4, 8, 16, 32):
        explorer.rank.value = rank
        seen.append(value(explorer, "lk-trainable"))
    assert seen == sorted(seen) and len(set(seen)) == 5  # the readout followed every move


def test_explorer_for_the_real_model_uses_only_its_config():
    explorer = method_explorer("smollm2-135m")
    assert value(explorer, "lk-trainable") == 30 * 8 * (576 * 2 + 576 + 192)  # LoRA r=8 on q_proj and v_proj
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_the_snapshot_stands_in_where_widgets_cannot_be_drawn(explorer):
    """An HTML export has no widget state, so nbconvert shows the text/html snapshot: the live numbers, as text."""
    import nbformat
    from nbconvert import HTMLExporter

    explorer.rank.value = 4
    before = explorer._repr_mimebundle_()
    explorer.rank.value = 16
    after = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in after
    assert before["text/html"] != after["text/html"]
    trainable = f"{int(value(explorer, 'lk-trainable')):,}"
    cell = nbformat.v4.new_code_cell("explorer")
    cell.outputs = [nbformat.v4.new_output("display_data", data=after)]
    page, _ = HTMLExporter().from_notebook_node(nbformat.v4.new_notebook(cells=[cell]))
    assert trainable in page and "static snapshot" in page
