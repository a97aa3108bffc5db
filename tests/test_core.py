import random

import numpy as np
import pytest
import torch

import labkit as lk
from labkit import core


@pytest.mark.parametrize("env, expected", [({"LABKIT_FAST": "1"}, True), ({"LABKIT_FAST": "0", "CI": "true"}, False),
                                           ({"CI": "true"}, True), ({}, False)])
def test_fast_mode_follows_the_environment(monkeypatch, env, expected):
    monkeypatch.delenv("LABKIT_FAST", raising=False)
    monkeypatch.delenv("CI", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert core.fast_mode() is expected
    assert core.pick("fast", "full") == ("fast" if expected else "full")


def test_setup_seeds_everything_and_prints_one_line(capsys):
    session = lk.setup(seed=3)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    lk.setup(seed=3)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())
    out = capsys.readouterr().out.strip().splitlines()
    assert session.device == core.resolve_device("auto")  # cpu here, cuda on a GPU machine
    assert len(out) == 2 and f"device={session.device}," in out[0] and "offline" in out[0] and "seed=3" in out[0]
    assert session.offline and session.fast


@pytest.mark.parametrize("seed", ["abc", 1.5, -1, 2**32, None, True])
def test_a_bad_seed_is_refused_with_what_to_pass(seed, capsys):
    with pytest.raises(lk.LabkitError, match=r"seed must be a whole number from 0 to 2\*\*32 - 1, e.g. seed=0"):
        lk.setup(seed=seed)
    with pytest.raises(lk.LabkitError, match="seed must be a whole number"):
        core.seed_everything(seed)
    assert capsys.readouterr().out == ""  # nothing printed: no session was set up


def test_the_largest_seed_numpy_takes_is_accepted():
    core.seed_everything(2**32 - 1)
    core.seed_everything(np.int64(7))  # numpy integers are whole numbers too
    assert lk.setup(seed=np.int64(7), quiet=True).seed == 7


def test_cache_dir_can_be_moved(monkeypatch, tmp_path):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    assert core.cache_dir() == tmp_path


def test_importing_labkit_is_cheap():
    import subprocess
    import sys

    code = "import sys, labkit; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_doctor_reports_and_exits_zero_here(capsys):
    from labkit.__main__ import main

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "offline model cache" in out and "4-bit" in out


def test_doctor_names_the_fix_when_an_essential_is_missing(monkeypatch, capsys):
    from labkit import doctor

    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda name: None if name == "peft" else real(name))
    assert doctor.doctor_main([]) == 1
    assert "peft is missing: run `make lab`" in capsys.readouterr().out

