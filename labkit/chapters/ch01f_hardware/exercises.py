"""Lab 01f exercises: seed everything so two runs match, what a run record is missing, canary exposure from ranks,
and the DPO loss of one pair from log-probabilities."""

from __future__ import annotations

import math
import random

from ...grading import Args, Exercise, NotAttempted, expect_function, is_placeholder
from .align import dpo_pair_loss
from .repro import RECORD_FIELDS, missing_fields

# ---- q1: seed everything so two runs match ---------------------------------------------------------------------------


def _draws() -> tuple:
    import numpy as np
    import torch

    return random.random(), float(np.random.rand()), float(torch.rand(1))


def _check_seeding(func, *context):
    if not callable(func):
        return f"pass the function itself (no parentheses), not a value of type {type(func).__name__}."
    try:
        runs = []
        for seed in (7, 7, 8):
            random.seed(12345 + len(runs))  # scramble every generator between calls, as other code would
            import numpy as np
            import torch

            np.random.seed(54321 + len(runs))
            torch.manual_seed(999 + len(runs))
            if is_placeholder(func(seed)):
                raise NotAttempted
            runs.append(_draws())
    except (NotAttempted, NotImplementedError):
        raise NotAttempted from None
    except Exception as err:  # noqa: BLE001
        return f"your function raised {type(err).__name__}: {err}"
    (a_py, a_np, a_t), (b_py, b_np, b_t), other = runs
    if a_py != b_py:
        return "Python's own `random` module is not seeded: the data order often comes from it."
    if a_np != b_np:
        return "numpy is not seeded: many data pipelines and augmentations draw from numpy's generator."
    if a_t != b_t:
        return "torch is not seeded: the weight init and dropout masks come from torch's generator."
    if other == runs[0]:
        return "two different seeds gave the same numbers: use the seed you are given, not a constant."
    return None


q1 = Exercise(
    "q1", lab="lab01f", title="Seed everything so two runs match",
    checker=_check_seeding,
    hints=("Three generators feed a training run: Python's `random`, numpy's and torch's.",
           "Each has its own seeding call: random.seed, np.random.seed, torch.manual_seed (CUDA: manual_seed_all).",
           "Call all three with the seed you are given."),
    solution_code="import random\nimport numpy as np\nimport torch\n\n"
                  "def my_seed_everything(seed):\n    random.seed(seed)\n    np.random.seed(seed)\n"
                  "    torch.manual_seed(seed)\n    if torch.cuda.is_available():\n"
                  "        torch.cuda.manual_seed_all(seed)",
)

# ---- q2: what a run record is missing -------------------------------------------------------------------------------

RECORD_CASES = [
    Args({"config": {"lr": 1e-3}, "seed": 0, "hardware": {"cores": 2}}),
    Args({"versions": {"torch": "2.13.0"}, "git_commit": "abc", "config": {"lr": 1e-3}, "data_hash": "9f",
          "seed": 0, "hardware": {"cores": 2}}),
    Args({"versions": {}, "git_commit": None, "config": {"lr": 2e-4}, "data_hash": "", "seed": 3}),
    Args({"label": "run", "final_loss": 1.2}),
    Args({"versions": {"torch": "2.13.0"}, "config": {"lr": 1e-3}, "seed": 0, "data_hash": "ab", "hardware": {}}),
]

q2 = Exercise(
    "q2", lab="lab01f", title="What a run record is missing",
    checker=expect_function(missing_fields, RECORD_CASES, mistakes=[
        (lambda r: [k for k in RECORD_FIELDS if k not in r], ("a field that is there but empty (None, '', {}) "
                                                             "restores nothing either: count it as missing.")),
        (lambda r: sorted(k for k in RECORD_FIELDS if r.get(k) in (None, "", {}, [])),
         "keep the fields in the order of RECORD_FIELDS, not alphabetical."),
        (lambda r: [k for k in RECORD_FIELDS if not r.get(k)], ("seed 0 is a perfectly good seed: only None, "
                                                               "'', {} and [] count as missing.")),
    ]),
    hints=("Go through RECORD_FIELDS in order and keep the names the record does not fill.",
           "A field counts as missing when it is absent or empty: None, '', {} or [].",
           "Careful with the seed: 0 is falsy in Python but it is a real seed."),
    solution_code="def my_missing_fields(record):\n"
                  "    return [name for name in RECORD_FIELDS if record.get(name) in (None, '', {}, [])]",
)

