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
