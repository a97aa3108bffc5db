"""Lab 01f, reproducibility: bit-identical reruns on the CPU, what breaks them, records and restoring a run."""

import warnings

import numpy as np
import pytest
import torch

from labkit.chapters.ch01f_hardware import repro
from labkit.core import LabkitError
from labkit.data import load_instructions

SIZES = {"num_steps": 2, "batch_size": 2, "seq_len": 64}


@pytest.fixture(scope="module")
def data():
    return load_instructions()["train"].select(range(8))


def test_data_hash_is_order_sensitive(data):
    assert repro.data_hash(data) == repro.data_hash(list(data))
    assert repro.data_hash(data) != repro.data_hash(data.select([1, 0, *range(2, 8)]))
    with pytest.raises(LabkitError, match="list of dicts"):
        repro.data_hash("text")


def test_versions_and_git_commit():
    found = repro.versions()
    assert found["torch"] == torch.__version__.split("+")[0] or found["torch"].startswith(torch.__version__[:4])
    assert {"labkit", "transformers", "peft", "trl", "python"} <= set(found)
    commit = repro.git_commit()
    assert commit is None or len(commit.split("+")[0]) == 40
    assert repro.git_commit("/") is None  # not a checkout


def test_torch_settings_restores_and_checks():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), repro.torch_settings(threads=1, deterministic=True):
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
        raise RuntimeError("a failing cell")
    assert torch.get_num_threads() == before and not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(LabkitError, match="threads"), repro.torch_settings(threads=0):
        pass


def test_same_seed_bit_identical_and_what_changes_it(data):
    a = repro.repro_run("tiny-llama", data, **SIZES)
    b = repro.repro_run("tiny-llama", data, **SIZES)
    assert repro.compare_losses(a, b) == {"identical": True, "max_abs_diff": 0.0}
    other = repro.repro_run("tiny-llama", data, seed=1, **SIZES)
    assert not repro.compare_losses(a, other)["identical"]
    with pytest.raises(LabkitError, match="same length"):
        repro.compare_losses([1.0, 2.0], [1.0])
    with pytest.raises(LabkitError, match="seed"):
        repro.repro_run("tiny-llama", data, init_seed=-1, **SIZES)


def test_record_restore_and_old_versions(data, tmp_path):
    run = repro.repro_run("tiny-llama", data, **SIZES)
    record = repro.make_record(run, model_name="tiny-llama", data=data)
    assert repro.missing_fields(record) in ([], ["git_commit"])  # git_commit is None outside a checkout
    path = repro.save_record(record, tmp_path / "r.json")
    restored, notes = repro.restore_run(repro.load_record(path), data)
    assert restored.history["loss"].tolist() == run.history["loss"].tolist()
    assert notes == ["losses identical to the record's, bit for bit"]
    old = dict(record, versions={**record["versions"], "labkit": "0.0.1"})
    with pytest.warns(UserWarning, match="other versions"):
        _, notes = repro.restore_run(old, data)
    assert notes[0].startswith("versions moved: labkit 0.0.1") and "identical" in notes[1]
    with pytest.raises(LabkitError, match="data differs"):
        repro.restore_run(record, data.select(range(7)))
    with pytest.raises(LabkitError, match="lacks data_hash"):
        repro.restore_run({k: v for k, v in record.items() if k != "data_hash"}, data)
    with pytest.raises(LabkitError, match="No run record"):
        repro.load_record(tmp_path / "missing.json")
    with pytest.raises(LabkitError, match="TrainResult"):
        repro.make_record(object(), model_name="tiny-llama", data=data)


def test_missing_fields():
    assert repro.missing_fields({"seed": 0, "config": {"a": 1}}) == ["versions", "git_commit", "data_hash", "hardware"]
    # a ledger row read back through pandas: numpy numbers are values, NaN is missing
    row = {"seed": np.int64(0), "config": {"a": 1}, "versions": {"torch": "2"}, "git_commit": float("nan"),
           "data_hash": "ab", "hardware": {"cpu": "x"}}
    assert repro.missing_fields(row) == ["git_commit"]
    with pytest.raises(LabkitError, match="dict"):
        repro.missing_fields(["seed"])


def test_gpu_nondeterminism_is_none_on_cpu():
    if torch.cuda.is_available():
        pytest.skip("CPU-only check")
    assert repro.gpu_nondeterminism() is None


@pytest.mark.requires_gpu
def test_gpu_nondeterminism_fixed_by_deterministic_mode():
    found = repro.gpu_nondeterminism()
    assert found["max_diff_deterministic"] == 0.0


def test_no_warning_for_same_versions(data):
    run = repro.repro_run("tiny-llama", data, **SIZES)
    record = repro.make_record(run, model_name="tiny-llama", data=data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        repro.restore_run(record, data)
