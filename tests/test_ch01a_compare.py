"""compare_methods on a tiny model: the table's columns and rows, refusals, choice accuracy, rule checks, bad input."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from labkit.chapters.ch01a_paradigms import compare
from labkit.chapters.ch01a_paradigms.compare import (
    COLUMNS,
    CompareConfig,
    Task,
    choice_scores,
    classification_task,
    intent_task,
)
from labkit.core import LabkitError
from labkit.models import load_model

# tiny-llama: hidden 64, MLP 128, 2 layers, 4 heads of 16, 2 key/value heads. LoRA r=8 on all 7 linears:
# per layer 8 * ((64+64) + 2 * (64+32) + (64+64) + 3 * (64+128)) = 8,192 -> 16,384 in total.
TINY_LORA_R8 = 16_384
TINY_PROBE = 64 * 8 + 8  # head on the 64-wide hidden state, 8 intent classes


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama")


@pytest.fixture(scope="module")
def task():
    return intent_task(num_train=16, num_eval=8)


@pytest.fixture(scope="module")
def result(tiny, task):
    model, tokenizer = tiny
    cfg = CompareConfig(methods=["lora", "bitfit", "prompt", "linear_probe", "qlora"], num_steps=2, batch_size=4,
                        seq_len=96, latency_batch_size=2, latency_seq_len=16, latency_repeats=1)
    return compare.compare_methods(task, cfg, model_name="tiny-llama", model=model, tokenizer=tokenizer,
                                   progress=False)


def test_table_has_one_row_per_method_and_every_column(result):
    assert list(result.table.index) == ["lora", "bitfit", "prompt", "linear_probe", "qlora"]
    assert list(result.table.columns) == list(COLUMNS)
    trained = result.table[result.table["status"] == "trained"]
    assert list(trained.index) == ["lora", "prompt", "linear_probe", "qlora"]
    assert set(result.histories) == set(trained.index)
    for column in ("stored_bytes", "weights_gib", "time_per_step_s", "latency_ms", "base_latency_ms"):
        assert (trained[column] > 0).all(), column
    assert trained["quality"].between(0, 1).all() and (trained["eval_loss"] > 0).all()
    assert 0 <= result.baseline["quality"] <= 1 and result.baseline["latency_ms"] > 0
    assert result.baseline["eval_loss"] > 0


def test_live_tensors_are_what_the_prediction_forecasts(result):
    """The table's live-tensor peak (one profiled step) is predict_memory's total less its fixed process overhead,
    within 10% on the CPU (the resident peak, which also holds the allocator's cache, is not)."""
    from labkit.meters.memory import CPU_OVERHEAD_BYTES

    for name in ("lora", "qlora"):
        row = result.table.loc[name]
        assert row["live_mem_gib"] == pytest.approx(row["predicted_mem_gib"] - CPU_OVERHEAD_BYTES / 2**30, rel=0.10)


def test_counts_and_storage_are_exact(result):
    table = result.table
    assert table.loc["lora", "trainable"] == TINY_LORA_R8 == table.loc["qlora", "trainable"]
    assert table.loc["linear_probe", "trainable"] == TINY_PROBE
    assert table.loc["prompt", "trainable"] == 20 * 64  # 20 virtual tokens of width 64
    # safetensors: the fp32 tensors plus a small JSON header
    assert TINY_LORA_R8 * 4 < table.loc["lora", "stored_bytes"] < TINY_LORA_R8 * 4 + 40_000
    total = sum(p.numel() for p in load_model("tiny-llama")[0].parameters())
    assert table.loc["lora", "trainable_pct"] == pytest.approx(100 * TINY_LORA_R8 / (total + TINY_LORA_R8))


def test_refused_method_says_why_and_points_to_its_analogue(result):
    row = result.table.loc["bitfit"]
    assert row["status"] == "not applicable" and row["trainable"] == 0
    assert "bias" in row["note"] and "norm" in row["note"]
    assert math.isnan(row["quality"])


def test_merging_is_measured_where_it_exists(result):
    table = result.table
    assert table.loc["lora", "merged_latency_ms"] > 0
    assert table.loc["lora", "merge_max_diff"] < 1e-3  # an exact merge, up to float rounding
    assert math.isnan(table.loc["prompt", "merged_latency_ms"]) and "not mergeable" in table.loc["prompt", "note"]
    assert table.loc["qlora", "weights_gib"] < table.loc["lora", "weights_gib"]  # a 4-bit base


def test_notes_come_from_the_registry(result):
    from labkit.methods import get_method

    for name in ("lora", "prompt", "linear_probe", "qlora"):
        assert result.table.loc[name, "note"] == get_method(name).note
    assert result.table.loc["lora", "note"] == "merges into W: no extra work at inference once merged"


def test_a_method_left_out_points_to_its_analogue():
    rows = {"bitfit": {"status": "not applicable", "note": "This model has no biases."},
            "norm": {"status": "trained", "note": ""}, "lora": {"status": "not applicable", "note": "Refused."}}
    compare.point_to_analogues(rows)
    assert rows["bitfit"]["note"] == "This model has no biases. Its nearest analogue, 'norm', has a row of its own."
    assert rows["lora"]["note"] == "Refused." and rows["norm"]["note"] == ""  # no analogue, or trained
    alone = {"bitfit": {"status": "not applicable", "note": "No biases."}}
    compare.point_to_analogues(alone)
    assert alone["bitfit"]["note"] == "No biases."  # the analogue has no row to point to


def test_learning_rates_come_from_the_registry():
    cfg = CompareConfig(lr={"lora": 5e-4})
    assert cfg.lr_for("lora") == 5e-4  # given
    assert (cfg.lr_for("full"), cfg.lr_for("dora"), cfg.lr_for("prompt"), cfg.lr_for("linear_probe")) == \
        (5e-5, 1e-3, 3e-2, 3e-3)  # the registry's default_lr, tried on the intents in lab 01a


def test_view_and_plot(result):
    view = result.view()
    assert "% params updated" in view.columns and len(view) == 5
    assert {trace.name for trace in result.plot().data} >= {"lora", "linear_probe"}


def test_answer_first_tokens_are_distinct_for_intents(tiny, task):
    firsts = compare.answer_first_tokens(tiny[1], task.labels)
    assert len(set(firsts)) == len(task.labels) == 8


class FixedChoice(torch.nn.Module):
    """Always ranks one token first at the last real position; ``offset`` virtual tokens sit in front."""

    def __init__(self, token: int, decoy: int, offset: int = 0):
        super().__init__()
        self.token, self.decoy, self.offset = token, decoy, offset
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask):
        b, s = input_ids.shape
        logits = torch.zeros(b, self.offset + s, 50_000)
        logits[:, :, self.decoy] = 5.0  # every other position prefers the decoy
        last = attention_mask.sum(1) - 1 + self.offset
        logits[torch.arange(b), last, self.token] = 10.0
        return SimpleNamespace(logits=logits)


