"""Lab 12 exercises: the bytes of NF4 with double quantization, answer-only labels, a LoRA budget, adapter size."""

from __future__ import annotations

import itertools
import math

from ...grading import Args, Exercise, expect_function
from ...units import IGNORE_INDEX

BUDGET_RANK = 8  # q3: the LoRA rank of the budget exercise
BUDGET_PARAMS = 1_500_000  # q3: at most this many trainable LoRA parameters


def _nf4_bytes(num_params, double_quant=True, blocksize=64, nested_blocksize=256):
    blocks = math.ceil(num_params / blocksize)
    scales = blocks + 4 * math.ceil(blocks / nested_blocksize) if double_quant else 4 * blocks
    return num_params / 2 + scales


_NF4_CASES = [Args(7_241_732_096, double_quant=False), Args(7_000_000_000), Args(8_030_261_248),
              Args(134_515_008, blocksize=128), Args(1_000_000, nested_blocksize=128),
              Args(70_000_000_000, double_quant=False, blocksize=32)]

q1 = Exercise(
    "q1", lab="lab12", title="Bytes of a model in NF4, with and without double quantization",
    checker=expect_function(
        _nf4_bytes, _NF4_CASES, rel_tol=1e-4,
        mistakes=[
            (lambda n, double_quant=True, blocksize=64, nested_blocksize=256: n / 2,
             "the 4-bit values are right; now add the scales: one absmax per block of weights."),
            (lambda n, double_quant=True, blocksize=64, nested_blocksize=256: n * 4 / 8 + 4 * n / blocksize,
             ("that ignores double_quant: with it, each block's absmax is stored in 1 byte (8 bits), plus one fp32 "
             "scale per nested block of absmax values.")),
            (lambda n, double_quant=True, blocksize=64, nested_blocksize=256: 8 * _nf4_bytes(
                n, double_quant, blocksize, nested_blocksize), "that looks like bits: divide by 8 for bytes."),
            (lambda n, double_quant=True, blocksize=64, nested_blocksize=256: n
             + _nf4_bytes(n, double_quant, blocksize, nested_blocksize) - n / 2,
             "4 bits is half a byte: two weights share one byte."),
            (lambda n, double_quant=True, blocksize=64, nested_blocksize=256: n / 2 + (
                n / blocksize + 4 * n / blocksize / nested_blocksize if not double_quant else 4 * n / blocksize),
             "double_quant is the other way round: with it the absmax values are 8-bit, without it they are fp32."),
        ]),
    hints=(("Three parts: the 4-bit values, one absmax scale per block of `blocksize` weights, and (with double "
           "quantization) one fp32 scale per `nested_blocksize` absmax values."),
           ("Without double quantization each absmax is fp32 (4 bytes); with it, 1 byte, plus 4 bytes per group of "
           "nested_blocksize absmax values."),
           ("The quant table above shows the same accounting in bits per parameter: 4 + 32/64 without, "
           "4 + 8/64 + 32/(64*256) with double quantization.")),
    solution_code="def nf4_bytes(num_params, double_quant=True, blocksize=64, nested_blocksize=256):\n"
                  "    blocks = math.ceil(num_params / blocksize)\n"
                  "    if double_quant:\n"
                  "        scales = blocks * 1 + math.ceil(blocks / nested_blocksize) * 4  # 8-bit absmax + fp32 "
                  "scales\n"
                  "    else:\n"
                  "        scales = blocks * 4  # one fp32 absmax per block\n"
                  "    return num_params / 2 + scales",
)


def _answer_only_labels(prompt_ids, answer_ids):
    return [IGNORE_INDEX] * len(prompt_ids) + list(answer_ids)


_LABEL_CASES = [Args([1, 9690, 198, 4093], [37, 2]), Args([5, 6, 7], [8]), Args([1], [2, 3, 4, 5]),
                Args([11, 12, 13, 14, 15, 16], [21, 22, 2])]

q2 = Exercise(
    "q2", lab="lab12", title="Labels for loss on the answer only",
    checker=expect_function(
        _answer_only_labels, _LABEL_CASES,
        mistakes=[
            (lambda p, a: list(p) + list(a), "every token is trained on: hide the prompt tokens from the loss."),
            (lambda p, a: list(p) + [IGNORE_INDEX] * len(a), "the other way round: the answer should carry the loss."),
            (lambda p, a: [0] * len(p) + list(a),
             "0 is a real token id: the loss would learn to predict it. Use the value cross-entropy ignores."),
            (lambda p, a: list(a), "the labels line up with input_ids: one label per prompt token and per answer token."),
            (lambda p, a: [IGNORE_INDEX] * (len(p) - 1) + list(a) + [IGNORE_INDEX],
             "no shifting needed: the model shifts labels by one position itself."),
        ]),
    hints=("The model's input is prompt_ids + answer_ids; labels has the same length.",
           "Prompt positions get the label that torch's cross_entropy skips (ignore_index).",
           "That value is torch's ignore_index, lk.units.IGNORE_INDEX; the answer positions keep their token ids."),
    solution_code="def answer_only_labels(prompt_ids, answer_ids):\n"
                  "    return [lk.units.IGNORE_INDEX] * len(prompt_ids) + list(answer_ids)",
)