# ---- q3: canary exposure from ranks ----------------------------------------------------------------------------------


def _exposure(rank, n_candidates):
    return math.log2(n_candidates) - math.log2(rank)


EXPOSURE_CASES = [Args(1, 1000), Args(500, 1000), Args(1000, 1000), Args(3, 1_000_000), Args(17, 4096)]

q3 = Exercise(
    "q3", lab="lab01f", title="Canary exposure from ranks",
    checker=expect_function(_exposure, EXPOSURE_CASES, rel_tol=1e-9, abs_tol=1e-9, mistakes=[
        (lambda r, n: math.log(n) - math.log(r), "exposure is measured in bits: use log base 2."),
        (lambda r, n: math.log2(r), "rank 1 (the secret is the model's favourite) must give the largest exposure."),
        (lambda r, n: math.log2(n) - math.log2(r + 1), "ranks start at 1: the most likely candidate has rank 1."),
        (lambda r, n: r / n, "that is the rank as a share of the candidates; exposure is its negative log2."),
    ]),
    hints=("Exposure (Carlini et al. 2019) compares the secret's rank with the number of candidates.",
           "A secret ranked 1 of N is as exposed as it can be: log2(N) bits. A secret ranked N is not exposed: 0.",
           "exposure = log2(N) - log2(rank)."),
    solution_code="import math\n\ndef my_exposure(rank, n_candidates):\n"
                  "    return math.log2(n_candidates) - math.log2(rank)",
)

# ---- q4: the DPO loss of one pair --------------------------------------------------------------------------------------

DPO_CASES = [Args(-12.0, -15.0, -13.0, -14.0, 0.1), Args(-5.0, -5.0, -5.0, -5.0, 0.1),
             Args(-20.0, -10.0, -18.0, -11.0, 0.5), Args(-30.0, -40.0, -35.0, -35.0, 0.05), Args(-8, -9, -8, -9, 1.0)]

q4 = Exercise(
    "q4", lab="lab01f", title="The DPO loss of one pair",
    checker=expect_function(dpo_pair_loss, DPO_CASES, rel_tol=1e-9, abs_tol=1e-12, mistakes=[
        (lambda lc, lr, rc, rr, b: math.log1p(math.exp(-b * (lc - lr))),
         "the reference model is missing: DPO compares log-ratios to the reference, not raw log-probabilities."),
        (lambda lc, lr, rc, rr, b: math.log1p(math.exp(b * ((lc - rc) - (lr - rr)))),
         "the sign is flipped: the loss must fall as the chosen answer gains on the rejected one."),
        (lambda lc, lr, rc, rr, b: math.log1p(math.exp(-((lc - rc) - (lr - rr)))), "beta scales the margin."),
        (lambda lc, lr, rc, rr, b: -b * ((lc - rc) - (lr - rr)), "DPO's loss is -log σ(margin), not -margin."),
    ]),
    hints=("Each answer's implicit reward is β·(log π(y|x) − log π_ref(y|x)).",
           "The margin is reward(chosen) − reward(rejected); the loss is −log σ(margin).",
           "−log σ(m) = log(1 + exp(−m)): math.log1p(math.exp(-m))."),
    solution_code="import math\n\ndef my_dpo_loss(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta):\n"
                  "    margin = beta * ((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected))\n"
                  "    return math.log1p(math.exp(-margin))",
)
