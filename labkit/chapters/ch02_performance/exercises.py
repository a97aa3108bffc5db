"""Lab 02 exercises: activation bytes of one layer from Korthikanti's formula, the accumulation steps that reach an
effective batch under a memory cap, the operator that dominates a profile, and the fastest setting within a budget."""

from __future__ import annotations

from ...grading import Args, Exercise, expect_function

# ---- q1: activation bytes of one layer ------------------------------------------------------------------------------


def _layer_bytes(s, b, h, a):
    return s * b * h * (34 + 5 * a * s / h)


LAYER_CASES = [Args(2048, 1, 12288, 96), Args(128, 4, 576, 9), Args(1024, 8, 4096, 32), Args(512, 2, 2048, 16)]

q1 = Exercise(
    "q1", lab="lab02", title="Activation bytes of one layer (Korthikanti et al. 2022)",
    checker=expect_function(_layer_bytes, LAYER_CASES, rel_tol=1e-6, mistakes=[
        (lambda s, b, h, a: s * b * h * 34, ("that is the part that grows linearly with s; unfused attention also "
                                             "keeps the a·s² score matrices: add 5·a·s/h inside the bracket.")),
        (lambda s, b, h, a: 2 * s * b * h * (34 + 5 * a * s / h), ("the formula already counts 16-bit bytes: do not "
                                                                   "multiply by 2 again.")),
        (lambda s, b, h, a: s * b * h * (34 + 5 * a / h), "the attention scores grow with s²: the term is 5·a·s/h."),
    ]),
    hints=("Korthikanti et al. count s·b·h·34 bytes per layer for everything but the attention scores (16-bit).",
           "Unfused attention adds softmax output, dropout mask and dropout output: 5·a·s²·b bytes.",
           "Together: s·b·h·(34 + 5·a·s/h)."),
    solution_code="def layer_activation_bytes(s, b, h, a):\n"
                  "    return s * b * h * (34 + 5 * a * s / h)",
)

# ---- q2: accumulation steps under a memory cap ----------------------------------------------------------------------


def _accum_steps(fixed_gib, per_example_gib, cap_gib, target=32):
    for micro in sorted((m for m in range(1, target + 1) if target % m == 0), reverse=True):
        if fixed_gib + micro * per_example_gib <= cap_gib:
            return target // micro
    return None


ACCUM_CASES = [Args(2.0, 0.5, 8.0), Args(2.0, 0.3, 8.0), Args(1.0, 0.01, 4.0), Args(6.0, 1.5, 7.0),
               Args(6.0, 1.5, 7.5), Args(1.2, 0.07, 2.0, target=24)]

