"""Lab 12 exercises pass on the solutions, fail on typical mistakes, and say "not attempted" on placeholders."""

import math

import pytest

from labkit.chapters.ch12_qlora.exercises import BUDGET_PARAMS, BUDGET_RANK, q1, q2, q3, q4
from labkit.grading import CORRECT, INCORRECT, NOT_ATTEMPTED
from labkit.grading.labs import load_lab
from labkit.units import IGNORE_INDEX


@pytest.fixture(scope="module")
def smollm2_shaped():
    """A model with SmolLM2-135M's shapes on the meta device: real module names, no memory, no weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)
    with torch.device("meta"):
        return LlamaForCausalLM(cfg)


def status(exercise, answer, *context):
    return exercise.evaluate(answer, *context).status


def message(exercise, answer, *context):
    return exercise.evaluate(answer, *context).message


def test_lab12_has_four_exercises():
    assert list(load_lab("lab12")) == ["q1", "q2", "q3", "q4"]


# q1: bytes of NF4 with and without double quantization
def nf4_bytes(num_params, double_quant=True, blocksize=64, nested_blocksize=256):
    blocks = math.ceil(num_params / blocksize)
    scales = blocks + 4 * math.ceil(blocks / nested_blocksize) if double_quant else 4 * blocks
    return num_params / 2 + scales


def test_q1_solution_and_hard_coded_values():
    assert status(q1, nf4_bytes) == CORRECT
    assert nf4_bytes(7_000_000_000) == pytest.approx(3_611_083_988, rel=1e-9)  # 4.127 bits per weight
    assert nf4_bytes(7_000_000_000, double_quant=False) == pytest.approx(3_937_500_000)  # 4.5 bits per weight


@pytest.mark.parametrize("wrong, says", [
    (lambda n, double_quant=True, blocksize=64, nested_blocksize=256: n / 2, "add the scales"),
    (lambda n, double_quant=True, blocksize=64, nested_blocksize=256: n / 2 + 4 * n / blocksize, "ignores double"),
    (lambda n, double_quant=True, blocksize=64, nested_blocksize=256: 8 * nf4_bytes(n, double_quant, blocksize,
                                                                                    nested_blocksize), "bits"),
    (lambda n, double_quant=True, blocksize=64, nested_blocksize=256: n / 2 + (
        n / blocksize + 4 * n / blocksize / nested_blocksize if not double_quant else 4 * n / blocksize),
     "other way round"),
    (lambda n, double_quant=True, blocksize=64, nested_blocksize=256: n / 2 + n / 64, "not right yet"),
])
def test_q1_rejects_typical_mistakes(wrong, says):
    outcome = q1.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message
    assert "3611083988" not in outcome.message and "3,611" not in outcome.message


def test_q1_placeholders():
    assert status(q1, ...) == NOT_ATTEMPTED

    def stub(num_params, double_quant=True, blocksize=64, nested_blocksize=256):
        return ...

    assert status(q1, stub) == NOT_ATTEMPTED
    assert "no parentheses" in message(q1, 42)


# q2: answer-only labels
def answer_only_labels(prompt_ids, answer_ids):
    return [IGNORE_INDEX] * len(prompt_ids) + list(answer_ids)


def test_q2_solution_matches_the_kits_batches():

    assert status(q2, answer_only_labels) == CORRECT
    assert answer_only_labels([1, 2], [3, 4]) == [IGNORE_INDEX, IGNORE_INDEX, 3, 4]


@pytest.mark.parametrize("wrong, says", [
    (lambda p, a: list(p) + list(a), "hide the prompt"),
    (lambda p, a: list(p) + [IGNORE_INDEX] * len(a), "other way round"),
    (lambda p, a: [0] * len(p) + list(a), "0 is a real token"),
    (lambda p, a: list(a), "line up"),
    (lambda p, a: [IGNORE_INDEX] * (len(p) - 1) + list(a) + [IGNORE_INDEX], "no shifting"),
])
def test_q2_rejects_typical_mistakes(wrong, says):
    outcome = q2.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message


def test_q2_placeholder_and_errors():
    assert status(q2, ...) == NOT_ATTEMPTED

    def raises(prompt_ids, answer_ids):
        raise NotImplementedError

    assert status(q2, raises) == NOT_ATTEMPTED
    assert "raised ZeroDivisionError" in message(q2, lambda p, a: 1 / 0)


# q3: target modules for a parameter budget (rank 8, 1.5M parameters on SmolLM2-135M)
def test_q3_budget_numbers_are_the_ones_the_lab_states():
    assert (BUDGET_RANK, BUDGET_PARAMS) == (8, 1_500_000)


@pytest.mark.parametrize("answer", [["gate_proj", "up_proj", "q_proj", "k_proj"],
                                    ["down_proj", "up_proj", "o_proj", "v_proj"],
                                    ("gate_proj", "down_proj", "k_proj", "q_proj")])
def test_q3_accepts_every_best_choice(answer, smollm2_shaped):
    assert status(q3, answer, smollm2_shaped) == CORRECT  # 2 x 506,880 + 276,480 + 184,320 = 1,474,560


@pytest.mark.parametrize("answer, says", [
    (["gate_proj", "up_proj", "down_proj"], "over the budget"),  # 1,520,640
    ("all-linear", "list of module names"),
    (["q_proj", "k_proj", "v_proj", "o_proj"], "another choice trains more"),  # 921,600
    (["gate_proj", "up_proj", "k_proj", "v_proj"], "another choice trains more"),  # 1,382,400
    (["gate_proj", "up_proj", "q_proj", "q_proj"], "appears twice"),
    (["gate_proj", "lm_head"], "not a linear layer"),
])
def test_q3_rejects_typical_mistakes(answer, says, smollm2_shaped):
    outcome = q3.evaluate(answer, smollm2_shaped)
    assert outcome.status == INCORRECT and says in outcome.message
    assert "1474560" not in outcome.message and "gate_proj', 'up_proj', 'q_proj" not in outcome.message


def test_q3_placeholder_and_missing_model(smollm2_shaped):
    assert status(q3, ..., smollm2_shaped) == NOT_ATTEMPTED
    assert "q3.check(your_answer, model)" in message(q3, ["q_proj"])


# q4: adapter bytes for a rank
def adapter_bytes(layer_shapes, rank, bytes_per_param=4):
    return sum(rank * (n_in + n_out) for n_in, n_out in layer_shapes) * bytes_per_param


def test_q4_solution_and_a_hard_coded_size():
    assert status(q4, adapter_bytes) == CORRECT
    shapes = [(576, 576), (576, 192), (576, 192), (576, 576), (576, 1536), (576, 1536), (1536, 576)] * 30
    assert adapter_bytes(shapes, 16) == 19_537_920  # SmolLM2-135M, all-linear, r=16, fp32: 4,884,480 params


@pytest.mark.parametrize("wrong, says", [
    (lambda s, r, bytes_per_param=4: sum(r * i * o for i, o in s) * bytes_per_param, "not rank copies"),
    (lambda s, r, bytes_per_param=4: sum(r * i for i, o in s) * bytes_per_param, "A only"),
    (lambda s, r, bytes_per_param=4: sum(r * o for i, o in s) * bytes_per_param, "B only"),
    (lambda s, r, bytes_per_param=4: sum(r * (i + o) for i, o in s), "parameter count"),
    (lambda s, r, bytes_per_param=4: 8 * sum(r * (i + o) for i, o in s) * bytes_per_param, "bits"),
    (lambda s, r, bytes_per_param=4: sum(r * (i + o) for i, o in s) * 4, "not right yet"),  # ignores the dtype
])
def test_q4_rejects_typical_mistakes(wrong, says):
    outcome = q4.evaluate(wrong)
    assert outcome.status == INCORRECT and says in outcome.message


def test_q4_placeholder():
    assert status(q4, ...) == NOT_ATTEMPTED

    def stub(layer_shapes, rank, bytes_per_param=4):
        return ...

    assert status(q4, stub) == NOT_ATTEMPTED


def test_solutions_printed_by_the_exercises_run(capsys, smollm2_shaped):
    """The code solution() shows is the code that passes."""
    import labkit as lk

    for exercise, name in ((q1, "nf4_bytes"), (q2, "answer_only_labels"), (q4, "adapter_bytes")):
        scope = {"math": math, "lk": lk}
        exec(exercise.solution_code, scope)  # noqa: S102  (our own solution text)
        assert status(exercise, scope[name]) == CORRECT
    scope = {"lk": lk, "model": smollm2_shaped}
    exec(q3.solution_code, scope)  # noqa: S102
    assert status(q3, scope["targets"], smollm2_shaped) == CORRECT
