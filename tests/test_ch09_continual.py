"""Lab 09's continual learning and merging: backward transfer, replay mixing, the anchored loop learning on the
real SmolLM2, per-task adapters that train one at a time, peft merges, the router, and their errors."""

import math

import pytest
import torch

import labkit as lk
from labkit.chapters.ch09_future import continual, merging
from labkit.chapters.ch09_future.panel import futures_panel
from labkit.core import LabkitError


@pytest.fixture(scope="module")
def small_tasks():
    return continual.make_tasks(continual.DEFAULT_TASKS[:2], train_per_task=8, test_per_task=2)


@pytest.fixture(scope="module")
def tiny_adapters(small_tasks):
    return continual.train_task_adapters("tiny-llama", small_tasks, num_steps=1, batch_size=2, seq_len=96)


def test_backward_transfer_of_a_hard_coded_matrix():
    assert math.isclose(continual.backward_transfer([[0.8, 0.1, 0.2], [0.5, 0.9, 0.1], [0.4, 0.6, 0.7]]), -0.35)
    assert continual.backward_transfer([[0.5, 0.0], [0.5, 0.9]]) == 0.0
    with pytest.raises(LabkitError, match="square"):
        continual.backward_transfer([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])


def test_replay_mix_and_task_errors(small_tasks):
    a, b = small_tasks.train[small_tasks.names[0]], small_tasks.train[small_tasks.names[1]]
    mixed = continual.replay_mix(b, a, 0.25)
    assert len(mixed) == len(b) + 2 and sum(r in a for r in mixed) == 2
    assert continual.replay_mix(a, [], 0.5) != [] and len(continual.replay_mix(a, [], 0.5)) == len(a)
    with pytest.raises(LabkitError, match=r"\[0, 1\]"):
        continual.replay_mix(b, a, 1.5)
    with pytest.raises(LabkitError, match="instruction families"):
        continual.make_tasks(["poetry", "sort_list"])
    with pytest.raises(LabkitError, match="remedy"):
        continual.sequential("tiny-llama", small_tasks, remedy="magic")


def test_each_task_adapter_trains_alone_and_the_router_routes(tiny_adapters, small_tasks):
    model, tokenizer, _ = tiny_adapters
    assert set(model.peft_config) == set(small_tasks.names)
    model.set_adapter(small_tasks.names[1])
    trainable = {n.split(".")[-2] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {small_tasks.names[1]}
    router = continual.AdapterRouter(small_tasks)
    assert router.accuracy(small_tasks) == 1.0
    run = continual.per_task_run(model, tokenizer, small_tasks, router, {n: 0.0 for n in small_tasks.names},
                                 seq_len=96)
    assert run.bwt == 0.0  # a perfect router sends each task to its own, untouched adapter
    with pytest.raises(LabkitError, match="No adapter called 'nope'"):
        continual.use_adapter(model, "nope")


@pytest.mark.parametrize("method", list(merging.METHODS))
def test_peft_merges_add_an_adapter_and_score_every_task(tiny_adapters, small_tasks, method):
    model = tiny_adapters[0]
    name = merging.merge(model, small_tasks.names, [0.5, 0.5], method=method)
    assert name in model.peft_config and model.active_adapter == name
    model.set_adapter(small_tasks.names[0])
    model.delete_adapter(name)


def test_merge_errors(tiny_adapters, small_tasks):
    model = tiny_adapters[0]
    with pytest.raises(LabkitError, match="one number per adapter"):
        merging.merge(model, small_tasks.names, [1.0])
    with pytest.raises(LabkitError, match="not loaded"):
        merging.merge(model, ["missing"], [1.0])
    with pytest.raises(LabkitError, match="Unknown merge method"):
        merging.merge(model, small_tasks.names, [0.5, 0.5], method="average")
    with pytest.raises(LabkitError, match="density"):
        merging.merge(model, small_tasks.names, [0.5, 0.5], method="ties", density=0)


def test_compare_merges_and_the_panel_merge_part(tiny_adapters, small_tasks):
    model, tokenizer, _ = tiny_adapters
    table = merging.compare_merges(model, tokenizer, small_tasks, seq_len=96)
    assert len(table) == 2 + 3 and ((table[small_tasks.names] > 0) & (table[small_tasks.names] <= 1)).all().all()
    panel = futures_panel(model.config, merge_model=model, tokenizer=tokenizer, tasks=small_tasks, seq_len=96)
    panel.part.value = "merge"
    panel.method.value = "ties"
    assert set(panel.scores) == set(small_tasks.names)
    assert "panel_merge" not in model.peft_config


def test_anchored_ewc_loop_learns_on_smollm2(small_tasks):
    model, tokenizer = lk.load_model("smollm2-135m")
    model = lk.apply_method(model, "lora", rank=8)
    rows = small_tasks.train[small_tasks.names[0]]
    before = continual.score_tasks(model, tokenizer, small_tasks, seq_len=96)[small_tasks.names[0]]  # as the lab
    fisher = continual.diagonal_fisher(model, tokenizer, rows, seq_len=96, max_batches=1)
    anchor = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert set(fisher) == set(anchor) and all(torch.isfinite(f).all() for f in fisher.values())
    losses = continual.anchored_train(model, tokenizer, rows, anchor=anchor, weight=fisher, strength=1e4,
                                      num_steps=2, batch_size=4, seq_len=96)
    after = continual.score_tasks(model, tokenizer, small_tasks, seq_len=96)[small_tasks.names[0]]
    assert after > 1.5 * before, (before, after, losses)
    with pytest.raises(LabkitError, match="strength"):
        continual.anchored_train(model, tokenizer, rows, anchor=anchor, weight=None, strength=-1, num_steps=1)
