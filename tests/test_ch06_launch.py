"""Lab 06's launcher: bad input, a timeout that leaves no process behind, and one real 2-rank torchrun launch whose
DDP losses match one process and whose runs learn."""

import os
import subprocess
import sys
import time

import psutil
import pytest

from labkit.chapters.ch06_distributed import launch as L
from labkit.chapters.ch06_distributed import worker
from labkit.core import LabkitError

JOB = {"model": "tiny-llama", "steps": 3, "batch_size": 4, "seq_len": 16}


@pytest.mark.parametrize(("args", "kwargs", "fragment"), [
    (("torchrun", ["ddp"]), {"nproc": 0}, "world size"),
    (("torchrun", ["ddp"]), {"nproc": 3}, "does not split evenly"),
    (("deepspeed", ["zero1"]), {"job": {"batch_size": 2}}, "micro-batches"),
    (("mpirun", ["ddp"]), {}, "Unknown launcher"),
    (("torchrun", ["zero3"]), {}, "cannot run"),
    (("torchrun", "ddp"), {}, "non-empty list"),
    (("torchrun", ["ddp"]), {"job": {"epochs": 2}}, "Unknown job settings"),
    (("torchrun", ["ddp"]), {"timeout_s": 0}, "timeout_s"),
])
def test_bad_input(args, kwargs, fragment):
    with pytest.raises(LabkitError, match=fragment):
        L.launch(*args, **kwargs)


def test_launcher_not_installed(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LabkitError, match="not installed"):
        L.find_launcher("deepspeed")


def _alive_with(text: str) -> list:
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(text in part for part in proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc.pid)
        except psutil.Error:
            pass
    return out


def test_stop_tree_reaches_children_in_their_own_sessions(tmp_path):
    marker = str(tmp_path / "sleeper")
    child = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', '{marker}'], start_new_session=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", child, marker], start_new_session=True)
    deadline = time.time() + 10
    while len(_alive_with(marker)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert len(_alive_with(marker)) == 2
    L.stop_tree(proc, grace_s=2)
    assert _alive_with(marker) == []


def test_timeout_stops_every_process(tmp_path):
    start = time.perf_counter()
    with pytest.raises(LabkitError, match="did not finish within"):
        L.launch("torchrun", ["ddp"], job=JOB, timeout_s=2, workdir=tmp_path)
    assert time.perf_counter() - start < 20
    time.sleep(0.2)
    assert _alive_with(str(tmp_path)) == []


def test_real_torchrun_launch_matches_one_process_and_learns(tmp_path):
    single = worker.single_process_run(JOB)  # the lab runs the reference first, then launches
    run = L.launch("torchrun", ["ddp", "fsdp2_lora"], job=JOB, timeout_s=120, workdir=tmp_path)
    assert _alive_with(str(tmp_path)) == []
    ddp = run.results["ddp"]
    assert len(ddp) == 2 and run.wall_s > run.worker_s > 0
    # two ranks each sum half the batch: fp32 rounding only, far below 1e-4 of a ~10.8 loss
    for rank in ddp:
        assert max(abs(a - b) for a, b in zip(rank["losses"], single["losses"])) < 1e-3
    # learning: the loss on the fixed batch falls by at least 0.2 nats in 3 AdamW steps (lr 1e-3)
    assert single["losses"][0] - single["losses"][-1] > 0.2 and ddp[0]["losses"][0] - ddp[0]["losses"][-1] > 0.2
    n = single["n_params"]
    assert ddp[0]["param_bytes"] == ddp[0]["grad_bytes"] == 4 * n and ddp[0]["optim_bytes"] == 8 * n
    lora = run.results["fsdp2_lora"]
    # LoRA (lr 1e-2) learns too, and each rank holds half the base and gradients for half the adapters only
    assert lora[0]["losses"][0] - lora[0]["losses"][-1] > 0.05
    local_adapters = lora[0]["trainable_param_bytes"]  # this rank's shard of the adapters
    assert local_adapters == pytest.approx(4 * lora[0]["trainable_params"] / 2, rel=0.01)
    assert lora[0]["param_bytes"] == pytest.approx(4 * n / 2 + local_adapters, rel=0.01)
    assert lora[0]["grad_bytes"] == local_adapters and lora[0]["optim_bytes"] == 2 * local_adapters


def test_each_environment_compiles_deepspeed_ops_in_its_own_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR", raising=False)
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(sys, "prefix", "/one/checkout/.venv")
    one = L.extensions_dir()
    monkeypatch.setattr(sys, "prefix", "/another/checkout/.venv")
    another = L.extensions_dir()
    assert one != another and one.parent == another.parent == tmp_path / "torch_extensions"
    seen = {}

    class Stop(Exception):
        pass

    def fake_popen(command, env, **kwargs):
        seen.update(env)
        raise Stop

    monkeypatch.setattr(L.subprocess, "Popen", fake_popen)
    with pytest.raises(Stop):
        L.launch("deepspeed", ["zero1"], job=JOB, timeout_s=5, workdir=tmp_path / "run")
    assert seen["TORCH_EXTENSIONS_DIR"] == str(another)  # the launched ranks compile and find it there
    assert seen["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)  # with this environment's ninja
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "mine"))
    assert L.extensions_dir() == tmp_path / "mine"  # the user's choice wins


def test_prepare_compiles_deepspeed_ops_and_survives_a_failed_build(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(L, "build_deepspeed_ops", lambda: tmp_path / "deepspeed_shm_comm")
    assert L.prepare_main() == 0
    assert "shared-memory op ready" in capsys.readouterr().out

    def broken():
        raise RuntimeError("no c++ compiler")

    monkeypatch.setattr(L, "build_deepspeed_ops", broken)
    assert L.prepare_main() == 0  # lab 06 retries the build and shows its error
    assert "no c++ compiler" in capsys.readouterr().err