q2 = Exercise(
    "q2", lab="lab02", title="Accumulation steps for an effective batch of 32 under a memory cap",
    checker=expect_function(_accum_steps, ACCUM_CASES, mistakes=[
        (lambda f, p, c, target=32: -(-target // int((c - f) // p)) if (c - f) >= p else None,
         "the micro-batch must divide the target exactly, or the effective batch is not the target."),
        (lambda f, p, c, target=32: target // max(1, int(c // p)) if c >= p + f else None,
         "the weights and optimizer states (fixed_gib) take their share of the cap before any example does."),
        (lambda f, p, c, target=32: 1, "one step of 32 examples does not fit in every case: check the cap."),
    ]),
    hints=("Memory of a step ≈ fixed_gib + micro_batch × per_example_gib: only the micro-batch's activations grow.",
           "Try the divisors of the target from the largest down; keep the first whose memory fits the cap.",
           "The answer is target // micro_batch, or None if even one example does not fit."),
    solution_code="def accumulation_steps(fixed_gib, per_example_gib, cap_gib, target=32):\n"
                  "    for micro in sorted((m for m in range(1, target + 1) if target % m == 0), reverse=True):\n"
                  "        if fixed_gib + micro * per_example_gib <= cap_gib:\n"
                  "            return target // micro\n"
                  "    return None",
)

# ---- q3: which operator dominates a profile -------------------------------------------------------------------------


def _top_operator(table):
    return str(table.sort_values("self_ms", ascending=False)["operator"].iloc[0])


def _profile(rows):
    import pandas as pd

    class ProfileTable(pd.DataFrame):  # a short repr: a failure message names the case without printing its rows
        def __repr__(self):
            return f"<a profile table of {len(self)} operators>"

    return ProfileTable(rows, columns=["operator", "self_ms", "total_ms", "calls"])


PROFILE_CASES = [
    Args(_profile([("aten::linear", 1.0, 900.0, 200), ("aten::mm", 700.0, 700.0, 200), ("aten::add_", 50.0, 50.0, 900)])),
    Args(_profile([("aten::mul", 30.0, 30.0, 2000), ("aten::_foreach_add_", 300.0, 310.0, 3),
                   ("aten::addmm", 120.0, 150.0, 40)])),
    Args(_profile([("aten::bmm", 90.0, 95.0, 60), ("aten::softmax", 10.0, 400.0, 60),
                   ("aten::_softmax", 380.0, 380.0, 60)])),
]

q3 = Exercise(
    "q3", lab="lab02", title="Which operator dominates a profile",
    checker=expect_function(_top_operator, PROFILE_CASES, mistakes=[
        (lambda t: str(t.sort_values("total_ms", ascending=False)["operator"].iloc[0]),
         "total time counts the operators a call makes inside it (aten::linear calls aten::mm): use self time."),
        (lambda t: str(t.sort_values("calls", ascending=False)["operator"].iloc[0]),
         "the most frequent operator is not the most expensive one: sort by time."),
        (lambda t: str(t.sort_values("self_ms")["operator"].iloc[0]), "that is the cheapest one: sort descending."),
    ]),
    hints=("The profiler gives each operator a self time (its own work) and a total time (including its children).",
           "Wrapper operators (aten::linear) have a large total but a tiny self time.",
           "Return the 'operator' of the row with the largest 'self_ms'."),
    solution_code="def top_operator(table):\n"
                  "    return str(table.sort_values('self_ms', ascending=False)['operator'].iloc[0])",
)

# ---- q4: the fastest setting that fits a budget ---------------------------------------------------------------------


def _fastest_fitting(options, budget_gib):
    fitting = [o for o in options if o["mem_gib"] <= budget_gib]
    return max(fitting, key=lambda o: o["tokens_per_s"])["name"] if fitting else None


class _Options(list):  # a short repr: a failure message names the case without listing the options
    def __repr__(self):
        return f"<{len(self)} options>"


OPTIONS = _Options([{"name": "plain", "mem_gib": 2.4, "tokens_per_s": 300.0},
           {"name": "checkpointing", "mem_gib": 1.6, "tokens_per_s": 230.0},
           {"name": "lora", "mem_gib": 0.9, "tokens_per_s": 420.0},
           {"name": "lora+checkpointing", "mem_gib": 0.7, "tokens_per_s": 330.0},
           {"name": "bf16", "mem_gib": 2.2, "tokens_per_s": 510.0}])
BUDGET_CASES = [Args(OPTIONS, 2.0), Args(OPTIONS, 3.0), Args(OPTIONS, 0.8), Args(OPTIONS, 0.5),
                Args(_Options(OPTIONS[:2]), 2.4)]

q4 = Exercise(
    "q4", lab="lab02", title="The fastest setting that fits a memory budget",
    checker=expect_function(_fastest_fitting, BUDGET_CASES, mistakes=[
        (lambda o, b: max(o, key=lambda x: x["tokens_per_s"])["name"], "the fastest setting may not fit: filter first."),
        (lambda o, b: (max((x for x in o if x["mem_gib"] < b), key=lambda x: x["tokens_per_s"], default=None) or
                       {"name": None})["name"], "a setting that uses exactly the budget still fits: use <=."),
        (lambda o, b: min(o, key=lambda x: x["mem_gib"])["name"], ("the smallest setting fits, but it is not always "
                                                                  "the fastest one that fits.")),
    ]),
    hints=("Keep only the options whose mem_gib is at most the budget.",
           "Among those, pick the largest tokens_per_s; return its name.",
           "If nothing fits, return None."),
    solution_code="def fastest_fitting(options, budget_gib):\n"
                  "    fitting = [o for o in options if o['mem_gib'] <= budget_gib]\n"
                  "    return max(fitting, key=lambda o: o['tokens_per_s'])['name'] if fitting else None",
)
