"""Validation as a test suite: write a small pytest file for a fine-tuning project into a folder, run it with
pytest, and plant a regression to watch it fail.

>>> folder = write_suite(tempfile.mkdtemp(), model_name="smollm2-135m", min_score=0.3)  # doctest: +SKIP
>>> run_suite(folder).passed  # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ...core import LabkitError

TEST_FILE = '''"""Validation suite of a fine-tuning project: data schema, tokenization, pre-flight, a minimum score."""

import json
from pathlib import Path

import pytest

from labkit.chapters.ch10_debugging import zoo
from labkit.validation import checks, pipeline

@pytest.fixture(scope="module")
def project(request):
    folder = Path(request.path).parent  # the folder of the collected file, wherever the suite was copied
    return {"folder": folder, **json.loads((folder / "project.json").read_text())}


def read_rows(project, name):
    text = (project["folder"] / project[name]).read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def setup(project):
    model, tokenizer = zoo.base_model(project["model"])
    data = pipeline.make_examples(tokenizer, read_rows(project, "train_file"), add_eos=project["add_eos"])
    recipe = pipeline.Recipe(pretrained=project["model"] not in zoo.RANDOM_PRESETS)
    return pipeline.Setup(model, tokenizer, data, recipe, name="project")


@pytest.mark.parametrize("split", ["train_file", "eval_file"])
def test_data_schema(project, split):
    rows = read_rows(project, split)
    assert rows, f"{split} is empty"
    for i, row in enumerate(rows):
        for key in ("instruction", "answer"):
            assert isinstance(row.get(key), str) and row[key].strip(), f"row {i} of {split}: empty {key!r}"


def test_tokenization_round_trip(project, setup):
    for row in read_rows(project, "train_file"):
        ids = setup.tokenizer(row["answer"], add_special_tokens=False)["input_ids"]
        assert setup.tokenizer.decode(ids) == row["answer"]


def test_preflight(setup):
    report = checks.preflight(setup)
    assert report.passed, str(report)


def test_minimum_score(project, setup):
    examples = pipeline.make_examples(setup.tokenizer, read_rows(project, "eval_file"), add_eos=project["add_eos"])
    score = pipeline.answer_accuracy(setup.model, setup.tokenizer, examples)
    assert score >= project["min_score"], f"answer-token accuracy {score:.3f} < {project['min_score']}"
'''


@dataclass
class SuiteResult:
    """What one pytest run of the suite gave."""

    exit_code: int  # pytest's exit code: 0 all passed, 1 some failed
    tests: int  # tests collected and run
    failed: list  # names of the failed tests
    output: str  # pytest's terminal output

    @property
    def passed(self) -> bool:
        """True when every test passed."""
        return self.exit_code == 0

    def __repr__(self) -> str:
        return (f"SuiteResult({self.tests - len(self.failed)} of {self.tests} passed"
                + (f"; failed: {', '.join(self.failed)})" if self.failed else ")"))


def write_suite(folder, *, model_name: str, min_score: float, n_train: int = 8, n_eval: int = 8,
                add_eos: bool = True) -> Path:
    """Write the project (settings, a train and an eval slice of the instructions data) and its pytest file into
    ``folder``; return the folder."""
    from .zoo import rows

    if not 0 <= min_score <= 1:
        raise LabkitError(f"min_score is an accuracy between 0 and 1, got {min_score!r}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, split, n in (("train.jsonl", "train", n_train), ("eval.jsonl", "validation", n_eval)):
        (folder / name).write_text("".join(json.dumps({k: r[k] for k in ("instruction", "answer")}) + "\n"
                                           for r in rows(n, split)))
    settings = {"model": model_name, "train_file": "train.jsonl", "eval_file": "eval.jsonl", "add_eos": add_eos,
                "min_score": round(float(min_score), 4)}
    (folder / "project.json").write_text(json.dumps(settings, indent=2))
    (folder / "test_project.py").write_text(TEST_FILE)
    (folder / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    return folder


def plant_regression(folder, target=None, **changes) -> Path:
    """Copy the project to ``target`` (default: ``<folder>-regressed``) with its settings changed, e.g.
    ``add_eos=False`` (a refactor of the tokenization dropped the EOS); return the copy."""
    folder = Path(folder)
    settings = json.loads((folder / "project.json").read_text())
    unknown = sorted(set(changes) - set(settings))
    if unknown:
        raise LabkitError(f"The project has no setting {', '.join(unknown)}: its settings are {', '.join(settings)}.")
    target = Path(target) if target else folder.with_name(folder.name + "-regressed")
    shutil.copytree(folder, target, dirs_exist_ok=True)
    (target / "project.json").write_text(json.dumps({**settings, **changes}, indent=2))
    return target


def run_suite(folder) -> SuiteResult:
    """Run the suite in ``folder`` with pytest (in this process, so the kit is not imported again)."""
    import xml.etree.ElementTree as ET

    import pytest

    folder = Path(folder)
    if not (folder / "test_project.py").exists():
        raise LabkitError(f"No test_project.py in {folder}: write the suite first with write_suite(folder, ...).")
    report = folder / "report.xml"
    for name in [n for n in sys.modules if n.split(".")[-1] == "test_project"]:
        del sys.modules[name]  # a suite run before (another copy) must not be reused: import this folder's file
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = pytest.main([str(folder), "-q", "--rootdir", str(folder), "-c", str(folder / "pytest.ini"),
                            "--import-mode=importlib", "--capture=sys", "--color=no", f"--junitxml={report}", "-W",
                            "ignore::DeprecationWarning"])
    cases = ET.parse(report).getroot().iter("testcase")
    tests, failed = 0, []
    for case in cases:
        tests += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(case.get("name"))
    return SuiteResult(int(code), tests, failed, buffer.getvalue())
