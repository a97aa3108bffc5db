"""Lab 10's pre-flight: every check passes on the healthy set-up and fails on its bug; every zoo member is caught."""

import dataclasses

import pytest
import torch

from labkit import LabkitError
from labkit.chapters.ch10_debugging import sanity, zoo
from labkit.validation import checks, pipeline
from labkit.validation.checks import FAIL, PASS, preflight

TINY = "tiny-llama"


@pytest.fixture(scope="module")
def healthy(one_thread):
    return zoo.build("healthy", TINY)


@pytest.fixture(scope="module")
def healthy_report(healthy):
    return preflight(healthy)


def test_the_healthy_set_up_passes_every_check(healthy_report):
    assert healthy_report.passed, str(healthy_report)
    assert [r.check for r in healthy_report.results] == list(checks.CHECKS)
    assert healthy_report.summary.startswith(f"pre-flight of healthy: {len(checks.CHECKS)} passed")


def test_the_zoo_has_ten_members_each_naming_a_real_check():
    assert len(zoo.ZOO) >= 10
    assert {bug.check for bug in zoo.ZOO.values()} <= set(checks.CHECKS)
    assert list(zoo.table().columns) == ["member", "bug", "symptom", "caught by", "fix"]


@pytest.mark.parametrize("name", list(zoo.ZOO))
def test_every_zoo_member_is_caught_by_its_check(name, one_thread):
    report = preflight(zoo.build(name, TINY))
    assert zoo.ZOO[name].check in report.failed, str(report)
    assert report[zoo.ZOO[name].check].fix  # a failed check says what to do


def test_preflight_leaves_the_model_as_it_was(healthy):
    before = {n: p.detach().clone() for n, p in healthy.model.named_parameters() if p.requires_grad}
    healthy.model.train()
    preflight(healthy)
    assert healthy.model.training
    assert all(p.grad is None for p in healthy.model.parameters())
    after = dict(healthy.model.named_parameters())
    assert all(torch.equal(value, after[n]) for n, value in before.items())


# ---- each check: passes on the healthy set-up, fails on its bug (the zoo covers the others) -------------------------

def test_init_loss_expects_ln_v_from_random_weights_and_less_from_a_pretrained_model(healthy):
    random_ok = checks.init_loss(*healthy)  # tiny-llama is random and the recipe says so
    assert random_ok.status == PASS and abs(random_ok.value - 10.80) < 0.5
    claimed_pretrained = dataclasses.replace(healthy.recipe, pretrained=True)
    assert checks.init_loss(healthy.model, healthy.tokenizer, healthy.data, claimed_pretrained).status == FAIL


def test_gradient_flow_explains_lora_a_and_flags_an_unused_trainable_tensor(healthy):
    table = checks.gradient_table(*healthy)
    assert (table[table.kind == "lora_A"].grad_norm == 0).all() and (table[table.kind == "lora_B"].grad_norm > 0).all()
    assert checks.gradient_flow(*healthy).status == PASS
    model = zoo.build("healthy", TINY).model
    model.unused_head = torch.nn.Linear(4, 4)  # trainable, never called in forward()
    result = checks.gradient_flow(model, healthy.tokenizer, healthy.data, healthy.recipe)
    assert result.status == FAIL and "unused_head" in result.detail


def test_overflow_watch_is_quiet_on_the_healthy_model_and_fires_on_a_planted_overflow(healthy):
    assert checks.overflow_watch(*healthy).status == PASS
    model = zoo.build("healthy", TINY).model
    with torch.no_grad():
        model.base_model.model.model.layers[0].mlp.down_proj.weight.mul_(1e7)
    fp16 = dataclasses.replace(healthy.recipe, precision="fp16", loss_scale=2.0 ** 16)
    result = checks.overflow_watch(model, healthy.tokenizer, healthy.data, fp16)
    assert result.status == FAIL and "inf" in result.detail


def test_fp16_gradients_pass_with_a_loss_scale(healthy):
    scaled = dataclasses.replace(healthy.recipe, precision="fp16", loss_scale=2.0 ** 16)
    assert checks.fp16_gradients(*dataclasses.replace(healthy, recipe=scaled)).status == PASS


def test_input_independent_baseline_fails_on_a_random_model(healthy):
    assert sanity.input_independent_baseline(healthy).status == FAIL  # random weights ignore their input


def test_overfit_one_batch_fails_when_the_optimizer_misses_the_adapter():
    result, history = sanity.overfit_one_batch(zoo.build("optimizer_before_method", TINY), 3)
    assert result.status == FAIL and len(history) == 3
    assert history["loss"].iloc[0] == pytest.approx(history["loss"].iloc[-1])


