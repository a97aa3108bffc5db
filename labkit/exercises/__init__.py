"""Each lab's graded exercises: ``labkit/exercises/labNN.py`` goes with ``labs/NN_topic.ipynb``.

How to add exercises to a lab (a complete small ``labkit/exercises/lab07.py``):

    '''Lab 07 exercises: gradient accumulation.'''

    from labkit.grading import Args, Exercise, expect_function, expect_value

    def _tokens_per_step(batch_size, seq_len, accum_steps=1):
        return batch_size * seq_len * accum_steps

    q1 = Exercise(
        "q1", lab="lab07", title="Tokens per optimizer step",
        checker=expect_function(_tokens_per_step, [Args(4, 128), Args(2, 512, accum_steps=8), Args(1, 1)],
                                mistakes=[(lambda b, s, a=1: b * s, "Each optimizer step sees accum_steps batches.")]),
        hints=("Count tokens in one batch first.", "Then multiply by the number of batches per step."),
        solution_code="def tokens_per_step(batch_size, seq_len, accum_steps=1):\\n"
                      "    return batch_size * seq_len * accum_steps",
    )

    q2 = Exercise(
        "q2", lab="lab07", title="Effective batch size",
        checker=expect_value(32, mistakes=[(8, "Multiply by the accumulation steps too.")]),
        hints=("Effective batch = batch_size x accum_steps.",),
        solution_code="effective_batch_size = 8 * 4",
    )

In the solution notebook ``labs/solutions/07_accumulation.ipynb`` (the learner notebook is built from it with
``python -m labkit build``; see ``labkit.notebooks`` for the markers):

    from labkit.exercises.lab07 import q1, q2

    def tokens_per_step(batch_size, seq_len, accum_steps=1):
        ### BEGIN SOLUTION
        return batch_size * seq_len * accum_steps
        ### END SOLUTION

    q1.check(tokens_per_step)

Rules: each exercise is a module-level ``Exercise`` whose ``name`` is its variable name and whose ``lab`` is the
module name; checkers never put the expected value in a message; every exercise gets a test in
``tests/test_grading.py`` (passes on the solution, fails on a typical wrong answer, "not attempted" on ``...``).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from ..core import LabkitError


def lab_id(value) -> str:
    """Normalise a lab reference to ``"labNN"``: ``0``, ``"00"``, ``"lab00"`` or a path like ``labs/00_setup.ipynb``."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 99:
        return f"lab{value:02d}"
    text = str(value)
    if re.fullmatch(r"(lab)?\d\d", text):
        return f"lab{text[-2:]}"
    name = Path(text).name
    found = re.match(r"(\d\d)_", name) or re.search(r"(?<!\d)(\d\d)_[A-Za-z]", name)
    if found:
        return f"lab{found.group(1)}"
    raise LabkitError(f"Cannot tell which lab {value!r} is: lab notebooks are named like '01_lora.ipynb' "
                      "(or pass the lab number, e.g. --lab 01).")


def load_lab(lab, module: str | None = None) -> dict:
    """The exercises of a lab in definition order, as ``{"q1": Exercise, ...}``.

    ``module`` overrides where they live (default ``labkit.exercises.labNN``).

    >>> list(load_lab("lab00"))  # doctest: +SKIP
    ['q1', 'q2', 'q3']
    """
    from ..grading import Exercise

    module = module or f"{__name__}.{lab_id(lab)}"
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise
        raise LabkitError(f"No exercises module {module!r}: create it (see labkit.exercises) or check the "
                          "lab number in the notebook's file name.") from None
    found = {name: obj for name, obj in vars(mod).items() if isinstance(obj, Exercise)}
    for name, exercise in found.items():
        if exercise.name != name:
            raise LabkitError(f"{module}.{name} is named {exercise.name!r}: use the same name for both.")
    labs = {exercise.lab for exercise in found.values()}
    if len(labs) > 1:
        raise LabkitError(f"{module} mixes exercises of {sorted(labs)}: give them all the same lab.")
    if not found:
        raise LabkitError(f"{module} defines no Exercise: add at least one (see labkit.exercises).")
    return found
