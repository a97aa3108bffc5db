"""Graded exercises: ``q1.check(answer)``, ``q1.hint()``, ``q1.solution()``, learntools-style.

A lab's exercises live in ``labkit/chapters/chNN[x]_topic/exercises.py`` (see ``labkit.grading.labs`` for a complete example).
A check prints one friendly line and never raises for a wrong answer:

>>> from labkit.grading import Exercise, expect_value
>>> q1 = Exercise("q1", lab="lab99", title="The answer", hints=("Six times seven.",),
...               checker=expect_value(42, mistakes=[(24, "Digits swapped?")]))
>>> q1.check(...)
✏️ q1: not attempted yet: replace the `...` placeholder with your answer and run the cell again.
>>> q1.check(24)
💡 q1: Digits swapped? (q1.hint() gives a hint)
>>> q1.check(42)
✅ q1: correct! (The answer)

A checker is any function ``checker(answer, *context) -> str | None``: it returns None when the answer is right,
otherwise one sentence about the likely mistake, never the expected value. The builders below cover the three
kinds: a value (``expect_value``), a function run on hidden cases (``expect_function``), a model inspected
(``expect_only_trainable``). When the ``LABKIT_GRADE_LOG`` environment variable names a file, every check appends
its outcome there as one JSON line; ``python -m labkit grade`` (``grading/grader.py``) reads it back.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core import LabkitError

__all__ = ["CORRECT", "GRADE_LOG_ENV", "INCORRECT", "NOT_ATTEMPTED", "Args", "Exercise", "GradeReport", "NotAttempted",
           "Outcome", "assert_all_passed", "expect_function", "expect_only_trainable", "expect_value", "grade_main",
           "grade_notebook", "is_placeholder"]
GRADE_LOG_ENV = "LABKIT_GRADE_LOG"  # set by the grader: checks append JSON lines to this file
CORRECT, INCORRECT, NOT_ATTEMPTED = "correct", "incorrect", "not attempted"
_ICONS = {CORRECT: "✅", INCORRECT: "💡", NOT_ATTEMPTED: "✏️"}
_LAST: dict[tuple[str, str], Outcome] = {}  # (lab, exercise name) -> outcome of the latest check in this process


class NotAttempted(Exception):
    """Raised inside a checker when the answer is still a placeholder."""


@dataclass(frozen=True)
class Outcome:
    """The result of one check."""

    status: str  # "correct", "incorrect" or "not attempted"
    message: str  # one line for the learner; never contains the expected value
    points: float  # points earned: the exercise's points when correct, else 0


def is_placeholder(answer: Any) -> bool:
    """True for the learner notebook's placeholder value ``...``."""
    return answer is Ellipsis


@dataclass
class Exercise:
    """One graded exercise: ``check`` an answer, show ``hint`` levels, show the ``solution``."""

    name: str  # how the notebook imports it, e.g. "q1"
    lab: str  # the lab it belongs to, e.g. "lab00"
    title: str  # a few words shown in feedback and grading reports
    checker: Callable[..., str | None]  # checker(answer, *context) -> None if right, else a hint for the mistake
    hints: tuple[str, ...] = ()  # increasingly specific hints, one per hint() call
    solution_code: str = ""  # the model solution, shown by solution()
    points: float = 1  # points for a correct answer
    context: tuple[str, ...] = ()  # names of what check() needs after the answer, e.g. ("model",)
    _hints_shown: int = field(default=0, init=False, repr=False)  # how far hint() has got

    def __post_init__(self):
        if not re.fullmatch(r"q\d+[a-z]?", self.name):
            raise LabkitError(f"Exercise name {self.name!r} should look like 'q1' (or 'q2b').")
        if not re.fullmatch(r"lab\d\d[a-z]?", self.lab):
            raise LabkitError(f"Exercise {self.name}: lab {self.lab!r} should look like 'lab12' or 'lab01a'.")
        if self.points <= 0:
            raise LabkitError(f"Exercise {self.name}: points must be positive, got {self.points}.")
        self.hints, self.context = tuple(self.hints), tuple(self.context)

    def evaluate(self, answer: Any = ..., *context: Any) -> Outcome:
        """Check an answer without printing or logging: the outcome only."""
        if is_placeholder(answer):
            return Outcome(NOT_ATTEMPTED, _NOT_ATTEMPTED_MSG, 0)
        if len(context) != len(self.context):
            usage = ", ".join(("your_answer", *self.context))
            return Outcome(INCORRECT, f"call it as {self.name}.check({usage}).", 0)
        try:
            mistake = self.checker(answer, *context)
        except (NotAttempted, NotImplementedError):
            return Outcome(NOT_ATTEMPTED, _NOT_ATTEMPTED_MSG, 0)
        except LabkitError as err:
            return Outcome(INCORRECT, str(err), 0)
        except Exception as err:  # noqa: BLE001  (a learner's odd answer must not show a labkit stack trace)
            return Outcome(INCORRECT, f"this answer could not be checked ({type(err).__name__}: {err}).", 0)
        if mistake:
            return Outcome(INCORRECT, mistake, 0)
        return Outcome(CORRECT, f"correct! ({self.title})", self.points)

    def check(self, answer: Any = ..., *context: Any) -> None:
        """Print one line of feedback for ``answer`` and record the outcome (never raises for a wrong answer)."""
        outcome = self.evaluate(answer, *context)
        _LAST[(self.lab, self.name)] = outcome
        _log(self, outcome)
        tail = f" ({self.name}.hint() gives a hint)" if outcome.status == INCORRECT and self.hints else ""
        print(f"{_ICONS[outcome.status]} {self.name}: {outcome.message}{tail}")

    def hint(self, level: int | None = None) -> None:
        """Print the next hint, or hint number ``level`` (1 = gentlest)."""
        if not self.hints:
            print(f"No hints for {self.name}: {self.name}.solution() shows a solution.")
            return
        if level is None:
            self._hints_shown = min(self._hints_shown + 1, len(self.hints))
            level = self._hints_shown
        if not 1 <= level <= len(self.hints):
            raise LabkitError(f"{self.name} has hints 1 to {len(self.hints)}: call {self.name}.hint() or "
                              f"{self.name}.hint(1).")
        more = "" if level < len(self.hints) else f" (last hint: {self.name}.solution() shows a solution)"
        print(f"💡 {self.name} hint {level}/{len(self.hints)}: {self.hints[level - 1]}{more}")

    def solution(self) -> None:
        """Print the model solution."""
        print(f"Solution to {self.name} ({self.title}):\n\n{self.solution_code.strip()}")


