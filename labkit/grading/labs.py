"""Find a lab's graded exercises: ``labs/NN[x]_topic.ipynb`` goes with ``labkit/chapters/chNN[x]_*/exercises.py``.

How to add exercises to a lab (a complete small ``labkit/chapters/ch07_evaluation/exercises.py``):

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

    from labkit.chapters.ch07_evaluation.exercises import q1, q2

    def tokens_per_step(batch_size, seq_len, accum_steps=1):
        ### BEGIN SOLUTION
        return batch_size * seq_len * accum_steps
        ### END SOLUTION

    q1.check(tokens_per_step)

Rules: each exercise is a module-level ``Exercise`` whose ``name`` is its variable name and whose ``lab`` is the
lab's id (``lab07``, ``lab01a``); checkers never put the expected value in a message; every exercise gets a test in
``tests/test_chNN_exercises.py`` (passes on the solution, fails on a typical wrong answer, "not attempted" on ``...``).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

from ..core import LabkitError

# Lab ids before labs were numbered by chapter (1.1-1.3 were 01-03): graded submissions may still say them. lab02 and
# lab03 are chapters 2's and 3's labs now, so an old lab02 or lab03 submission is graded as that chapter's lab.
RENAMED_LABS = {"lab01": "lab01a"}
CHAPTERS_DIR = Path(__file__).resolve().parent.parent / "chapters"
_ID_RE = re.compile(r"(?:lab)?(\d\d[a-z]?)")


def _raw_id(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 99:
        return f"lab{value:02d}"
    text = str(value)
    name = Path(text).name
    match = (_ID_RE.fullmatch(text) or re.match(r"(\d\d[a-z]?)_", name)
             or re.search(r"(?<!\d)(\d\d[a-z]?)_[A-Za-z]", name))
    if match is None:
        raise LabkitError(f"Cannot tell which lab {value!r} is: lab notebooks are named like '01a_paradigms.ipynb' "
                          "(or pass the lab id, e.g. --lab 01a).")
    return f"lab{match.group(1)}"


def lab_id(value) -> str:
    """Normalise a lab reference to ``"labNN"`` or ``"labNNx"``: ``12``, ``"01a"``, ``"lab01a"``, ``labs/01a_x.ipynb``.

    The old id ``01`` (before chapter numbering) maps to its new id; ``renamed_from`` tells which did.
    """
    raw = _raw_id(value)
    return RENAMED_LABS.get(raw, raw)


def renamed_from(value) -> str | None:
    """The old id that ``value`` names when it is one of the renumbered labs (``"01"`` -> ``"lab01"``), else None."""
    raw = _raw_id(value)
    return raw if raw in RENAMED_LABS else None


def chapter_module(lab) -> str:
    """The chapter package that holds ``lab``'s code: ``"lab01a"`` -> ``"labkit.chapters.ch01a_paradigms"``."""
    wanted = "ch" + lab_id(lab)[3:] + "_"
    for info in pkgutil.iter_modules([str(CHAPTERS_DIR)]):  # found by name: grading never imports a chapter itself
        if info.name.startswith(wanted):
            return f"labkit.chapters.{info.name}"
    raise LabkitError(f"No chapter package for {lab_id(lab)}: create labkit/chapters/{wanted}<topic>/ with an "
                      "exercises.py (see labkit.grading.labs), or check the lab id in the notebook's file name.")


def load_lab(lab, module: str | None = None) -> dict:
    """The exercises of a lab in definition order, as ``{"q1": Exercise, ...}``.

    ``module`` overrides where they live (default: the lab's chapter package's ``exercises`` module).

    >>> list(load_lab("lab00"))  # doctest: +SKIP
    ['q1', 'q2', 'q3']
    """
    from . import Exercise

    module = module or f"{chapter_module(lab)}.exercises"
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module:
            raise
        raise LabkitError(f"No exercises module {module!r}: create it (see labkit.grading.labs) or check the "
                          "lab id in the notebook's file name.") from None
    found = {name: obj for name, obj in vars(mod).items() if isinstance(obj, Exercise)}
    for name, exercise in found.items():
        if exercise.name != name:
            raise LabkitError(f"{module}.{name} is named {exercise.name!r}: use the same name for both.")
    labs = {exercise.lab for exercise in found.values()}
    if len(labs) > 1:
        raise LabkitError(f"{module} mixes exercises of {sorted(labs)}: give them all the same lab.")
    if not found:
        raise LabkitError(f"{module} defines no Exercise: add at least one (see labkit.grading.labs).")
    return found
