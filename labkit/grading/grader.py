"""``python -m labkit grade``: run copies of learner notebooks headless and score their checks.

The learner's file is only read: the notebook runs from memory with nbclient, the kernel's working folder is the
notebook's folder (so relative paths work) and every ``check()`` appends its outcome to a temporary JSON-lines log
named by ``LABKIT_GRADE_LOG``. The last check of each exercise counts; exercises never checked score 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core import LabkitError
from . import CORRECT, GRADE_LOG_ENV, INCORRECT, NOT_ATTEMPTED

NOT_REACHED = "not reached"  # the notebook stopped (or the check cell is gone) before this exercise was checked
_STATUSES = (CORRECT, INCORRECT, NOT_ATTEMPTED)


@dataclass
class ExerciseScore:
    """One exercise's line in a grading report."""

    name: str  # "q1"
    title: str  # the exercise's title
    status: str  # "correct", "incorrect", "not attempted" or "not reached"
    points: float  # points earned
    max_points: float  # points available
    message: str = ""  # the feedback line of the last check (never the expected value)


@dataclass
class GradeReport:
    """The grading of one notebook."""

    notebook: str  # path as given
    lab: str  # "lab00"
    scores: list[ExerciseScore] = field(default_factory=list)  # one per exercise of the lab, in order
    error: str | None = None  # why the notebook stopped early, if it did
    time_s: float = 0.0  # wall time of the run

    @property
    def total(self) -> float:
        return sum(s.points for s in self.scores)

    @property
    def max_total(self) -> float:
        return sum(s.max_points for s in self.scores)

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total, "max_total": self.max_total}

    def __str__(self) -> str:
        lines = [f"{self.notebook} ({self.lab})"]
        lines += [f"  {s.name:<4} {_fmt(s.points)}/{_fmt(s.max_points)}  {s.status:<13}  {s.title}" for s in self.scores]
        lines.append(f"  total {_fmt(self.total)}/{_fmt(self.max_total)}")
        if self.error:
            lines.append(f"  error: {self.error}")
        return "\n".join(lines)


def _fmt(x: float) -> str:
    return f"{x:g}"


def _notebook_lab(path: Path, nb):
    stamped = nb.metadata.get("labkit", {}).get("lab")  # written by the builder; survives renaming the file
    return stamped or path


