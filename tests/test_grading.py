"""Graded exercises: every lab-00 check passes on its solution and rejects typical wrong answers; the grader."""

import csv
import importlib.util
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
import torch

from labkit import grading
from labkit.chapters.ch00_setup.exercises import q1, q2, q3
from labkit.core import LabkitError
from labkit.grading import (
    CORRECT,
    INCORRECT,
    NOT_ATTEMPTED,
    Args,
    Exercise,
    expect_function,
    expect_only_trainable,
    expect_value,
    grade_main,
    grade_notebook,
)
from labkit.grading.labs import lab_id, load_lab

LABS = Path(__file__).resolve().parents[1] / "labs"


def run_solution(exercise, **namespace) -> dict:
    """Execute the exercise's solution code and return the names it defines."""
    exec(exercise.solution_code, namespace)  # noqa: S102  (our own solution text, to test it is right)
    return namespace


def assert_not_revealed(message: str, *values) -> None:
    for value in values:
        text = f"{value:.3f}".rstrip("0") if isinstance(value, float) else str(value)
        assert not re.search(rf"(?<![\d.]){re.escape(text)}", message), f"{message!r} reveals {value}"


def make_llama(tied: bool = True):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied))


@pytest.fixture(scope="module")
def tiny_model():
    return make_llama()


# ---- lab 00, q1: a function checked on hidden cases ----------------------------------------------------------------

def test_q1_passes_on_solution():
    assert q1.evaluate(run_solution(q1)["linear_params"]).status == CORRECT


@pytest.mark.parametrize("wrong, says", [
    (lambda i, o, bias=True: i * o, "bias"),  # forgot the bias
    (lambda i, o, bias=True: i * o + i, "output feature"),  # one bias per input
    (lambda i, o, bias=True: i * o + o, "bias=False"),  # ignores the flag
    (lambda i, o, bias=True: i + o + (o if bias else 0), "matrix"),  # adds the sizes
    (lambda i, o, bias=True: 2 * (i * o + (o if bias else 0)), "not right yet"),  # off by a factor
])
def test_q1_rejects_typical_mistakes(wrong, says):
    outcome = q1.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message
    assert_not_revealed(outcome.message, 16, 12, 884736, 28312128)


def test_q1_placeholders_are_not_attempted():
    def raises(i, o, bias=True):
        raise NotImplementedError

    for answer in (..., lambda i, o, bias=True: ..., raises):
        assert q1.evaluate(answer).status == NOT_ATTEMPTED


def test_q1_learner_errors_become_feedback():
    outcome = q1.evaluate(lambda i, o, bias: i * o)  # bias has no default: the first call fails
    assert outcome.status == INCORRECT and "TypeError" in outcome.message and "Traceback" not in outcome.message
    assert "no parentheses" in q1.evaluate(12).message


# ---- lab 00, q2: a value measured on the model ---------------------------------------------------------------------

def test_q2_passes_on_solution_tied_and_untied(tiny_model):
    ns = run_solution(q2, model=tiny_model)
    assert q2.evaluate(ns["embedding_fraction"], tiny_model).status == CORRECT
    assert q2.evaluate(round(ns["embedding_fraction"], 3), tiny_model).status == CORRECT  # rounding is fine
    untied = make_llama(tied=False)
    ns = run_solution(q2, model=untied)
    assert q2.evaluate(ns["embedding_fraction"], untied).status == CORRECT


def test_q2_rejects_typical_mistakes(tiny_model):
    emb = tiny_model.get_input_embeddings().weight.numel()
    total = sum(p.numel() for p in tiny_model.parameters())
    with_head_twice = sum(v.numel() for v in tiny_model.state_dict().values())  # the state dict lists the tie twice
    assert with_head_twice == total + emb
    wrong = {emb / with_head_twice: "count it once", 2 * emb / total: "same tensor", 100 * emb / total: "percentage",
             1 - emb / total: "except the embedding", 0.5: "not right yet"}
    for answer, says in wrong.items():
        outcome = q2.evaluate(answer, tiny_model)
        assert outcome.status == INCORRECT and says in outcome.message, outcome
        assert_not_revealed(outcome.message, emb / total)


