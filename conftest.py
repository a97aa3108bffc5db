"""Shared test settings for the unit tests and the lab notebooks: offline, fast mode, the GPU marker, and how
`pytest -n 2` (pytest-xdist, as `make test` runs) splits the work without two processes writing the same files."""

import os
import re
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("LABKIT_FAST", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# lk.train records every run in the ledger; tests record into a throwaway file, not the learner's cache
# (pytest-xdist's workers inherit these from the main process, so all of them write one throwaway ledger)
if "LABKIT_LEDGER" not in os.environ:
    os.environ["LABKIT_LEDGER"] = os.path.join(tempfile.mkdtemp(prefix="labkit-ledger-"), "runs.sqlite")
if "LABKIT_TRACKER_DIR" not in os.environ:  # the same for the tracker
    os.environ["LABKIT_TRACKER_DIR"] = tempfile.mkdtemp(prefix="labkit-tracker-")
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # Each worker (and the notebook kernels it starts, which inherit this) gets its share of the cores: two torch
    # processes with two threads each on two cores run far slower than one after the other. Set before torch loads.
    share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(share))


def _chapter(path: str) -> str:
    """One chapter's tests and both versions of its lab are one unit of work: they write the same cache folders."""
    match = re.match(r"(?:test_ch)?(\d\d[a-z]?)_", Path(path).name)
    return f"lab{match.group(1)}" if match else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadgroup` here sends each chapter (see _chapter) to one worker, whole and in order. (xdist's own
    loadgroup reads `xdist_group` marks into test ids that pytest 9.2 no longer uses, so it would split them.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByChapter(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _chapter(nodeid.split("::", 1)[0])

    return ByChapter(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path, parent):
    """A learner notebook (labs/NN_*.ipynb) runs paired with its solution source (labkit.notebooks.paired_run): one
    kernel runs every cell of both versions, the lab's heavy cells once. So when both are collected (``pytest labs``),
    the solution source is not run again on its own; named on the command line, it runs on its own as before."""
    collected = yield
    if IPyNbFile is None or not any(isinstance(item, IPyNbFile) for item in collected):
        return collected
    path = Path(file_path).resolve()
    named = [Path(parent.config.invocation_params.dir, arg.split("::")[0]).resolve() for arg in parent.config.args]
    if path.parent.name == "solutions":
        learner = path.parent.parent / path.name
        if learner.exists() and path not in named and any(p == learner or p in learner.parents for p in named):
            return [item for item in collected if not isinstance(item, IPyNbFile)]
    elif (path.parent / "solutions" / path.name).exists():
        return [PairedNotebook.from_parent(parent, path=file_path) if isinstance(item, IPyNbFile) else item
                for item in collected]
    return collected


try:
    from nbval.plugin import IPyNbCell, IPyNbFile
except ImportError:  # nbval is a test dependency; without it notebooks are not collected at all
    IPyNbFile = None
else:
    class PairedNotebook(IPyNbFile):
        """nbval's notebook collector, over the cells paired_run lists for a learner notebook and its solution."""

        def collect(self):
            from collections import defaultdict

            import nbformat
            from nbval.plugin import find_comment_markers, find_metadata_tags

            from labkit.notebooks import paired_run

            self.nb = nbformat.read(str(self.path), as_version=4)
            solution = nbformat.read(str(self.path.parent / "solutions" / self.path.name), as_version=4)
            for num, (role, cell) in enumerate(paired_run(solution, self.nb)):
                options = defaultdict(bool, find_metadata_tags(cell.metadata))
                options.update(dict(find_comment_markers(cell.source)))
                options.setdefault("check", self.compare_outputs)
                yield IPyNbCell.from_parent(self, name=f"Cell {num}" + (f" {role}" if role else ""), cell_num=num,
                                            cell=cell, options=options)


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; on one it checks the bf16/fp16 and paged-optimizer paths")
    for item in items:
        if "requires_gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest (and steadiest on a busy machine) on one thread; restores the count afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