def _run(nb, folder: Path, log: Path, timeout: float, env: dict) -> str | None:
    """Execute ``nb`` in place (a copy in memory); return an error description or None.

    The kernel process's own stderr (start-up warnings, not cell output) goes to a file next to the log.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    current = {"index": 0}

    def on_cell_start(cell, cell_index):
        current["index"] = cell_index

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(folder)}}, on_cell_start=on_cell_start)
    try:
        with open(log.with_suffix(".stderr"), "w") as stderr:
            client.execute(env={**os.environ, **env, GRADE_LOG_ENV: str(log)}, stderr=stderr)
    except CellExecutionError as err:
        return f"cell {current['index'] + 1} raised {err.ename}: {err.evalue}"
    except CellTimeoutError:
        return f"cell {current['index'] + 1} did not finish within {timeout:g} s (--timeout)"
    except DeadKernelError:
        return f"the kernel died in cell {current['index'] + 1} (out of memory?)"
    return None


def _read_log(log: Path, lab: str) -> dict:
    """The last logged outcome of each exercise of ``lab``: {name: entry}; unreadable lines are skipped."""
    last = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("lab") == lab and entry.get("status") in _STATUSES:
            last[entry.get("exercise")] = entry
    return last


def grade_notebook(path, *, timeout: float = 600, lab: str | None = None, exercises: str | None = None,
                   fast: bool = False) -> GradeReport:
    """Run a copy of one notebook headless and score its checks; the file itself is never written.

    ``fast=True`` runs it in fast mode (``LABKIT_FAST=1``: fewer training steps, smaller evaluations).

    >>> print(grade_notebook("labs/solutions/00_setup.ipynb"))  # doctest: +SKIP
    labs/solutions/00_setup.ipynb (lab00)
      q1   1/1  correct        Parameters of a Linear layer
    ...
    """
    import nbformat

    from .labs import lab_id, load_lab, renamed_from

    path = Path(path)
    if path.suffix != ".ipynb" or not path.is_file():
        raise LabkitError(f"{path} is not a notebook file: give .ipynb files or a folder that holds them.")
    if timeout <= 0:
        raise LabkitError(f"timeout must be a positive number of seconds per cell, got {timeout}.")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001  (broken JSON or not a notebook at all)
        raise LabkitError(f"{path} could not be read as a notebook ({type(err).__name__}); ask for a fresh copy.") \
            from None
    reference = lab or _notebook_lab(path, nb)
    lab = lab_id(reference)
    if renamed_from(reference):
        print(f"note: lab {renamed_from(reference)[3:]} is now lab {lab[3:]} (labs are numbered by chapter "
              f"now); grading {path.name} as {lab}")
    known = load_lab(lab, exercises)
    lab = next(iter(known.values())).lab
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="labkit-grade-") as tmp:
        log = Path(tmp) / "checks.jsonl"
        log.touch()
        error = _run(nb, path.resolve().parent, log, timeout, {"LABKIT_FAST": "1"} if fast else {})
        last = _read_log(log, lab)
    scores = []
    for name, ex in known.items():
        entry = last.get(name, {"status": NOT_REACHED})
        points = float(ex.points) if entry["status"] == CORRECT else 0.0  # from the exercise, not from the log
        scores.append(ExerciseScore(name, ex.title, entry["status"], points, float(ex.points),
                                    str(entry.get("message", ""))))
    return GradeReport(str(path), lab, scores, error, round(time.perf_counter() - start, 1))


def _collect(paths: list[str]) -> list[Path]:
    found = []
    for item in map(Path, paths):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        elif item.is_file():
            found.append(item)
        else:
            raise LabkitError(f"{item} does not exist: give notebook files or a folder of submissions.")
    if not found:
        raise LabkitError(f"No .ipynb files in {', '.join(paths)}.")
    return found


def write_csv(reports: list[GradeReport], out) -> None:
    """One row per notebook: notebook, lab, total, max_total, one column per exercise (``lab00.q1``), error."""
    columns = []
    for report in reports:
        columns += [f"{report.lab}.{s.name}" for s in report.scores if f"{report.lab}.{s.name}" not in columns]
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["notebook", "lab", "total", "max_total", *columns, "error"])
        for r in reports:
            points = {f"{r.lab}.{s.name}": _fmt(s.points) for s in r.scores}
            writer.writerow([r.notebook, r.lab, _fmt(r.total), _fmt(r.max_total),
                             *(points.get(c, "") for c in columns), r.error or ""])


def grade_main(argv: list[str]) -> int:
    """``python -m labkit grade PATH... [--json F] [--csv F] [--timeout S]``: print scores, optionally save them."""
    parser = argparse.ArgumentParser(prog="python -m labkit grade", description="Grade learner notebooks: each "
                                     "runs as a copy, headless; the files are never modified.")
    parser.add_argument("paths", nargs="+", help="notebooks, or folders of submissions (searched recursively)")
    parser.add_argument("--json", metavar="OUT", help="write every report to this JSON file")
    parser.add_argument("--csv", metavar="OUT", help="write one row per notebook to this CSV file")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per cell (default 600)")
    parser.add_argument("--fast", action="store_true", help="run in fast mode (LABKIT_FAST=1): fewer training steps")
    parser.add_argument("--lab", help="lab id when file names do not say it, e.g. 01a")
    parser.add_argument("--exercises", metavar="MODULE", help="exercises module (default: the lab's labkit.chapters package)")
    args = parser.parse_args(argv)
    try:
        notebooks = _collect(args.paths)
        if args.timeout <= 0:
            raise LabkitError(f"--timeout must be a positive number of seconds, got {args.timeout:g}.")
    except LabkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    reports = []
    for path in notebooks:
        try:
            report = grade_notebook(path, timeout=args.timeout, lab=args.lab, exercises=args.exercises, fast=args.fast)
        except LabkitError as err:  # one bad submission must not stop the rest
            report = GradeReport(str(path), "?", error=str(err))
        reports.append(report)
        print(report, flush=True)
    if len(reports) > 1:
        print(f"graded {len(reports)} notebooks; {sum(r.error is not None for r in reports)} stopped early")
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in reports], indent=2) + "\n", encoding="utf-8")
    if args.csv:
        write_csv(reports, args.csv)
    return 0