def test_q2_placeholder_and_bad_calls(tiny_model):
    assert q2.evaluate(..., tiny_model).status == NOT_ATTEMPTED
    assert "q2.check(your_answer, model)" in q2.evaluate(0.2).message  # forgot to pass the model
    assert "should be a number" in q2.evaluate("0.2", tiny_model).message


# ---- lab 00, q3: a freezing recipe, inspected on a hidden model ----------------------------------------------------

def test_q3_passes_on_solution():
    assert q3.evaluate(run_solution(q3)["freeze_all_but_norms"]).status == CORRECT


def _only_final_norm(model):
    model.requires_grad_(False)
    model.model.norm.requires_grad_(True)


@pytest.mark.parametrize("wrong, says", [
    (lambda model: model, "everything is still trainable"),  # forgot to freeze
    (lambda model: model.requires_grad_(False), "nothing is trainable"),  # froze the norms too
    (_only_final_norm, "still frozen"),  # forgot the per-layer norms
    (lambda model: [p.requires_grad_("norm" not in n) for n, p in model.named_parameters()], "trainable too"),
])
def test_q3_rejects_typical_mistakes(wrong, says):
    outcome = q3.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message


def test_q3_placeholder_and_rng():
    state = torch.random.get_rng_state()
    assert q3.evaluate(lambda model: ...).status == NOT_ATTEMPTED
    assert q3.evaluate(run_solution(q3)["freeze_all_but_norms"]).status == CORRECT
    assert torch.equal(state, torch.random.get_rng_state())  # checking does not disturb the learner's seed


# ---- the mechanism ---------------------------------------------------------------------------------------------------

def test_check_prints_one_line_and_logs(tmp_path, monkeypatch, capsys):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(grading.GRADE_LOG_ENV, str(log))
    q = Exercise("q1", lab="lab99", title="The answer", checker=expect_value(42), hints=("Think.",))
    for answer in (..., 41, "x", 42):
        q.check(answer)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].startswith("✏️ q1: not attempted yet") and lines[3].startswith("✅ q1")
    assert lines[1] == "💡 q1: 41 is not right yet. (q1.hint() gives a hint)"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["status"] for e in entries] == [NOT_ATTEMPTED, INCORRECT, INCORRECT, CORRECT]
    assert entries[-1] == {"lab": "lab99", "exercise": "q1", "status": CORRECT, "points": 1, "max_points": 1,
                           "message": "correct! (The answer)"}


def test_hints_and_solution(capsys):
    q = Exercise("q2", lab="lab99", title="t", checker=expect_value(1), hints=("one", "two"), solution_code="x = 1")
    q.hint(), q.hint(), q.hint(), q.hint(1), q.solution()
    out = capsys.readouterr().out
    assert out.count("hint 1/2: one") == 2 and out.count("hint 2/2: two") == 2 and "x = 1" in out
    with pytest.raises(LabkitError, match="hints 1 to 2"):
        q.hint(3)


def test_expect_value_and_function():
    check = expect_value(0.25, abs_tol=1e-3, mistakes=[(25, "a percentage")])
    assert check(0.2504) is None and check(torch.tensor(0.25)) is None and "percentage" in check(25)
    square = expect_function(lambda x: x * x, [Args(3), Args(-2)], mistakes=[(lambda x: 2 * x, "doubled")])
    assert square(lambda x: x**2) is None
    assert "doubled" in square(lambda x: 2 * x)
    assert square(abs) == "abs(3) returned 3, which is not right yet."
    q = Exercise("q1", lab="lab99", title="t", checker=check)
    assert "single number" in q.evaluate(torch.ones(2)).message and "single number" in q.evaluate([0.25]).message
    with pytest.raises(grading.NotAttempted):
        square(lambda x: ...)