def test_overfit_one_batch_passes_on_a_learnable_set_up(one_thread):
    import labkit as lk

    model, tokenizer = lk.load_model(TINY)  # every weight trains: a random tiny model memorises 4 examples quickly
    data = pipeline.make_examples(tokenizer, zoo.rows(4))
    setup = pipeline.Setup(lk.apply_method(model, "full"), tokenizer, data, pipeline.Recipe(pretrained=False))
    result, _ = sanity.overfit_one_batch(setup, 20, lr=1e-2)
    assert result.status == PASS, result.line


def test_lr_range_test_restores_the_weights(healthy):
    before = [p.detach().clone() for p in pipeline.trainable(healthy.model)]
    table = sanity.lr_range_test(healthy, [1e-4, 1e-3, 1e-2])
    assert list(table["lr"]) == [1e-4, 1e-3, 1e-2]
    assert all(torch.equal(a, b) for a, b in zip(before, pipeline.trainable(healthy.model)))
    assert sanity.suggested_lr(table) == pytest.approx(table.loc[table["loss"].idxmin(), "lr"] / 10)


def test_a_train_config_is_checked_as_lk_train_runs_it(healthy):
    import labkit as lk

    report = lk.preflight(healthy.model, healthy.tokenizer, healthy.data,
                          lk.TrainConfig(batch_size=1, grad_accum=4, num_steps=1))
    assert report["accumulation_match"].status == PASS  # lk.train weights micro-batches by their label tokens


# ---- bad input ------------------------------------------------------------------------------------------------------

def test_unknown_zoo_member_is_refused():
    with pytest.raises(LabkitError, match="Unknown zoo member 'off_by_two': use 'healthy' or one of"):
        zoo.build("off_by_two", TINY)


def test_preflight_without_trainable_parameters_is_refused(healthy):
    model, tokenizer = zoo.base_model(TINY)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(LabkitError, match="no trainable parameters.*apply_method"):
        preflight(model, tokenizer, healthy.data, healthy.recipe)


@pytest.mark.parametrize("data", [[], None])
def test_preflight_with_empty_data_is_refused(healthy, data):
    with pytest.raises(LabkitError, match="The data is empty"):
        preflight(healthy.model, healthy.tokenizer, data, healthy.recipe)


@pytest.mark.parametrize("tolerance", [0, -1e-3, float("nan"), "1e-3"])
def test_a_tolerance_that_is_not_positive_is_refused(healthy, tolerance):
    with pytest.raises(LabkitError, match="tolerance must be a positive number"):
        preflight(healthy, tolerance=tolerance)
    with pytest.raises(LabkitError, match="tolerance must be a positive number"):
        checks.accumulation_match(*healthy, tolerance=tolerance)


def test_preflight_refuses_other_configs_and_raw_rows(healthy):
    with pytest.raises(LabkitError, match="config must be a Recipe"):
        preflight(healthy.model, healthy.tokenizer, healthy.data, {"lr": 1e-3})
    with pytest.raises(LabkitError, match="make_examples"):
        preflight(healthy.model, healthy.tokenizer, [{"instruction": "x", "answer": "y"}], healthy.recipe)
    with pytest.raises(LabkitError, match="needs the tokenizer"):
        preflight(healthy.model)


def test_report_lookup_names_the_checks(healthy_report):
    with pytest.raises(LabkitError, match="No check 'eos' in this report"):
        healthy_report["eos"]
    assert "✅ eos_in_labels" in str(healthy_report) and "<table>" in healthy_report._repr_html_()


@pytest.mark.parametrize("kwargs, says", [
    ({"loss_normalization": "sum"}, "Unknown loss_normalization 'sum'"),
    ({"batch_size": 0}, "batch_size must be a positive whole number"),
    ({"grad_accum": 1.5}, "grad_accum must be a positive whole number"),
    ({"lr": 0}, "lr must be a positive number"),
    ({"precision": "bf16"}, "Unknown precision 'bf16'"),
    ({"loss_scale": -1}, "loss_scale must be a positive number"),
    ({"objective": "classification"}, "Unknown objective"),
    ({"eval_mode": 1}, "eval_mode must be True or False"),
])
def test_recipe_refuses_bad_settings(kwargs, says):
    with pytest.raises(LabkitError, match=says):
        pipeline.Recipe(**kwargs)


def test_sanity_and_pipeline_refuse_bad_input(healthy):
    with pytest.raises(LabkitError, match="num_steps must be a positive whole number"):
        pipeline.run_recipe(healthy, 0)
    with pytest.raises(LabkitError, match="increasing order"):
        sanity.lr_range_test(healthy, [1e-2, 1e-3])
    with pytest.raises(LabkitError, match="ratio is the share"):
        sanity.overfit_one_batch(healthy, 1, ratio=1.5)
    with pytest.raises(LabkitError, match="No rows to tokenize"):
        pipeline.make_examples(healthy.tokenizer, [])
    with pytest.raises(LabkitError, match="Unknown template"):
        pipeline.prompt_for(healthy.tokenizer, "hi", "alpaca")
    with pytest.raises(LabkitError, match="range-test table is empty"):
        sanity.suggested_lr(None)
