"""Lab 01a exercises: each passes on its solution, rejects typical mistakes, and says "not attempted" on `...`."""

import copy
import re

import pytest
import torch

import labkit as lk
from labkit.chapters.ch01a_paradigms.exercises import _CASES, peft_lora_layer, q1, q2, q3, q4
from labkit.grading import CORRECT, INCORRECT, NOT_ATTEMPTED


def run_solution(exercise, **namespace) -> dict:
    exec(exercise.solution_code, {"lk": lk, "copy": copy, **namespace}, namespace)  # noqa: S102  (our own solution)
    return namespace


def assert_not_revealed(message: str, *values) -> None:
    for value in values:
        assert not re.search(rf"(?<![\d.]){re.escape(str(value))}(?![\d])", message), f"{message!r} reveals {value}"


@pytest.fixture(scope="module")
def gpt():
    """A tiny GPT-2 (biases everywhere), as the notebook builds it."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=1000, n_positions=64, n_embd=64, n_layer=2, n_head=4))


@pytest.mark.parametrize("exercise, context", [(q1, (None,)), (q2, ()), (q3, ()), (q4, ())])
def test_placeholders_are_not_attempted(exercise, context):
    assert exercise.evaluate(..., *context).status == NOT_ATTEMPTED


# ---- q1: BitFit on GPT-2 ---------------------------------------------------------------------------------------------

# Per layer: ln_1 64 + c_attn 192 + attn c_proj 64 + ln_2 64 + c_fc 256 + mlp c_proj 64 = 704; two layers + ln_f 64.
GPT_BIASES = 2 * 704 + 64  # 1,472
GPT_LINEAR_BIASES = 2 * (192 + 64 + 256 + 64)  # 1,152 (LayerNorm biases left out)


def test_q1_passes_on_solution(gpt):
    answer = run_solution(q1, gpt=gpt)["bitfit_params"]
    assert answer == GPT_BIASES
    assert q1.evaluate(answer, gpt).status == CORRECT


@pytest.mark.parametrize("wrong, says", [
    (GPT_LINEAR_BIASES, "LayerNorm"),
    (GPT_LINEAR_BIASES + 5 * 2 * 64, "scale weights"),  # linear biases + all LayerNorm weights and biases
    ("all of them", "number"),
    (GPT_BIASES + 1, "not right"),
])
def test_q1_rejects_wrong_answers(gpt, wrong, says):
    outcome = q1.evaluate(wrong, gpt)
    assert outcome.status == INCORRECT and says in outcome.message
    assert_not_revealed(outcome.message, GPT_BIASES)


def test_q1_rejects_counting_every_parameter(gpt):
    total = sum(p.numel() for p in gpt.parameters())
    assert "every parameter" in q1.evaluate(total, gpt).message


# ---- q2: LoRA parameters of one layer --------------------------------------------------------------------------------

def test_q2_passes_on_solution():
    lora_params = run_solution(q2)["lora_params"]
    assert lora_params(576, 192, 8) == 8 * 768
    assert q2.evaluate(lora_params).status == CORRECT


def test_q2_matches_peft_on_a_real_layer():
    layer = peft_lora_layer(576, 192, 8, 16.0)
    counted = sum(p.numel() for n, p in layer.named_parameters() if "lora_" in n)
    assert counted == run_solution(q2)["lora_params"](576, 192, 8)


@pytest.mark.parametrize("wrong, says", [
    (lambda i, o, r: i * o + r * (i + o), "frozen"),
    (lambda i, o, r: r * i * o, "thin"),
    (lambda i, o, r: 2 * r * i, "different shapes"),
    (lambda i, o, r: r * (i + o) + 1, "not right yet"),
])
def test_q2_rejects_typical_mistakes(wrong, says):
    outcome = q2.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message


# ---- q3: the LoRA forward pass ----------------------------------------------------------------------------------------

def test_q3_passes_on_solution():
    assert q3.evaluate(run_solution(q3)["lora_forward"]).status == CORRECT


def test_q3_merged_form_is_also_right():
    def merged(x, W, A, B, alpha, r):
        return x @ (W + (alpha / r) * B @ A).T

    assert q3.evaluate(merged).status == CORRECT


def test_q3_check_uses_a_nonzero_update():
    layer = peft_lora_layer(*_CASES[0][:2], _CASES[0][2], _CASES[0][3])
    x = torch.randn(3, _CASES[0][0])
    assert not torch.allclose(layer(x), layer.base_layer(x))


@pytest.mark.parametrize("wrong, says", [
    (lambda x, W, A, B, alpha, r: x @ W.T, "only the frozen layer"),
    (lambda x, W, A, B, alpha, r: x @ W.T + x @ A.T @ B.T, "alpha / r"),
    (lambda x, W, A, B, alpha, r: x @ W.T + alpha * (x @ A.T @ B.T), "not alpha alone"),
    (lambda x, W, A, B, alpha, r: x @ W.T + r / alpha * (x @ A.T @ B.T), "upside down"),
    (lambda x, W, A, B, alpha, r: (alpha / r) * (x @ A.T @ B.T), "missing"),
    (lambda x, W, A, B, alpha, r: x @ W + (alpha / r) * (x @ A @ B), "shapes"),
    (lambda x, W, A, B, alpha, r: 1.0, "torch tensor"),
    ("lora_forward", "function itself"),
])
def test_q3_rejects_typical_mistakes(wrong, says):
    outcome = q3.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message


def test_q3_function_returning_placeholder_is_not_attempted():
    assert q3.evaluate(lambda x, W, A, B, alpha, r: ...).status == NOT_ATTEMPTED


# ---- q4: which methods fit a memory budget -------------------------------------------------------------------------

def test_q4_passes_on_solution():
    fits = run_solution(q4)["fits"]
    assert fits == {"lora", "qlora"}  # Llama-3.1-8B on an L4 (22.5 GiB), batch 1 x 512, rank 16
    assert q4.evaluate(fits).status == CORRECT
    assert q4.evaluate(["QLoRA", "lora"]).status == CORRECT


@pytest.mark.parametrize("wrong, says", [
    ({"qlora"}, "missing"),
    ({"full", "lora", "qlora"}, "full does not fit"),
    ("qlora", "missing"),
    ({"lora", "adapters"}, "not among the choices"),
    (42, "set of method names"),
])
def test_q4_rejects_wrong_sets(wrong, says):
    outcome = q4.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message
