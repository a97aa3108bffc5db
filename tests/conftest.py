"""Shared test settings: offline, fast mode, and the GPU marker."""

import os
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("LABKIT_FAST", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# lk.train records every run in the ledger; tests record into a throwaway file, not the learner's cache
os.environ.setdefault("LABKIT_LEDGER", os.path.join(tempfile.mkdtemp(prefix="labkit-ledger-"), "runs.sqlite"))
os.environ.setdefault("LABKIT_TRACKER_DIR", tempfile.mkdtemp(prefix="labkit-tracker-"))  # the same for the tracker


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