def test_expect_function_compares_tensors_without_printing_them():
    w = torch.arange(6.0).reshape(2, 3) - 2.5
    double = expect_function(lambda t: 2 * t, [Args(w)], abs_tol=1e-6, mistakes=[(lambda t: t + t.abs(), "relu")])
    assert double(lambda t: t * 2 + 1e-7) is None
    assert double(lambda t: t * 2 + 1e-3) == "<lambda> differs from the reference on a hidden random case (shape (2, 3))."
    assert double(lambda t: t + t.abs()) == "relu"
    assert "shape (6,); it should have shape (2, 3)" in double(lambda t: (2 * t).flatten())
    assert "should return a torch tensor" in double(lambda t: (2 * t).tolist())
    mask = expect_function(lambda t: t > 0, [Args(w)])
    assert mask(lambda t: t > 0) is None and mask(lambda t: (t > 0).float()) is not None  # a float mask is no mask


def test_expect_only_trainable_inspects_a_model():
    class Lora(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.base = torch.nn.Linear(4, 4)
            self.lora_A, self.lora_B = torch.nn.Linear(4, 1, bias=False), torch.nn.Linear(1, 4, bias=False)

    check = expect_only_trainable(r"lora_[AB]", "the LoRA matrices")
    model = Lora()
    assert "everything is still trainable" in check(model)
    model.base.requires_grad_(False)
    assert check(model) is None
    model.base.bias.requires_grad_(True)  # counts a frozen-by-design parameter as trainable
    assert "base.bias is trainable too" in check(model)
    assert "pass a model" in check(3)


def test_exercise_and_lab_errors(tmp_path, monkeypatch):
    with pytest.raises(LabkitError, match="look like 'q1'"):
        Exercise("first", lab="lab00", title="t", checker=expect_value(1))
    with pytest.raises(LabkitError, match="look like 'lab12' or 'lab01a'"):
        Exercise("q1", lab="0", title="t", checker=expect_value(1))
    with pytest.raises(LabkitError, match="No chapter package for lab97"):
        load_lab("lab97")
    with pytest.raises(LabkitError, match="Cannot tell which lab"):
        lab_id("notes.ipynb")
    assert [lab_id(x) for x in (0, "07", "lab12", "01a", "lab01b", "labs/01c_transfer.ipynb", "alice-12_qlora (1).ipynb",
                                "bob-01a_paradigms.ipynb")] == \
        ["lab00", "lab07", "lab12", "lab01a", "lab01b", "lab01c", "lab12", "lab01a"]
    (tmp_path / "misnamed_lab.py").write_text("from labkit.grading import Exercise, expect_value\n"
                                              "q1 = Exercise('q2', lab='lab96', title='t', checker=expect_value(1))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(LabkitError, match="use the same name"):
        load_lab("lab96", "misnamed_lab")


def test_old_lab_ids_map_to_the_chapter_numbered_ones():
    from labkit.grading.labs import chapter_module, renamed_from

    # sections 1.1-1.3 were labs 01-03 before labs were numbered by chapter; chapters 2 and 3 took 02 and 03
    assert lab_id(1) == "lab01a"
    assert lab_id("02") == lab_id("02_performance_optimization.ipynb") == "lab02"  # chapter 2's lab took the old id
    assert renamed_from("02") is None
    assert lab_id("03_peft_methods.ipynb") == lab_id("lab03") == "lab03"  # chapter 3's lab took the old id
    assert renamed_from("01") == "lab01" and renamed_from("01a") is None and renamed_from(12) is None
    assert chapter_module("01a") == "labkit.chapters.ch01a_paradigms" == chapter_module("01")
    assert list(load_lab("01")) == list(load_lab("lab01a"))


def test_assert_all_passed(tiny_model, monkeypatch, capsys):
    monkeypatch.setattr(grading, "_LAST", {})
    q1.check(run_solution(q1)["linear_params"])
    with pytest.raises(LabkitError, match="did not pass in this notebook: q2, q3"):
        grading.assert_all_passed("lab00")
    q2.check(run_solution(q2, model=tiny_model)["embedding_fraction"], tiny_model)
    q3.check(run_solution(q3)["freeze_all_but_norms"])
    grading.assert_all_passed("lab00")
    assert "all lab00 exercises pass" in capsys.readouterr().out


# ---- the grader: synthetic notebooks with a fake exercises module ----------------------------------------------------

FAKE_EXERCISES = """
from labkit.grading import Args, Exercise, expect_function, expect_value
q1 = Exercise("q1", lab="lab98", title="The answer", checker=expect_value(42))
q2 = Exercise("q2", lab="lab98", title="Squares", checker=expect_function(lambda x: x * x, [Args(3), Args(-2)]), points=2)
q3 = Exercise("q3", lab="lab98", title="Last one", checker=expect_value(1))
"""


def write_notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)
    return path


@pytest.fixture
def fake_lab(tmp_path, monkeypatch):
    (tmp_path / "fake_lab98.py").write_text(FAKE_EXERCISES)
    (tmp_path / "answer.txt").write_text("42")
    monkeypatch.syspath_prepend(str(tmp_path))  # the grader reads the list of exercises in this process
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    return tmp_path


def test_grader_scores_the_checks_reached_and_reports_the_error(fake_lab):
    path = write_notebook(fake_lab / "98_fake.ipynb", "from fake_lab98 import q1, q2, q3",
                          "q1.check(int(open('answer.txt').read()))",  # relative paths resolve next to the notebook
                          "def square(x):\n    return x * x + 1\nq2.check(square)", "1 / 0", "q3.check(1)")
    before = path.read_bytes()
    report = grade_notebook(path, timeout=120, exercises="fake_lab98")
    assert path.read_bytes() == before
    assert [(s.name, s.status, s.points) for s in report.scores] == \
        [("q1", CORRECT, 1), ("q2", INCORRECT, 0), ("q3", "not reached", 0)]
    assert (report.total, report.max_total) == (1, 4)
    assert report.error == "cell 4 raised ZeroDivisionError: division by zero"
    assert "square(3) returned 10" in report.scores[1].message


def test_grade_command_on_a_folder(fake_lab, capsys):
    subs = fake_lab / "submissions"
    (subs / "bob").mkdir(parents=True)
    solved = write_notebook(subs / "alice_98_fake.ipynb", "from fake_lab98 import q1, q2, q3",
                            "q1.check(41)", "q1.check(42)", "q2.check(lambda x: x * x)", "q3.check(1)")
    placeholders = write_notebook(subs / "bob" / "98_fake.ipynb", "from fake_lab98 import q1, q2, q3",
                                  "q1.check(...)", "def square(x):\n    return ...\nq2.check(square)", "q3.check(...)")
    (subs / "98_broken.ipynb").write_text("{not json")
    before = {p: p.read_bytes() for p in (solved, placeholders)}
    out_json, out_csv = fake_lab / "grades.json", fake_lab / "grades.csv"
    code = grade_main([str(subs), "--exercises", "fake_lab98", "--json", str(out_json), "--csv", str(out_csv),
                       "--timeout", "120"])
    assert code == 0 and all(p.read_bytes() == b for p, b in before.items())
    printed = capsys.readouterr().out
    assert "total 4/4" in printed and "total 0/4" in printed and "graded 3 notebooks; 1 stopped early" in printed
    reports = {Path(r["notebook"]).name: r for r in json.loads(out_json.read_text())}
    assert reports["alice_98_fake.ipynb"]["total"] == 4 and reports["alice_98_fake.ipynb"]["error"] is None
    assert {s["status"] for s in reports["98_fake.ipynb"]["scores"]} == {NOT_ATTEMPTED}
    assert "could not be read" in reports["98_broken.ipynb"]["error"]
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["total"] for r in rows] == ["0", "4", "0"]
    assert rows[1]["lab98.q2"] == "2" and rows[2]["lab98.q1"] == "0"