@pytest.mark.parametrize("offset", [0, 3])
def test_choice_scores_read_the_last_real_position(tiny, task, offset):
    tokenizer = tiny[1]
    firsts = compare.answer_first_tokens(tokenizer, task.labels)
    label = task.eval[0]["answer"]
    chosen, decoy = task.labels.index(label), task.labels.index(label) - 1
    hits = sum(a == label for a in task.eval["answer"])
    model = FixedChoice(firsts[chosen], firsts[decoy], offset)
    found = choice_scores(model, tokenizer, task.eval, task.labels, batch_size=3)
    assert found["accuracy"] == pytest.approx(hits / len(task.eval))
    # Scores over the 8 labels at the last real token: 10 for the chosen label, 5 for the decoy, 0 for the rest.
    row = torch.zeros(8)
    row[chosen], row[decoy] = 10.0, 5.0
    nll = -torch.log_softmax(row, 0)
    expected = sum(nll[task.labels.index(a)].item() for a in task.eval["answer"]) / len(task.eval)
    assert found["loss"] == pytest.approx(expected, rel=1e-5)


def test_rule_checks_compare_with_the_chapter():
    table = pd.DataFrame({
        "trainable_pct": [100.0, 0.5, 0.5, 1.2], "latency_overhead_pct": [0.0, 30.0, 30.0, 12.0],
        "merged_latency_ms": [math.nan, 10.2, 20.0, math.nan], "base_latency_ms": [10.0, 10.0, 20.0, 10.0],
        "weights_gib": [0.5, 0.5, 0.15, 0.5], "peak_mem_gib": [2.0, 1.0, 1.2, 1.0],
        "stored_bytes": [5e8, 9e6, 9e6, 4e6]}, index=["full", "lora", "qlora", "adapter"])
    checks = compare.rule_checks(table).set_index("chapter says")["agrees"]
    assert checks["LoRA trains ~0.1-1% of the parameters"]
    assert checks["adapters add inference latency"]
    assert checks["merged LoRA adds no latency"]
    assert checks["QLoRA cuts the memory of the weights"]
    assert not checks["QLoRA cuts peak training memory"]
    assert checks["PEFT stores far less per task than full fine-tuning"]
    for merged_ms, agrees in ((8.5, True), (10.4, True), (11.0, False)):  # faster than the base is timing noise
        table.loc["lora", "merged_latency_ms"] = merged_ms
        assert compare.rule_checks(table).set_index("chapter says")["agrees"]["merged LoRA adds no latency"] == agrees
    missing = compare.rule_checks(table.drop(index="adapter")).set_index("chapter says")["agrees"]
    assert missing["adapters add inference latency"] is None