def _layer_costs(model, rank):
    """LoRA parameters per target short name: rank * (in + out) summed over every layer with that name."""
    from ...methods import linear_module_names

    names = set(linear_module_names(model))
    costs = dict.fromkeys(sorted(names), 0)
    for full, module in model.named_modules():
        short = full.rsplit(".", 1)[-1]
        if short in names and hasattr(module, "in_features"):
            costs[short] += rank * (module.in_features + module.out_features)
    return costs


def _best_under_budget(costs, budget):
    sums = (sum(costs[n] for n in combo) for k in range(len(costs) + 1) for combo in itertools.combinations(costs, k))
    return max(s for s in sums if s <= budget)


def _check_budget(targets, model):
    if isinstance(targets, str):
        return "give a list of module names, e.g. ['q_proj', 'v_proj'] ('all-linear' is over the budget)."
    costs = _layer_costs(model, BUDGET_RANK)
    targets = list(targets)
    unknown = [t for t in targets if t not in costs]
    if unknown:
        return f"{unknown[0]!r} is not a linear layer of this model: choose from {sorted(costs)}."
    if len(set(targets)) != len(targets):
        return "a module name appears twice: each one counts once."
    spent = sum(costs[t] for t in targets)
    if spent > BUDGET_PARAMS:
        return "that choice goes over the budget: drop or swap a module."
    if spent < _best_under_budget(costs, BUDGET_PARAMS):
        return "that fits, but another choice trains more parameters without going over: swap or add a module."
    return None


q3 = Exercise(
    "q3", lab="lab12", title="Target modules for a parameter budget",
    checker=_check_budget, context=("model",),
    hints=(("A LoRA on a Linear(in, out) layer adds rank * (in + out) parameters; every decoder layer has one of "
           "each module."),
           ("Print module.in_features and module.out_features for one layer's q_proj, k_proj, ..., down_proj: "
           "with GQA, k_proj and v_proj are narrower than q_proj."),
           ("The MLP modules are the most expensive; fill the budget with big ones first, then see which small "
           "ones still fit.")),
    solution_code="costs = {}\n"
                  "for name in lk.methods.linear_module_names(model):\n"
                  "    layer = next(m for n, m in model.named_modules() if n.endswith(name))\n"
                  "    costs[name] = 8 * (layer.in_features + layer.out_features) * model.config.num_hidden_layers\n"
                  "# the best fit under 1.5M: two of the MLP modules, one of q/o and one of k/v\n"
                  "targets = ['gate_proj', 'up_proj', 'q_proj', 'k_proj']",
)


def _adapter_bytes(layer_shapes, rank, bytes_per_param=4):
    return sum(rank * (n_in + n_out) for n_in, n_out in layer_shapes) * bytes_per_param


_SHAPES = [(576, 576), (576, 192), (576, 1536), (1536, 576)]
_ADAPTER_CASES = [Args(_SHAPES, 8), Args(_SHAPES * 30, 16), Args([(4096, 4096)], 64, bytes_per_param=2),
                  Args([(10, 20)], 1), Args([(4096, 14336), (14336, 4096)], 4, bytes_per_param=2)]

q4 = Exercise(
    "q4", lab="lab12", title="Adapter size on disk for a rank",
    checker=expect_function(
        _adapter_bytes, _ADAPTER_CASES,
        mistakes=[
            (lambda s, r, bytes_per_param=4: sum(r * i * o for i, o in s) * bytes_per_param,
             "LoRA's matrices are A (rank x in) and B (out x rank), not rank copies of the full weight."),
            (lambda s, r, bytes_per_param=4: sum(r * i for i, o in s) * bytes_per_param,
             "that counts A only: B (out x rank) is saved too."),
            (lambda s, r, bytes_per_param=4: sum(r * o for i, o in s) * bytes_per_param,
             "that counts B only: A (rank x in) is saved too."),
            (lambda s, r, bytes_per_param=4: sum(r * (i + o) for i, o in s),
             "that is the parameter count: multiply by bytes_per_param."),
            (lambda s, r, bytes_per_param=4: sum(r * (i + o) for i, o in s) * bytes_per_param * 8,
             "that looks like bits: bytes, please."),
        ]),
    hints=("Each adapted layer stores A with shape (rank, in) and B with shape (out, rank).",
           "Sum rank * (in + out) over the layers, then multiply by the bytes per parameter."),
    solution_code="def adapter_bytes(layer_shapes, rank, bytes_per_param=4):\n"
                  "    return sum(rank * (n_in + n_out) for n_in, n_out in layer_shapes) * bytes_per_param",
)