_NOT_ATTEMPTED_MSG = "not attempted yet: replace the `...` placeholder with your answer and run the cell again."


def _log(exercise: Exercise, outcome: Outcome) -> None:
    path = os.environ.get(GRADE_LOG_ENV)
    if not path:
        return
    entry = {"lab": exercise.lab, "exercise": exercise.name, "status": outcome.status, "points": outcome.points,
             "max_points": exercise.points, "message": outcome.message}
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def assert_all_passed(lab: str) -> None:
    """Raise unless the latest check of every exercise of ``lab`` in this kernel was correct (solution notebooks)."""
    from .labs import lab_id, load_lab

    lab = lab_id(lab)
    missing = [name for name in load_lab(lab) if getattr(_LAST.get((lab, name)), "status", None) != CORRECT]
    if missing:
        raise LabkitError(f"{lab}: these checks did not pass in this notebook: {', '.join(missing)}; fix the "
                          "solution cells (or the checks) so that every exercise passes.")
    print(f"✅ all {lab} exercises pass")


def _number(value: Any, what: str = "your answer") -> float:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        raise LabkitError(f"{what} should be a number, not a value of type {type(value).__name__}.")
    try:
        return float(value)  # ints, floats, numpy and 0-d torch numbers
    except (TypeError, ValueError, RuntimeError):  # torch says RuntimeError for a tensor of several numbers
        raise LabkitError(f"{what} should be a single number, not a value of type {type(value).__name__}.") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")  # a tensor can only exist once torch is imported; grading never imports it
    return torch is not None and isinstance(value, torch.Tensor)


def _same(got: Any, expected: Any, rel_tol: float, abs_tol: float) -> bool:
    """A number within tolerance; a tuple or list of numbers element by element (any sequence of the same length,
    e.g. a list, a tuple or an array, matches); a torch tensor of the same shape within tolerance (a boolean one
    exactly, and only by a boolean tensor); anything else by ``==``."""
    if _is_tensor(expected):
        if not _is_tensor(got) or got.shape != expected.shape:
            return False
        if expected.dtype == sys.modules["torch"].bool:
            return got.dtype == expected.dtype and bool((got == expected).all())
        return bool(sys.modules["torch"].allclose(got.float(), expected.float(), rtol=rel_tol, atol=abs_tol))
    if _is_number(expected):
        try:
            return math.isclose(_number(got), float(expected), rel_tol=rel_tol, abs_tol=abs_tol)
        except LabkitError:
            return False
    if isinstance(expected, (tuple, list)) and expected and all(map(_is_number, expected)):
        got = got.tolist() if hasattr(got, "tolist") else got
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return False
        return all(_same(g, e, rel_tol, abs_tol) for g, e in zip(got, expected))
    return got == expected