@pytest.mark.parametrize("kwargs, says", [
    ({"methods": ["lora", "nope"]}, "Unknown or no methods"),
    ({"methods": []}, "Unknown or no methods"),
    ({"num_steps": 0}, "num_steps must be a positive"),
    ({"lr": {"loar": 1e-3}}, "unknown methods"),
])
def test_bad_config_is_explained(kwargs, says):
    with pytest.raises(LabkitError, match=says):
        CompareConfig(**kwargs)


def test_bad_tasks_are_explained(task, tiny):
    with pytest.raises(LabkitError, match="instruction and answer"):
        Task("x", task.probe_train, task.eval)
    with pytest.raises(LabkitError, match="probe_train and probe_eval"):
        Task("x", task.train, task.eval, labels=task.labels, probe_train=task.probe_train)
    with pytest.raises(LabkitError, match=r"\{text\}"):
        classification_task("x", task.probe_train, task.probe_eval, task.labels, template="Classify it.")
    with pytest.raises(LabkitError, match="same token"):
        compare.answer_first_tokens(tiny[1], ["lost_dragon", "lost_cat"])
    plain = Task("plain", task.train, task.eval)
    with pytest.raises(LabkitError, match="linear_probe needs a classification task"):
        compare.compare_methods(plain, CompareConfig(methods=["linear_probe"]), model=tiny[0], tokenizer=tiny[1])
    with pytest.raises(LabkitError, match="tokenizer together"):
        compare.compare_methods(task, CompareConfig(methods=["lora"]), model=tiny[0])


@pytest.mark.requires_gpu
def test_compare_on_a_gpu_keeps_the_reference_on_the_cpu(task):
    """On a GPU: the copies train on cuda in 16-bit, memory comes from torch.cuda, the reference stays on the CPU."""
    cfg = CompareConfig(methods=["full", "lora", "qlora"], num_steps=2, batch_size=4, seq_len=96,
                        latency_batch_size=2, latency_seq_len=16, latency_repeats=1)
    result = compare.compare_methods(task, cfg, model_name="tiny-llama", device="cuda", progress=False)
    assert (result.table["status"] == "trained").all()
    assert result.settings["device"] == "cuda" and "float16" in result.settings["dtype"]
    assert (result.table["train_mem_gib"] > 0).all()
