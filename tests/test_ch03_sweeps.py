"""Lab 03's machinery on tiny models: scale rules, budgets, placements, spectra, the portrait and the designer."""

import copy
import math

import datasets
import pytest
import torch

from labkit import LabkitError, apply_method
from labkit.chapters.ch03_peft_methods import portrait, spectrum, sweeps
from labkit.chapters.ch03_peft_methods.panel import LoraDesigner
from labkit.models import load_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama")


@pytest.fixture(scope="module")
def data():
    rows = {"instruction": [f"Say the number {i}." for i in range(12)], "answer": [str(i) for i in range(12)]}
    return datasets.Dataset.from_dict(rows)


BUDGET = sweeps.Budget(num_steps=2, batch_size=2, seq_len=64, lr=1e-2, eval_limit=2)


def test_scale_rules():
    assert sweeps.lora_scale("alpha fixed", 8) == 2.0 and sweeps.lora_scale("alpha fixed", 64) == 0.25
    assert sweeps.lora_scale("alpha = 2r", 1) == sweeps.lora_scale("alpha = 2r", 128) == 2.0
    assert sweeps.lora_scale("rsLoRA", 64) == 2.0 and math.isclose(sweeps.lora_scale("rsLoRA", 2), 16 / math.sqrt(2))
    with pytest.raises(LabkitError, match="Unknown scale rule 'alpha/2'.*rsLoRA"):
        sweeps.scale_settings("alpha/2", 8)


@pytest.mark.parametrize("field, value", [("num_steps", 0), ("batch_size", 2.5), ("lr", 0), ("lr", True)])
def test_budget_refuses_bad_values(field, value):
    with pytest.raises(LabkitError, match=f"{field} must be a positive"):
        sweeps.Budget(**{field: value})


def test_placements_share_one_budget(tiny):
    from labkit import meters

    config = tiny[0].config
    budget = meters.analytic_trainable_params(config, "lora", rank=4)
    counts = {}
    for name in sweeps.PLACEMENTS:
        settings = sweeps.placement_settings(config, name, budget)
        counts[name] = meters.analytic_trainable_params(config, "lora", **{k: v for k, v in settings.items()
                                                                            if k != "alpha"})
        real = apply_method(copy.deepcopy(tiny[0]), "lora", **settings)
        assert sum(p.numel() for p in real.parameters() if p.requires_grad) == counts[name]
    assert all(abs(c - budget) / budget < 0.35 for c in counts.values()), counts
    assert sweeps.placement_settings(config, "bottom half", budget)["layers"] == [0]
    assert sweeps.placement_settings(config, "top half", budget)["layers"] == [1]
    with pytest.raises(LabkitError, match="Unknown placement 'heads'"):
        sweeps.placement_settings(config, "heads", budget)


def test_steps_to_target():
    assert sweeps.steps_to([5, 4, 3, 2, 1], 3.0) == 4  # running means 5, 4.5, 4, 3, 2
    assert sweeps.steps_to([5, 5, 5], 1.0) is None


def test_rank_sweep_trains_each_distinct_scale_once(tiny, data):
    table, runs = sweeps.rank_sweep(tiny[0], tiny[1], data, data, BUDGET, ranks=(2, 8),
                                    target_modules=["q_proj", "v_proj"])
    assert len(table) == 6 and list(table["rank"]) == [2, 2, 2, 8, 8, 8]
    at8 = table[table["rank"] == 8].set_index("rule")
    assert at8.loc["alpha fixed", "eval_loss"] == at8.loc["alpha = 2r", "eval_loss"]  # the same run (scale 2)
    assert runs[3].history is runs[4].history
    assert table["trainable"].tolist()[0] * 4 == table["trainable"].tolist()[3]


def test_init_sweep_and_the_target(tiny, data):
    table, _, target = sweeps.init_sweep(tiny[0], tiny[1], data, data, BUDGET, rank=4,
                                            runs_to_do=("default", "OLoRA", "LoRA+ ratio 16"))
    assert list(table["run"]) == ["default", "OLoRA", "LoRA+ ratio 16"]
    assert table.set_index("run").loc["default", "steps_to_target"] <= BUDGET.num_steps  # it reaches its own end
    assert math.isfinite(target)


# ---- spectra -------------------------------------------------------------------------------------------------------

def test_effective_rank():
    assert spectrum.effective_rank([3.0, 1.0, 0.0]) == 1  # 9 of 10
    assert spectrum.effective_rank([1.0] * 10) == 9
    assert spectrum.effective_rank([0.0, 0.0]) == 0
    assert spectrum.effective_rank([1.0, 3.0]) == 1  # sorted first
    with pytest.raises(LabkitError, match="energy must be in"):
        spectrum.effective_rank([1.0], 0)
    with pytest.raises(LabkitError, match="never negative"):
        spectrum.effective_rank([1.0, -1.0])


def test_lora_update_is_b_times_a_and_low_rank(tiny):
    base = tiny[0]
    before = spectrum.linear_weights(base, ["q_proj"])
    model = apply_method(copy.deepcopy(base), "lora", rank=3, alpha=6.0, target_modules=["q_proj"])
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    deltas = spectrum.weight_deltas(model, before)
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    expected = 2.0 * layer.lora_B.default.weight @ layer.lora_A.default.weight
    assert torch.allclose(deltas["model.layers.0.self_attn.q_proj"], expected, atol=1e-6)
    table, values = spectrum.spectra(deltas)
    assert set(table["effective_rank"]) <= {1, 2, 3} and table["max_rank"].iloc[0] == 64
    assert len(values["model.layers.1.self_attn.q_proj"]) == 64


