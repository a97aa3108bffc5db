"""Lab 03 exercises: VeRA's count for a layer, LoKr's count for SmolLM2's q_proj, rsLoRA's scale, the effective
rank from singular values, and the best placement under a budget read from the lab's own sweep."""

from __future__ import annotations

import math

from ...grading import Args, Exercise, NotAttempted, expect_function, expect_value, is_placeholder
from .spectrum import effective_rank

# ---- q1: VeRA's trainable numbers for one layer --------------------------------------------------------------------


def _vera_count(fan_in, fan_out, rank):
    return fan_out + rank


VERA_CASES = [Args(576, 576, 256), Args(576, 192, 256), Args(1536, 576, 16), Args(64, 128, 1024)]

q1 = Exercise(
    "q1", lab="lab03", title="VeRA's trainable numbers for one layer",
    checker=expect_function(_vera_count, VERA_CASES, mistakes=[
        (lambda i, o, r: r * (i + o), "that is LoRA's count (A and B): in VeRA A and B are frozen and shared."),
        (lambda i, o, r: r * (i + o) + o + r, "A and B do not train in VeRA: count only what does."),
        (lambda i, o, r: i + r, "b scales the layer's outputs, so its length is fan_out, not fan_in."),
        (lambda i, o, r: o + i, "d has one entry per rank, not per input."),
    ]),
    hints=("VeRA computes ΔW = Λ_b · B · Λ_d · A with A (r x in) and B (out x r) random, frozen and shared.",
           "Λ_b = diag(b) and Λ_d = diag(d): which lengths must b and d have for the product to fit?"),
    solution_code="def my_vera_count(fan_in, fan_out, rank):\n    return fan_out + rank  # b (out) and d (rank)",
)

# ---- q2: LoKr's trainable numbers on SmolLM2's q_proj ---------------------------------------------------------------

LOKR_FAN, LOKR_RANK = 576, 8  # q_proj of SmolLM2-135M: 576 -> 576; LoKr at rank 8, peft's default factor split

q2 = Exercise(
    "q2", lab="lab03", title="LoKr's trainable numbers on SmolLM2's q_proj",
    checker=expect_value(960, mistakes=[
        (1152, "576 = 24 x 24 on both sides, but the second factor is split at rank 8 here: is 8 < 24 / 2?"),
        (2 * 576 * 8, "that is LoRA at rank 8 (r x (in + out)): LoKr builds ΔW as a Kronecker product instead."),
        (576, "that is only the first factor W1 (24 x 24): add the second factor's pieces."),
        (384, "that is only the second factor's two pieces: W1 (24 x 24) trains too."),
    ]),
    hints=("peft splits each side near its square root: 576 = 24 x 24, so ΔW = W1 ⊗ W2 with W1 24 x 24 and W2 24 x 24.",
           "W1 stays a full matrix. W2 is split into (24 x r) and (r x 24) when r < max(24, 24) / 2."),
    solution_code="lokr_q_proj = 24 * 24 + (24 * 8 + 8 * 24)  # W1 full; W2 split at rank 8 (8 < 12)",
)

# ---- q3: rsLoRA's scale ---------------------------------------------------------------------------------------------


def _scale(alpha, rank, rslora):
    return alpha / math.sqrt(rank) if rslora else alpha / rank


SCALE_CASES = [Args(16, 8, False), Args(16, 64, True), Args(32, 4, True), Args(8, 1, True), Args(64, 16, False)]

q3 = Exercise(
    "q3", lab="lab03", title="LoRA's scale, with and without rsLoRA",
    checker=expect_function(_scale, SCALE_CASES, rel_tol=1e-9, mistakes=[
        (lambda a, r, rs: a / r, "with rslora=True the rank enters as its square root."),
        (lambda a, r, rs: a / math.sqrt(r), "with rslora=False LoRA divides by the rank itself."),
        (lambda a, r, rs: math.sqrt(a) / r if rs else a / r, "the square root is of the rank, not of alpha."),
        (lambda a, r, rs: r / math.sqrt(a) if rs else r / a, "alpha is on top: scale = alpha / (rank or its root)."),
    ]),
    hints=("LoRA multiplies B·A by alpha / r.", "rsLoRA (Kalajdzievski 2023) uses alpha / sqrt(r) instead."),
    solution_code="import math\n\ndef my_scale(alpha, rank, rslora):\n"
                  "    return alpha / math.sqrt(rank) if rslora else alpha / rank",
)

# ---- q4: the effective rank from singular values --------------------------------------------------------------------

RANK_CASES = [Args([10.0, 5.0, 4.0, 3.0, 1.0], 0.9), Args([3.0, 1.0, 0.0], 0.9), Args([1.0] * 10, 0.9),
              Args([2.0, 2.0, 1.0, 0.5], 0.8), Args([5.0], 0.9), Args([1.0, 1.0], 0.5)]


def _by_sigma(values, energy):  # energy as the plain sum of σ, not σ²
    total, running = sum(values), 0.0
    for k, v in enumerate(values, start=1):
        running += v
        if running >= energy * total:
            return k
    return len(values)


def _strict(values, energy):  # > instead of >=
    total, running = sum(v * v for v in values), 0.0
    for k, v in enumerate(values, start=1):
        running += v * v
        if running > energy * total:
            return k
    return len(values)


q4 = Exercise(
    "q4", lab="lab03", title="The effective rank from a list of singular values",
    checker=expect_function(effective_rank, RANK_CASES, mistakes=[
        (_strict, "count k as soon as the top-k energy reaches the share: >=, not >."),
        (lambda v, e: len([x for x in v if x > 0]), "that is the rank (non-zero σ), not the 90%-energy rank."),
        (_by_sigma, "energy is the sum of squared singular values (σ²), not of σ."),
        (lambda v, e: _by_sigma(v, e) - 1, "off by one: k counts singular values, starting at 1."),
    ]),
    hints=("Energy of the top k: σ_1² + ... + σ_k². Total energy: the sum over all of them.",
           "Return the smallest k (from 1) with top-k energy >= energy x total; the values come sorted, largest first."),
    solution_code="def my_effective_rank(singular_values, energy=0.9):\n"
                  "    total = sum(s * s for s in singular_values)\n"
                  "    running = 0.0\n"
                  "    for k, s in enumerate(singular_values, start=1):\n"
                  "        running += s * s\n"
                  "        if running >= energy * total:\n"
                  "            return k\n"
                  "    return len(singular_values)",
)

# ---- q5: the best placement under the budget, from the lab's own sweep ----------------------------------------------


def _check_placement(answer, table):
    if is_placeholder(answer):
        raise NotAttempted
    names = list(table["placement"])
    if not isinstance(answer, str) or answer not in names:
        return f"answer with one of the placement names in the table: {', '.join(names)}."
    best = table.sort_values("eval_loss").iloc[0]["placement"]
    if answer == best:
        return None
    if answer == table.sort_values("trainable").iloc[-1]["placement"]:
        return "that one trains the most parameters; the budget is about equal, so compare the held-out loss."
    if answer == table.sort_values("final_loss").iloc[0]["placement"]:
        return "that is the lowest training loss: the question asks for quality on held-out examples."
    return "read the eval_loss column: lower held-out loss is better quality."


q5 = Exercise(
    "q5", lab="lab03", title="The best placement under an equal budget", checker=_check_placement,
    context=("placement_table",),
    hints=("All placements train about the same number of parameters.",
           "Pick the row with the lowest held-out answer loss (eval_loss)."),
    solution_code='best_placement = placement_table.sort_values("eval_loss").iloc[0]["placement"]',
)
