"""Loaders for the kit's data sets in ``data/`` (and, when online, any hub data set with the same call)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .core import LabkitError, offline

# Intent labels in a fixed order: index = class id (data/intents/labels.json holds the same list).
INTENT_LABELS = ("feed", "heal", "train", "book_flight", "report_fire", "adopt", "lost_dragon", "billing")
label2id = {name: i for i, name in enumerate(INTENT_LABELS)}
id2label = dict(enumerate(INTENT_LABELS))

INSTRUCTION_FAMILIES = ("extract_json", "convert_units", "reformat_date", "sort_list", "arithmetic", "string")


def data_dir() -> Path:
    """The folder holding the data sets: ``LABKIT_DATA`` if set, else ``data/`` next to the package."""
    root = os.environ.get("LABKIT_DATA")
    folder = Path(root).expanduser() if root else Path(__file__).resolve().parents[1] / "data"
    if not folder.is_dir():
        raise LabkitError(f"The data folder {folder} does not exist: clone the peft-lab-kit repository (its data/ "
                          "folder ships the data sets) or set LABKIT_DATA to a folder that holds them.")
    return folder


@contextlib.contextmanager
def _quiet():
    """Silence the ``datasets`` progress bars and info logs for one load, then restore them."""
    from datasets.utils import logging as ds_logging

    bars = ds_logging.is_progress_bar_enabled()
    level = ds_logging.get_verbosity()
    ds_logging.disable_progress_bar()
    ds_logging.set_verbosity_error()
    try:
        yield
    finally:
        ds_logging.set_verbosity(level)
        if bars:
            ds_logging.enable_progress_bar()


def _load(name: str, hub_id: str | None, **kwargs):
    """Load ``data/<name>/<split>.jsonl`` as a DatasetDict, or ``hub_id`` from the hub when online."""
    import datasets

    if hub_id is not None:
        if offline():
            raise LabkitError(f"Cannot download {hub_id!r}: the hub is offline (HF_HUB_OFFLINE is set). "
                              f"Call load_{name}() without hub_id to use the bundled data/{name}/, or go online.")
        with _quiet():
            return datasets.load_dataset(hub_id, **kwargs)
    folder = data_dir() / name
    order = {"train": 0, "validation": 1, "test": 2}  # usual splits first, any others after them
    paths = sorted(folder.glob("*.jsonl"), key=lambda path: (order.get(path.stem, 3), path.stem))
    files = {path.stem: str(path) for path in paths}
    if not files:
        raise LabkitError(f"No .jsonl files in {folder}: rebuild them with `python data/build_data.py` "
                          "from the repository root, or point LABKIT_DATA at a complete data folder.")
    with _quiet():
        return datasets.load_dataset("json", data_files=files, **kwargs)


def load_corpus(hub_id: str | None = None, **kwargs):
    """Dragon-academy text corpus, splits train/validation, column ``text``.

    >>> corpus = load_corpus()  # doctest: +SKIP
    >>> corpus["train"][0]["text"][:40]  # doctest: +SKIP
    """
    return _load("corpus", hub_id, **kwargs)


def load_intents(hub_id: str | None = None, **kwargs):
    """Keeper help-desk intents, splits train/validation/test/domain_shift, columns ``text``, ``label``.

    Labels are names; map them with ``label2id`` (order of ``INTENT_LABELS``).

    >>> intents = load_intents()  # doctest: +SKIP
    >>> label2id[intents["train"][0]["label"]]  # doctest: +SKIP
    """
    return _load("intents", hub_id, **kwargs)


def load_instructions(hub_id: str | None = None, **kwargs):
    """Instructions with exactly checkable answers, splits train/validation/test: ``instruction, answer, family``.

    >>> instructions = load_instructions()  # doctest: +SKIP
    >>> instructions["test"].filter(lambda row: row["family"] == "arithmetic")  # doctest: +SKIP
    """
    return _load("instructions", hub_id, **kwargs)


def load_probe(hub_id: str | None = None, **kwargs):
    """General-knowledge probe for forgetting, split test: ``question, answer, aliases, category``.

    >>> probe = load_probe()  # doctest: +SKIP
    >>> probe["test"][0]  # doctest: +SKIP
    """
    return _load("probe", hub_id, **kwargs)


# ---- raw (dirty) variants, with the planted defects logged -----------------------------------------------------------

RAW_SETS = ("instructions", "intents")  # which sets have a raw variant in data/raw/
# Planted defects, as data/gen_raw.py names them in the ground truth ("none": a clean row).
DEFECTS = ("exact_duplicate", "near_duplicate", "label_noise", "empty", "truncated", "overlong", "boilerplate",
           "personal_data", "contamination")


def _raw_file(name: str, suffix: str = ""):
    """Load ``data/raw/<name><suffix>.jsonl`` as one Dataset."""
    import datasets

    if name not in RAW_SETS:
        raise LabkitError(f"There is no raw variant of {name!r}: use one of {', '.join(RAW_SETS)}.")
    path = data_dir() / "raw" / f"{name}{suffix}.jsonl"
    if not path.is_file():
        raise LabkitError(f"{path} is missing: rebuild it with `python data/build_data.py` from the repository root, "
                          "or point LABKIT_DATA at a complete data folder.")
    with _quiet():
        return datasets.load_dataset("json", data_files={"train": str(path)}, split="train")


def load_raw_instructions():
    """The instruction training set with planted defects (one per affected row): ``id, instruction, answer, family``.

    ``load_raw_truth("instructions")`` says which rows carry which defect.

    >>> raw = load_raw_instructions()  # doctest: +SKIP
    >>> raw.num_rows  # 1,200 clean rows, some edited, plus duplicates, empties and test copies  # doctest: +SKIP
    """
    return _raw_file("instructions")


def load_raw_intents():
    """The intents training set with planted defects: ``id, text, label`` (see ``load_raw_truth("intents")``)."""
    return _raw_file("intents")


def load_raw_truth(name: str):
    """The planted defects of a raw set, one row per raw row: ``id, defect, source``.

    ``defect`` is "none" or one of ``DEFECTS``; ``source`` is the id of the row a duplicate copies, the index in
    the test split that a contaminated row copies, or None.

    >>> truth = load_raw_truth("instructions")  # doctest: +SKIP
    >>> truth.filter(lambda row: row["defect"] == "near_duplicate")[0]  # doctest: +SKIP
    """
    return _raw_file(name, "_truth")