def test_full_update_and_a_mismatched_base(tiny):
    base = tiny[0]
    before = spectrum.linear_weights(base, ["v_proj"])
    model = copy.deepcopy(base)
    with torch.no_grad():
        model.model.layers[1].self_attn.v_proj.weight.add_(torch.randn(32, 64) * 0.01)
    deltas = spectrum.weight_deltas(model, before)
    assert deltas["model.layers.0.self_attn.v_proj"].abs().max() == 0
    table, _ = spectrum.spectra(deltas)
    assert table.set_index("module").loc["model.layers.1.self_attn.v_proj", "effective_rank"] > 20  # a random ΔW
    with pytest.raises(LabkitError, match="not in the trained model"):
        spectrum.weight_deltas(model, {"model.layers.9.self_attn.v_proj": torch.zeros(1)})


# ---- the portrait and the designer ----------------------------------------------------------------------------------

def test_reference_points_are_relative_to_peft_full_fine_tuning():
    ref = portrait.reference_table().set_index("method")
    assert ref.loc["full", ["rel_params", "rel_memory", "rel_time", "rel_quality"]].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert ref.loc["lora", "trainable"] == 9_175_040 and ref.loc["lora", "date"] == "2025-06-19"
    assert set(ref.index) <= set(__import__("labkit").list_methods(core_only=False))


def test_portrait_says_why_a_method_does_not_run(tiny, data):
    table, histories = portrait.portrait(tiny[0], tiny[1], data, data, sweeps.Budget(num_steps=1, batch_size=2,
                                         seq_len=64, eval_limit=2), ["full", "vera", "adalora", "bitfit", "qlora",
                                                                    "linear_probe"])
    rows = table.set_index("method")
    assert rows.loc["vera", "status"] == rows.loc["adalora", "status"] == rows.loc["full", "status"] == "trained"
    assert "no bias terms (use norm" in rows.loc["bitfit", "status"]
    assert "4-bit copy" in rows.loc["qlora", "status"] and "classification head" in rows.loc["linear_probe", "status"]
    assert set(histories) == {"full", "vera", "adalora"}
    rel = portrait.relative_portrait(table).set_index("method")
    assert rel.loc["full", "rel_params"] == 1.0 and rel.loc["vera", "rel_params"] < 0.01
    with pytest.raises(LabkitError, match="needs its full fine-tuning row"):
        portrait.relative_portrait(table[table["method"] != "full"])


def test_designer_predicts_and_trains(tiny, data):
    from labkit import meters

    designer = LoraDesigner(tiny[0].config, base=tiny[0], tokenizer=tiny[1], train_data=data, eval_data=data,
                            budget=BUDGET)
    designer.rank.value = 4
    p = designer.predict()
    assert p["trainable"] == meters.analytic_trainable_params(tiny[0].config, "lora", rank=4,
                                                              target_modules=["q_proj", "v_proj"])
    assert "trainable: <b>" in designer.readout.value and p["scale"] == 2.0
    designer.method.value = "lokr"
    assert "lokr" in designer.readout.value
    designer.targets.value = ()
    assert "Pick at least one target layer" in designer.readout.value
    designer.targets.value = ("q_proj",)
    designer.method.value = "lora"
    table = designer.train_now()
    assert table is not None and set(table["kind"]) == {"q_proj"} and "trained lora r=4" in designer.status.value
    assert len(designer.figure.data) == 1


def test_designer_without_a_model_says_what_it_needs(tiny):
    designer = LoraDesigner(tiny[0].config)
    assert designer.train_now() is None and "base=" in designer.status.value


# ---- the training paths this lab adds, on the real model -----------------------------------------------------------

@pytest.mark.parametrize("method, settings, lr, factor", [
    ("lora", {"rank": 8, "alpha": 16.0, "loraplus_ratio": 16.0, "target_modules": ["q_proj", "v_proj"]}, 2e-3, 0.7),
    ("adalora", {"rank": 8, "target_rank": 4, "target_modules": ["q_proj", "v_proj"]}, 1e-2, 0.8),  # + orth. penalty
    ("lora", {"rank": 8, "init": "pissa_niter_4", "target_modules": ["q_proj", "v_proj"]}, 1e-3, 0.7),
])
def test_the_new_training_paths_learn_on_smollm2(method, settings, lr, factor):
    """The loss on one fixed batch falls by a stated factor within a few steps, after the lab's own evaluation."""
    from labkit.training import train

    model, tokenizer = load_model("smollm2-135m")
    rows = datasets.Dataset.from_dict({"instruction": ["Name the capital of the keeper's island."] * 2,
                                       "answer": ["The capital is Lanternport."] * 2})
    model = apply_method(model, method, **settings)
    result = train(model, tokenizer, rows, objective="sft", num_steps=4, batch_size=2, seq_len=64, lr=lr,
                   eval_data=rows, progress=False, live_plot=False)
    losses = result.history["loss"]
    assert losses.iloc[-1] < factor * losses.iloc[0], losses.tolist()
