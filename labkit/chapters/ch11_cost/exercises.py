"""Lab 11 exercises: MFU from measured numbers, the expected spot cost with preemptions, the break-even number of
tokens, and the Chinchilla-optimal N and D for a budget."""

from __future__ import annotations

import math

from ...grading import Args, Exercise, expect_function
from .budget import spot_hours
from .scaling import chinchilla_optimal

# ---- q1: MFU from measured numbers -----------------------------------------------------------------------------------


def _mfu(n_params, tokens_per_s, peak_tflops):
    return 6 * n_params * tokens_per_s / (peak_tflops * 1e12)


MFU_CASES = [Args(135e6, 1200.0, 0.4), Args(7e9, 3000.0, 312.0), Args(1e9, 50.0, 1.6), Args(124e6, 9e4, 65.0)]

q1 = Exercise(
    "q1", lab="lab11", title="MFU from measured numbers",
    checker=expect_function(_mfu, MFU_CASES, rel_tol=1e-6, mistakes=[
        (lambda n, t, p: 2 * n * t / (p * 1e12), ("that counts only the forward pass (2·N per token): training does "
                                                 "forward and backward, 6·N per token.")),
        (lambda n, t, p: 6 * n * t / p, "peak_tflops is in TFLOP/s: multiply it by 1e12 to get FLOP/s."),
        (lambda n, t, p: 4 * n * t / (p * 1e12), ("4·N per token is a frozen model's count; this asks for full "
                                                 "fine-tuning, 6·N.")),
    ]),
    hints=("MFU = achieved FLOP/s / peak FLOP/s.",
           "Full fine-tuning does 6 FLOPs per parameter and token (2 forward, 4 backward): achieved = 6·N·tokens/s.",
           "Peak TFLOP/s times 1e12 is peak FLOP/s."),
    solution_code="def my_mfu(n_params, tokens_per_s, peak_tflops):\n"
                  "    return 6 * n_params * tokens_per_s / (peak_tflops * 1e12)",
)

# ---- q2: the expected spot cost with preemptions ---------------------------------------------------------------------


def _spot_cost(work_h, usd_per_h, rate, every_h, restart_h):
    return usd_per_h * spot_hours(work_h, preemptions_per_hour=rate, checkpoint_every_h=every_h,
                                  restart_h=restart_h, checkpoint_write_h=0.0)


SPOT_CASES = [Args(10.0, 1.2, 0.1, 1.0, 0.2), Args(100.0, 0.9, 0.02, 0.5, 0.1), Args(5.0, 2.0, 0.0, 1.0, 0.5),
              Args(40.0, 1.0, 0.25, 2.0, 0.25)]

q2 = Exercise(
    "q2", lab="lab11", title="The expected spot cost with preemptions",
    checker=expect_function(_spot_cost, SPOT_CASES, rel_tol=1e-6, mistakes=[
        (lambda w, u, r, e, s: u * w, "that ignores preemptions: each one loses work you pay for again."),
        (lambda w, u, r, e, s: u * w * (1 + r * (e / 2 + s)), ("close: but the repeated work can be preempted "
                                                               "too; the wall time W solves W = work + rate·W·loss.")),
        (lambda w, u, r, e, s: u * w / (1 - r * (e + s)), ("a preemption loses on average half a checkpoint "
                                                           "interval of work, not a whole one.")),
    ]),
    hints=("A preemption loses the work since the last checkpoint (on average half the interval) plus the restart.",
           "Preemptions happen at `rate` per wall-clock hour, and the wall time W includes the redone work.",
           "W = work + rate·W·(every/2 + restart), so W = work / (1 - rate·(every/2 + restart)); cost = W × price."),
    solution_code="def my_spot_cost(work_h, usd_per_h, rate, every_h, restart_h):\n"
                  "    wall_h = work_h / (1 - rate * (every_h / 2 + restart_h))\n"
                  "    return wall_h * usd_per_h",
)

# ---- q3: the break-even number of tokens ----------------------------------------------------------------------------


def _breakeven(fine_tune_usd, own_per_mtok, hosted_per_mtok):
    saving = hosted_per_mtok - own_per_mtok
    return math.inf if saving <= 0 else fine_tune_usd / saving * 1e6


BREAKEVEN_CASES = [Args(500.0, 0.05, 0.30), Args(40.0, 0.002, 2.5), Args(1200.0, 0.4, 0.6), Args(10.0, 1.0, 0.4)]

q3 = Exercise(
    "q3", lab="lab11", title="The break-even number of tokens",
    checker=expect_function(_breakeven, BREAKEVEN_CASES, rel_tol=1e-6, mistakes=[
        (lambda f, o, h: f / h * 1e6, "that forgets that serving your own model costs something per token too."),
        (lambda f, o, h: f / (h - o) if h > o else math.inf, "prices are per million tokens: the answer is in tokens."),
        (lambda f, o, h: f / abs(h - o) * 1e6, ("where your own tokens cost more than the hosted ones, you never "
                                               "break even: return math.inf.")),
    ]),
    hints=("Fine-tuning is paid once; after that each million tokens saves (hosted price - own price).",
           "Tokens to break even = one-off cost / saving per token; prices are per million tokens.",
           "If the saving is zero or negative, there is no break-even: return math.inf."),
    solution_code="def my_breakeven(fine_tune_usd, own_per_mtok, hosted_per_mtok):\n"
                  "    saving = hosted_per_mtok - own_per_mtok\n"
                  "    return math.inf if saving <= 0 else fine_tune_usd / saving * 1e6",
)

# ---- q4: Chinchilla-optimal N and D ---------------------------------------------------------------------------------


CHINCHILLA_CASES = [Args(5.76e23), Args(1e21), Args(3e12), Args(6e19)]

q4 = Exercise(
    "q4", lab="lab11", title="Chinchilla-optimal N and D for a budget",
    # a pair of numbers is compared element by element within rel_tol (grading's tolerance covers sequences)
    checker=expect_function(chinchilla_optimal, CHINCHILLA_CASES, rel_tol=1e-3, mistakes=[
        (lambda c: (math.sqrt(c / 20), 20 * math.sqrt(c / 20)), "C = 6·N·D: the 6 is missing."),
        (lambda c: (20 * math.sqrt(c / 120), math.sqrt(c / 120)), "N and D are swapped: D, the tokens, is 20 × N."),
        (lambda c: (c / 120, 20 * c / 120), "with D = 20·N, C = 6·N·20·N = 120·N²: take a square root."),
    ]),
    hints=("Training FLOPs: C = 6·N·D.", "Chinchilla's rule of thumb: D ≈ 20 tokens per parameter.",
           "Substitute: C = 120·N², so N = sqrt(C / 120) and D = 20·N. Return (N, D)."),
    solution_code="def my_chinchilla(flops):\n"
                  "    n = math.sqrt(flops / 120)\n"
                  "    return n, 20 * n",
)
