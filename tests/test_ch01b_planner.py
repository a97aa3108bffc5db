"""The planner: costs from the meters, the checklist's choices, bad requests, and the panel driven from code."""

import pytest

from labkit import meters
from labkit.chapters.ch01b_pretraining.planner import PATHS, PlanRequest, path_cost, plan, planner_panel
from labkit.core import LabkitError

SMOL = "HuggingFaceTB/SmolLM2-135M"
LLAMA7 = "meta-llama/Llama-2-7b-hf"


def test_pretraining_smollm2_is_6nd_on_its_2t_tokens():
    cost = path_cost(SMOL, "pretrain", 2e12, "H100")
    assert meters.matmul_params(meters.resolve_config(SMOL)) == 134_515_008  # tied head: N = all parameters
    assert cost.flops == pytest.approx(6 * 134_515_008 * 2e12)
    assert cost.gpu_hours == pytest.approx(1.61418e21 / (989e12 * 0.35) / 3600, rel=1e-5)  # ~1,295 H100-hours
    assert cost.cost_usd == pytest.approx(cost.gpu_hours * 3.00)


def test_lora_flops_skip_the_frozen_weight_gradients():
    lora = path_cost(LLAMA7, "lora", 1e6, rank=16)
    n = meters.matmul_params(meters.resolve_config(LLAMA7))
    assert lora.trainable_params == 39_976_960
    assert lora.flops == pytest.approx(4 * n * 1e6 + 2 * 39_976_960 * 1e6)
    full = path_cost(LLAMA7, "full", 1e6)
    assert full.flops == pytest.approx(6 * n * 1e6) and full.devices == 2 and lora.devices == 1  # 101 vs 18 GiB
    assert lora.stored_gib < 0.1 and full.stored_gib > 12 and full.stored_gib == pytest.approx(full.model_gib)


@pytest.mark.parametrize("request_kw, choice", [
    ({}, "lora"),  # 3M tokens on a 7B model, one A100: small data, cheap
    ({"hardware": "T4"}, "qlora"),  # LoRA's bf16 7B does not fit in 15 GiB
    ({"data_tokens": 1e9, "budget_usd": 1e4, "max_devices": 2}, "full"),  # lots of data, one task, room
    ({"data_tokens": 1e9, "budget_usd": 1e4, "max_devices": 2, "num_tasks": 20}, "lora"),  # many tasks
    ({"task": "new language or modality", "data_tokens": 2e11, "budget_usd": 1e5, "max_devices": 8}, "pretrain"),
    ({"task": "new language or modality", "data_tokens": 1e9, "budget_usd": 1e5, "max_devices": 8}, "full"),
    ({"budget_usd": 0.01}, None),  # nothing is that cheap
])
def test_the_checklist_picks_a_path(request_kw, choice):
    result = plan(PlanRequest(**request_kw))
    assert result.choice == choice, str(result)
    table = result.table()
    assert list(table.index) == ["pretrain from scratch", "full fine-tuning", "LoRA", "QLoRA"]
    assert table["recommended"].sum() == (choice is not None)
    assert result.reasons and all(isinstance(r, str) for r in result.reasons)


def test_plan_is_a_pure_function_and_storage_follows_the_tasks():
    a, b = plan(PlanRequest(num_tasks=10)), plan(PlanRequest(num_tasks=10))
    assert a.table().equals(b.table())
    table = a.table()
    model_gib = a.costs["full"].model_gib
    assert table.loc["full fine-tuning", "storage_gib"] == pytest.approx(10 * model_gib)
    assert table.loc["LoRA", "storage_gib"] == pytest.approx(model_gib + 10 * a.costs["lora"].stored_gib)


@pytest.mark.parametrize("kw, says", [
    ({"task": "poetry"}, "Unknown task"),
    ({"budget_usd": -5}, "budget_usd must be a positive number"),
    ({"epochs": 0}, "epochs must be a positive whole number"),
    ({"num_tasks": 1.5}, "num_tasks must be a positive whole number"),
])
def test_bad_requests_say_what_to_do(kw, says):
    with pytest.raises(LabkitError, match=says):
        PlanRequest(**kw)


def test_bad_paths_and_hardware():
    with pytest.raises(LabkitError, match="Unknown path"):
        path_cost(SMOL, "distill", 1e6)
    with pytest.raises(LabkitError, match="Unknown hardware"):
        plan(PlanRequest(hardware="TPU"))
    with pytest.raises(LabkitError, match="tokens must be positive"):
        path_cost(SMOL, "lora", 0)
    assert PATHS == ("pretrain", "full", "lora", "qlora")


def test_panel_replans_when_a_control_moves():
    panel = planner_panel()
    assert panel.plan.choice == "lora" and 'data-value="lora"' in panel.readout.value
    panel.hardware.value = "T4"
    assert panel.plan.choice == "qlora" and 'data-value="qlora"' in panel.readout.value
    panel.budget_usd.value = 1.0  # QLoRA on 3M tokens costs cents, still fine
    assert panel.plan.choice == "qlora"
    panel.epochs.value = 10
    panel.data_tokens.value = 1e10
    assert panel.plan.choice is None and "nothing fits" in panel.readout.value
    assert panel.request().data_tokens == 1e10


def test_run_cost_adds_rounds_and_counts_frozen_weights_as_4nd():
    from types import SimpleNamespace

    import pandas as pd
    from transformers import LlamaConfig, LlamaForCausalLM

    from labkit.chapters.ch01b_pretraining.planner import run_cost

    model = LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True))
    rounds = [SimpleNamespace(history=pd.DataFrame({"tokens": [500, 1000]}), time_s=2.0, peak_mem_gib=0.5),
              SimpleNamespace(history=pd.DataFrame({"tokens": [250, 500]}), time_s=1.0, peak_mem_gib=0.7)]
    row = run_cost(model, rounds)
    assert row["tokens"] == 1500 and row["time_s"] == 3.0 and row["peak_mem_gib"] == 0.7
    assert row["flops"] == 6 * 28_192 * 1500  # every weight trains
    assert row["cost_usd_cpu_vm"] == pytest.approx(3.0 / 3600 * meters.get_hardware("cpu").usd_per_hour)
    model.get_input_embeddings().weight.requires_grad_(False)
    assert run_cost(model, rounds[0])["flops"] == 4 * 28_192 * 1000 + 2 * (28_192 - 9_600) * 1000
    with pytest.raises(LabkitError, match="lk.train results"):
        run_cost(model, [])