def test_grade_with_an_old_lab_id_names_the_new_one(fake_lab, capsys):
    path = write_notebook(fake_lab / "homework.ipynb", "from fake_lab98 import q1, q2, q3", "q1.check(42)")
    assert grade_main([str(path), "--lab", "01", "--exercises", "fake_lab98", "--timeout", "120"]) == 0
    printed = capsys.readouterr().out
    assert "note: lab 01 is now lab 01a" in printed and "total 1/4" in printed


def test_grader_timeout_is_reported_and_fast_mode_is_passed_on(fake_lab, monkeypatch):
    monkeypatch.setenv("LABKIT_FAST", "0")
    path = write_notebook(fake_lab / "98_slow.ipynb", "from fake_lab98 import q1",
                          "import os\nq1.check(42 if os.environ['LABKIT_FAST'] == '1' else 0)",
                          "import time\ntime.sleep(60)")
    report = grade_notebook(path, timeout=2, exercises="fake_lab98", fast=True)
    assert report.error == "cell 3 did not finish within 2 s (--timeout)" and report.total == 1


def test_grader_reads_the_lab_from_notebook_metadata(tmp_path):
    from labkit.grading.grader import _notebook_lab

    stamped = nbformat.v4.new_notebook(metadata={"labkit": {"lab": "lab00"}})  # the builder stamps this
    assert lab_id(_notebook_lab(tmp_path / "my homework.ipynb", stamped)) == "lab00"
    assert lab_id(_notebook_lab(tmp_path / "01a_lora.ipynb", nbformat.v4.new_notebook())) == "lab01a"


