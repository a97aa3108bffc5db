"""Lab 10's project pipeline, equivalence tests, validation suite and debugging panel."""

import pandas as pd
import pytest
import torch

from labkit import LabkitError
from labkit.chapters.ch10_debugging import equivalence, suite, zoo
from labkit.chapters.ch10_debugging.panel import debug_panel
from labkit.units import IGNORE_INDEX
from labkit.validation import checks, pipeline

TINY = "tiny-llama"


@pytest.fixture(scope="module")
def tokenizer():
    return zoo.base_model(TINY)[1]


def test_make_examples_masks_the_prompt_and_ends_with_eos(tokenizer):
    row = {"instruction": "Add 2 and 3.", "answer": "5"}
    (ex,) = pipeline.make_examples(tokenizer, [row])
    prompt = tokenizer(pipeline.prompt_for(tokenizer, row["instruction"]), add_special_tokens=False)["input_ids"]
    assert ex["labels"][:len(prompt)] == [IGNORE_INDEX] * len(prompt)
    assert ex["labels"][len(prompt):] == ex["input_ids"][len(prompt):]
    assert ex["labels"][-1] == tokenizer.eos_token_id
    (shifted,) = pipeline.make_examples(tokenizer, [row], shift_labels=True)
    assert shifted["labels"] == ex["labels"][1:] + [IGNORE_INDEX]
    (plain,) = pipeline.make_examples(tokenizer, [row], template="plain", add_eos=False, answer_only=False)
    assert tokenizer.decode(plain["input_ids"]).startswith("### Instruction:") and plain["labels"] == plain["input_ids"]
    view = pipeline.label_view(tokenizer, ex)
    assert list(view.columns) == ["position", "token", "label", "in_loss"] and view["in_loss"].any()


def test_accumulation_is_exact_only_when_normalised_by_tokens(one_thread):
    setup = zoo.build("healthy", TINY)
    table = equivalence.accumulation_table(setup.model, setup.tokenizer, setup.data, batch_size=4)
    gaps = table.set_index("normalisation")["relative_gap"]
    assert gaps["tokens"] < 1e-5 and gaps["batches"] > 1e-2
    assert list(table["equal"]) == [True, False]
    with pytest.raises(LabkitError, match="at least batch_size=16"):
        equivalence.accumulation_table(setup.model, setup.tokenizer, setup.data, batch_size=16)


def test_merge_and_save_load_are_equivalent(one_thread):
    setup = zoo.build("healthy", TINY)
    pipeline.run_recipe(setup, 2)  # B moves away from zero, so the adapter changes the outputs
    batch = checks.one_batch(setup.data, setup.recipe, setup.tokenizer)
    roundtrip = equivalence.save_load_roundtrip(setup.model, TINY, batch)
    assert roundtrip["bit_identical_tensors"] == roundtrip["tensors"] > 0 and roundtrip["logits_bit_identical"]
    merged = equivalence.merge_gap(setup.model, batch)
    assert merged["equal"] and merged["relative_gap"] < 1e-4 and merged["top_token_agreement"] == 1.0
    with pytest.raises(LabkitError, match="tolerance must be a positive number"):
        equivalence.merge_gap(merged["merged"], batch, tolerance=0)


def test_the_validation_suite_passes_then_fails_on_a_planted_regression(tmp_path, one_thread):
    project = suite.write_suite(tmp_path / "project", model_name=TINY, min_score=0.0)
    clean = suite.run_suite(project)
    assert clean.passed and clean.tests == 5, clean.output
    regressed = suite.run_suite(suite.plant_regression(project, add_eos=False))
    assert not regressed.passed and regressed.failed == ["test_preflight"], regressed.output
    assert "eos_in_labels" in regressed.output


def test_the_suite_refuses_bad_input(tmp_path):
    with pytest.raises(LabkitError, match="min_score is an accuracy between 0 and 1"):
        suite.write_suite(tmp_path, model_name=TINY, min_score=5)
    with pytest.raises(LabkitError, match="No test_project.py"):
        suite.run_suite(tmp_path)
    project = suite.write_suite(tmp_path / "p", model_name=TINY, min_score=0.5)
    with pytest.raises(LabkitError, match="no setting add_bos"):
        suite.plant_regression(project, add_bos=False)


def _report(name, failed=()):
    return checks.PreflightReport([checks.CheckResult(c, checks.FAIL if c in failed else checks.PASS, 0.0, "measured")
                                   for c in checks.CHECKS], name=name)


def test_the_panel_follows_its_dropdown_and_code():
    histories = {"healthy": pd.DataFrame({"step": [1, 2], "loss": [3.0, 2.0]}),
                 "missing_eos": pd.DataFrame({"step": [1, 2], "loss": [3.0, 2.5]}),
                 "optimizer_before_method": pd.DataFrame({"step": [1, 2], "loss": [3.0, 3.0]})}
    reports = {"healthy": _report("healthy"), "missing_eos": _report("missing_eos", ["eos_in_labels"]),
               "optimizer_before_method": _report("optimizer_before_method", ["optimizer_covers"])}
    panel = debug_panel(histories, reports, zoo.ZOO)
    assert panel.shown == {"member": "missing_eos", "failed": ["eos_in_labels"],
                           "curves": {"missing_eos": 2.5, "healthy": 2.0}}
    panel.member.value = "optimizer_before_method"
    assert panel.shown["curves"] == {"optimizer_before_method": 3.0, "healthy": 2.0}
    assert "optimizer_covers" in panel.about.value and "❌ optimizer_covers" in panel.report.value
    assert panel.select("healthy").shown["curves"] == {"healthy": 2.0}
    with pytest.raises(LabkitError, match="Unknown zoo member 'nope'"):
        panel.select("nope")
    with pytest.raises(LabkitError, match="needs the 'healthy' run"):
        debug_panel({"x": histories["healthy"]}, {"x": reports["healthy"]})


def test_fp16_round_counts_underflow_and_overflow():
    p = torch.nn.Parameter(torch.tensor([1e-9, 1e-3, 7e4]))
    p.grad = p.detach().clone()
    counts = pipeline.fp16_round([p], 1.0)
    assert counts == {"nonzero": 3, "underflow": 1, "overflow": 1}
    assert p.grad[0] == 0 and torch.isinf(p.grad[2])
