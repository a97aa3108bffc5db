"""Seconds each lab notebook takes in fast mode, solution and learner version, against the 60 s budget.

Runs every notebook top to bottom with nbclient, one at a time, offline and in fast mode (``LABKIT_FAST=1``), as
``make test`` does under nbval, and prints one row per lab: seconds for labs/solutions/NAME and for labs/NAME
(kernel start included), flagging any version over the budget. Two torch jobs on 2 cores run far worse than half
speed each: time labs with nothing else running.

    python benchmarks/lab_times.py                  # every lab, both versions
    python benchmarks/lab_times.py 00 01a           # labs whose file name starts with 00 or 01a
    python benchmarks/lab_times.py 12 --version solution --stderr   # and show what the notebook wrote to stderr
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LABS = REPO / "labs"
SOLUTIONS = LABS / "solutions"
BUDGET_S = 60.0  # the course's budget for one version of a lab in fast mode, on 2 CPU cores
PLANNED_LABS = 18  # 00, 01a-01f, 02-12: make test runs each once (learner and solution paired), with the unit tests
FAST_ENV = {"LABKIT_FAST": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def pick_labs(prefixes: list[str]) -> list[str]:
    """File names of the labs (as in labs/solutions/) whose name starts with one of ``prefixes`` (all if none)."""
    names = sorted(p.name for p in SOLUTIONS.glob("*.ipynb"))
    chosen = [n for n in names if not prefixes or any(n.startswith(p) for p in prefixes)]
    if not chosen:
        raise SystemExit(f"No lab in {SOLUTIONS.relative_to(REPO)} starts with {' or '.join(prefixes)}; "
                         f"the labs are: {', '.join(n.removesuffix('.ipynb') for n in names)}")
    return chosen


def run_notebook(path: Path, cell_timeout_s: int) -> tuple[float, str, list[str]]:
    """(seconds, error or "", stderr lines) for one notebook run top to bottom in a fresh kernel in its folder."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=cell_timeout_s, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])  # no "running over TCP" warning
    error = ""
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as exc:
        error = str(exc).strip().splitlines()[-1][:120]
    except Exception as exc:  # noqa: BLE001 - a timeout or a dead kernel: report it in the table and go on
        error = f"{type(exc).__name__}: {exc}"[:120]
    seconds = time.perf_counter() - start
    stderr = [f"cell {i}: {line}" for i, cell in enumerate(notebook.cells) for out in cell.get("outputs", [])
              if out.get("output_type") == "stream" and out.get("name") == "stderr"
              for line in out.get("text", "").splitlines() if line.strip()]
    return seconds, error, stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", help="lab name prefixes, e.g. 00 01a 12 (default: every lab)")
    parser.add_argument("--version", choices=("both", "solution", "learner"), default="both")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S, help="flag a version slower than this")
    parser.add_argument("--cell-timeout-s", type=int, default=900, help="as make test's --nbval-cell-timeout")
    parser.add_argument("--stderr", action="store_true", help="print what each notebook wrote to stderr")
    args = parser.parse_args()

    os.environ.update(FAST_ENV)  # the kernels inherit it
    bin_dir = str(Path(sys.executable).parent)  # the kernel runs this venv's Python
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    versions = {"solution": SOLUTIONS, "learner": LABS}
    if args.version != "both":
        versions = {args.version: versions[args.version]}

    rows, failed = [], False
    for name in pick_labs(args.labs):
        row = {"lab": name.removesuffix(".ipynb")}
        notes = []
        for version, folder in versions.items():
            seconds, error, stderr = run_notebook(folder / name, args.cell_timeout_s)
            row[version] = seconds
            if error:
                failed = True
                notes.append(f"{version} FAILED: {error}")
            elif seconds > args.budget_s:
                notes.append(f"{version} over {args.budget_s:.0f} s")
            if args.stderr and stderr:
                print(f"--- {folder.relative_to(REPO) / name} wrote to stderr:", *stderr, sep="\n  ", flush=True)
        row["note"] = "; ".join(notes)
        rows.append(row)
        print(f"done {row['lab']}: " + ", ".join(f"{v} {row[v]:.1f} s" for v in versions), flush=True)

    print(f"\nFast-mode seconds per lab (budget {args.budget_s:.0f} s per version, kernel start included)")
    header = f"{'lab':<34}" + "".join(f"{v + ' s':>12}" for v in versions) + "  note"
    print(header + "\n" + "-" * len(header))
    for row in rows:
        print(f"{row['lab']:<34}" + "".join(f"{row[v]:>12.1f}" for v in versions) + f"  {row['note']}")
    runs = [row[v] for row in rows for v in versions]
    mean_s = sum(runs) / len(runs)
    print(f"\n{len(runs)} notebook runs, {sum(runs) / 60:.1f} min in all, {mean_s:.1f} s each on average: "
          f"{PLANNED_LABS} labs at that average take {PLANNED_LABS * mean_s / 60:.1f} min of make test's 30 min "
          "(one paired run per lab)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