def test_grader_bad_input(tmp_path, capsys):
    assert grade_main([str(tmp_path / "missing.ipynb")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(LabkitError, match="not a notebook file"):
        grade_notebook(tmp_path)
    nameless = write_notebook(tmp_path / "homework.ipynb", "1")
    with pytest.raises(LabkitError, match="Cannot tell which lab"):
        grade_notebook(nameless)
    with pytest.raises(LabkitError, match="timeout must be a positive"):
        grade_notebook(nameless, timeout=0)
    assert grade_main([str(nameless), "--timeout", "-1"]) == 2


# ---- the real lab 00, both versions (one kernel each) ---------------------------------------------------------------

@pytest.mark.skipif(importlib.util.find_spec("labkit.plots") is None, reason="lk.setup needs labkit.plots")
def test_grading_lab00_solution_full_marks_learner_zero(capsys):
    paths = [LABS / "solutions" / "00_setup.ipynb", LABS / "00_setup.ipynb"]
    before = [p.read_bytes() for p in paths]
    assert grade_main([str(p) for p in paths]) == 0
    assert [p.read_bytes() for p in paths] == before
    solution, learner = capsys.readouterr().out.split(str(paths[1]))
    assert "total 3/3" in solution and "error:" not in solution
    assert "total 0/3" in learner and learner.count("not attempted") == 3 and "error:" not in learner


def test_a_sequence_of_numbers_is_compared_element_by_element_within_tolerance():
    import numpy as np

    from labkit.grading import expect_value

    check = expect_value((1.0, 2.0), rel_tol=1e-3)
    assert check([1.0005, 2.0]) is None and check(np.array([1.0, 2.001])) is None and check((1.0, 2.0)) is None
    assert check((1.1, 2.0)) is not None and check((1.0,)) is not None and check(1.0) is not None
    assert check(("1.0", "2.0")) is not None  # text is not a number
    assert expect_value(["a", "b"])(["a", "b"]) is None and expect_value(["a", "b"])(("a", "b")) is not None
