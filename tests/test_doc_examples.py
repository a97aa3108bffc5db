"""The examples in labkit's docstrings run and print what they say (make test runs no --doctest-modules)."""

import doctest
import importlib
import pkgutil

import pytest

import labkit
from labkit.metrics import load_metric


def _labkit_modules():
    names = []
    for info in pkgutil.walk_packages(labkit.__path__, "labkit."):
        if ".chapters." in info.name or info.name.endswith("__main__"):
            continue  # chapters: their examples are the labs, run by nbval
        names.append(info.name)
    return names


def _run(name):
    module = importlib.import_module(name)
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(module, globs={**vars(module), "load_metric": load_metric}) if t.examples]
    for test in tests:
        runner.run(test, out=lambda text: None)
    return runner.summarize(verbose=False)


@pytest.mark.parametrize("name", _labkit_modules())
def test_docstring_examples(name):
    result = _run(name)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples in {name} failed"


def test_a_stale_example_fails(tmp_path, monkeypatch):
    (tmp_path / "stale_example.py").write_text('def f():\n    """\n    >>> 1 + 1\n    3\n    """\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _run("stale_example").failed == 1