def _resolve(value: Any, context: tuple) -> Any:
    return value(*context) if callable(value) else value


def expect_value(expected: Any, *, rel_tol: float = 0.0, abs_tol: float = 0.0,
                 mistakes: list[tuple[Any, str]] = ()) -> Callable[..., str | None]:
    """A checker for a value: equal to ``expected`` (a number within tolerance, or ``==`` for anything else).

    ``expected`` and each wrong value in ``mistakes`` may be a function of the check's context, e.g.
    ``expected=lambda model: ...`` for ``q.check(answer, model)``. Defaults: numbers must match exactly.
    """

    def checker(answer, *context):
        want = _resolve(expected, context)
        if isinstance(want, (int, float)) and not isinstance(want, bool):
            _number(answer)  # a clear message for text or lists where a number belongs
        if _same(answer, want, rel_tol, abs_tol):
            return None
        for wrong, message in mistakes:
            if _same(answer, _resolve(wrong, context), rel_tol, abs_tol):
                return message
        return f"{answer!r} is not right yet."

    return checker


class Args:
    """The arguments of one hidden test call, e.g. ``Args(3, 4, bias=False)``."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.args, self.kwargs = args, kwargs

    def __repr__(self) -> str:
        return ", ".join([*map(repr, self.args), *(f"{k}={v!r}" for k, v in self.kwargs.items())])


def expect_function(reference: Callable, cases: list[Args], *, rel_tol: float = 0.0, abs_tol: float = 0.0,
                    mistakes: list[tuple[Callable, str]] = ()) -> Callable[..., str | None]:
    """A checker for a function: it must return what ``reference`` returns on every hidden case.

    ``mistakes`` pairs a typical wrong implementation with the hint to show when the learner's function agrees
    with it on a failing case. A function that returns ``...`` or raises NotImplementedError is "not attempted".
    Tensors are compared with ``torch.allclose(rtol=rel_tol, atol=abs_tol)`` and never printed in the feedback.
    """

    def checker(func, *context):
        if not callable(func):
            return f"pass the function itself (no parentheses), not a value of type {type(func).__name__}."
        name = getattr(func, "__name__", "your function")
        for case in cases:
            try:
                got = func(*case.args, **case.kwargs)
            except NotImplementedError:
                raise NotAttempted from None
            except Exception as err:  # noqa: BLE001  (any error in the learner's code becomes feedback)
                return f"{name}({case}) raised {type(err).__name__}: {err}"
            if is_placeholder(got):
                raise NotAttempted
            want = reference(*case.args, **case.kwargs)
            if _same(got, want, rel_tol, abs_tol):
                continue
            for wrong, message in mistakes:
                if _same(got, wrong(*case.args, **case.kwargs), rel_tol, abs_tol):
                    return message
            if not _is_tensor(want):
                return f"{name}({case}) returned {got!r}, which is not right yet."
            if not _is_tensor(got):
                return f"{name} should return a torch tensor, not a value of type {type(got).__name__}."
            if got.shape != want.shape:
                return f"{name} returned a tensor of shape {tuple(got.shape)}; it should have shape {tuple(want.shape)}."
            return f"{name} differs from the reference on a hidden random case (shape {tuple(want.shape)})."
        return None

    return checker


def expect_only_trainable(pattern: str, what: str) -> Callable[..., str | None]:
    """A checker for a model: exactly the parameters whose names match the regex ``pattern`` are trainable.

    ``what`` names them for the learner, e.g. ``expect_only_trainable(r"lora_[AB]", "the LoRA matrices")``.
    """
    regex = re.compile(pattern)

    def checker(model, *context):
        named = list(getattr(model, "named_parameters", list)())
        if not named:
            return f"pass a model (a torch.nn.Module with parameters), not a value of type {type(model).__name__}."
        wanted = [n for n, _ in named if regex.search(n)]
        trainable = [n for n, p in named if p.requires_grad]
        if not wanted:
            return f"this model has no parameters for {what}: is it the right model?"
        if not trainable:
            return f"nothing is trainable: unfreeze {what} (requires_grad=True)."
        if len(trainable) == len(named):
            return f"everything is still trainable: freeze the whole model first, then unfreeze {what}."
        extra = [n for n in trainable if not regex.search(n)]
        if extra:
            return f"{extra[0]} is trainable too ({len(extra)} such tensors): only {what} should be."
        frozen = [n for n in wanted if n not in trainable]
        if frozen:
            return f"{frozen[0]} is still frozen ({len(frozen)} such tensors): all of {what} should train."
        return None

    return checker


from .grader import GradeReport, grade_main, grade_notebook  # the grader needs the names above
