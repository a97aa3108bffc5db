"""Start the lab's training script through a real launcher (torchrun, deepspeed, accelerate launch), with a timeout.

``launch`` writes the job as JSON, builds the launcher's command line, runs it in its own process group, and returns
the ranks' JSON results. On a timeout, an interrupt or a failure it stops the launcher and every process it started
(the ranks run in sessions of their own, so they are found as descendants and stopped one by one), and a failure
shows the tail of the log.

>>> run = launch("torchrun", ["ddp"], timeout_s=120)  # doctest: +SKIP
>>> run.results["ddp"][0]["losses"]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ...core import LabkitError, cache_dir
from . import worker

LAUNCHERS = {"torchrun": worker.TORCH_EXPERIMENTS, "deepspeed": worker.DEEPSPEED_EXPERIMENTS,
             "accelerate": worker.ACCELERATE_EXPERIMENTS}
ENGINES = {"torchrun": "torch", "deepspeed": "deepspeed", "accelerate": "accelerate"}
MODULE = "labkit.chapters.ch06_distributed.worker"
REPO_ROOT = Path(__file__).resolve().parents[3]  # the folder that holds the labkit package
LOG_TAIL_CHARS = 4000  # how much of a failed launch's log the error shows


def extensions_dir() -> Path:
    """Where torch compiles DeepSpeed's CPU ops (its shared-memory collectives) for this Python environment.

    torch's default, ~/.cache/torch_extensions, is shared by every environment of the user. Its build files name
    one environment's header paths, so two checkouts that take turns rebuild the op (about 40 s on 2 cores) each
    time. One folder per environment builds it once. ``TORCH_EXTENSIONS_DIR``, when set, wins.
    """
    tag = hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]
    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cache_dir() / "torch_extensions" / tag)


def build_env() -> dict[str, str]:
    """The variables a compile of DeepSpeed's op sees: this environment's folder of it, and its own ninja first.

    torch runs whichever ``ninja`` is first on PATH. The pinned one sits beside this Python; a system ninja of
    another version (Debian's 1.11 against the pinned 1.13) reads the other's build log as stale and rebuilds.
    """
    path = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), os.environ.get("PATH")]))
    return {"TORCH_EXTENSIONS_DIR": str(extensions_dir()), "PATH": path}


def build_deepspeed_ops() -> Path | None:
    """Compile DeepSpeed's CPU shared-memory op now (``python -m labkit prepare`` does), so no launch waits for it.

    Returns the op's folder, or None where nothing needs building: DeepSpeed is not installed, its accelerator is a
    GPU, or its CPU op is not compatible with this machine (DeepSpeed then runs without it).
    """
    if importlib.util.find_spec("deepspeed") is None:
        return None
    os.environ.update(build_env())
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    if get_accelerator().device_name() != "cpu":
        return None
    builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
    if builder is None or not deepspeed.ops.__compatible_ops__.get(builder.NAME, False):
        return None
    builder.load(verbose=False)
    return extensions_dir() / builder.name


@dataclass
class LaunchResult:
    """One finished launch: what ran, how long it took, and what the ranks reported."""

    launcher: str  # "torchrun", "deepspeed" or "accelerate"
    command: list  # the command line that ran
    wall_s: float  # seconds from starting the launcher to its exit (start-up, imports and training)
    worker_s: float  # seconds the ranks spent from process-group start to the end of the last experiment
    results: dict = field(repr=False)  # experiment -> one dict per rank
    extras: dict = field(repr=False, default_factory=dict)  # rank 0's other outputs (e.g. DeepSpeed's estimates)
    log: str = field(repr=False, default="")  # everything the launcher and the ranks printed

    @property
    def overhead_s(self) -> float:
        """Seconds of the launch that were not the experiments: launcher start, imports, rendezvous, exit."""
        return self.wall_s - self.worker_s


def free_port() -> int:
    """A TCP port that is free right now on this machine (the system picks it), for the rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_launcher(launcher: str) -> str:
    """The path of ``launcher``'s executable: next to this Python first, then on PATH."""
    if launcher not in LAUNCHERS:
        raise LabkitError(f"Unknown launcher {launcher!r}: use one of {', '.join(LAUNCHERS)}.")
    local = Path(sys.executable).parent / launcher
    path = str(local) if local.exists() else shutil.which(launcher)
    if path is None:
        package = {"torchrun": "torch", "deepspeed": "deepspeed", "accelerate": "accelerate"}[launcher]
        raise LabkitError(f"The {launcher!r} launcher is not installed in this environment: "
                          f"run `pip install {package}`, or use another launcher.")
    return path


ACCELERATE_FSDP_YAML = """compute_environment: LOCAL_MACHINE
distributed_type: FSDP
num_machines: 1
num_processes: {nproc}
machine_rank: 0
main_training_function: main
mixed_precision: 'no'
use_cpu: {use_cpu}
fsdp_config:
  fsdp_version: 2
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_transformer_layer_cls_to_wrap: LlamaDecoderLayer
  fsdp_reshard_after_forward: true
  fsdp_state_dict_type: SHARDED_STATE_DICT
  fsdp_cpu_ram_efficient_loading: false
"""


def launcher_command(launcher: str, *, nproc: int, port: int, job_path, out_path, config_path=None) -> list[str]:
    """The command line that starts ``nproc`` ranks of the worker under ``launcher`` (the same on CPU and GPUs)."""
    exe = find_launcher(launcher)
    args = ["-m", MODULE, str(job_path), str(out_path)]
    if launcher == "torchrun":
        return [exe, "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1", "--master_port", str(port), *args]
    if launcher == "deepspeed":
        return [exe, "--num_gpus", str(nproc), "--master_addr", "127.0.0.1", "--master_port", str(port), "--module",
                MODULE, str(job_path), str(out_path)]
    if config_path is None:
        raise LabkitError("accelerate launch needs its config file: pass config_path (see ACCELERATE_FSDP_YAML).")
    return [exe, "launch", "--config_file", str(config_path), "--num_processes", str(nproc), "--main_process_ip",
            "127.0.0.1", "--main_process_port", str(port), *args]


def check_job(launcher: str, experiments, nproc: int, job: dict) -> None:
    """Reject a launch that cannot work, with a sentence that says what to change."""
    if launcher not in LAUNCHERS:
        raise LabkitError(f"Unknown launcher {launcher!r}: use one of {', '.join(LAUNCHERS)}.")
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise LabkitError(f"The world size (nproc) must be a whole number >= 1, got {nproc!r}: use 2 on this CPU.")
    if isinstance(experiments, str) or not experiments:
        raise LabkitError(f"experiments is a non-empty list of names, e.g. [{LAUNCHERS[launcher][0]!r}].")
    wrong = [e for e in experiments if e not in LAUNCHERS[launcher]]
    if wrong:
        raise LabkitError(f"{launcher} cannot run {wrong}: it runs {', '.join(LAUNCHERS[launcher])}.")
    unknown = set(job) - set(worker.DEFAULT_JOB) - {"backend"}
    if unknown:
        raise LabkitError(f"Unknown job settings {sorted(unknown)}: use {', '.join(worker.DEFAULT_JOB)}.")
    full = {**worker.DEFAULT_JOB, **job}
    per = nproc * (worker.ACCUMULATION if launcher == "deepspeed" else 1)
    if full["batch_size"] % per:
        what = f"{nproc} ranks" + (f" x {worker.ACCUMULATION} micro-batches" if launcher == "deepspeed" else "")
        raise LabkitError(f"batch_size {full['batch_size']} does not split evenly over {what}: "
                          f"use a multiple of {per}.")
    if full["steps"] < 1 or full["seq_len"] < 2:
        raise LabkitError("steps must be >= 1 and seq_len >= 2.")


def _descendants(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def stop_tree(proc: subprocess.Popen, children=(), grace_s: float = 5.0) -> None:
    """Stop a launcher and the processes it started: SIGTERM, then SIGKILL after ``grace_s`` for any left."""
    import psutil

    family = [*children, *_descendants(proc.pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for child in family:
            try:
                child.send_signal(sig)
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(family, timeout=grace_s)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
        if not alive:
            return
    proc.wait()


def launch(launcher: str, experiments, *, nproc: int = 2, job: dict | None = None, timeout_s: float = 180.0,
           backend: str | None = None, workdir=None) -> LaunchResult:
    """Run ``experiments`` on ``nproc`` ranks under ``launcher`` and return their results.

    ``backend`` is "gloo" on CPUs and "nccl" on GPUs (the default follows torch.cuda). Raises LabkitError on bad
    input, on a timeout (after stopping every process) and on a failed run (with the log's tail).
    """
    job = dict(job or {})
    check_job(launcher, experiments, nproc, job)
    if not timeout_s or timeout_s <= 0:
        raise LabkitError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}.")
    if backend is None:
        import torch

        backend = "nccl" if torch.cuda.is_available() and torch.cuda.device_count() >= nproc else "gloo"
    folder = Path(workdir or tempfile.mkdtemp(prefix="labkit-ch06-"))
    folder.mkdir(parents=True, exist_ok=True)
    job_path, out_path, log_path = folder / "job.json", folder / "out.json", folder / "launch.log"
    job_path.write_text(json.dumps({**job, "engine": ENGINES[launcher], "experiments": list(experiments),
                                    "backend": backend}))
    out_path.unlink(missing_ok=True)
    config_path = None
    if launcher == "accelerate":
        config_path = folder / "fsdp.yaml"
        config_path.write_text(ACCELERATE_FSDP_YAML.format(nproc=nproc, use_cpu="false"))
    command = launcher_command(launcher, nproc=nproc, port=free_port(), job_path=job_path, out_path=out_path,
                               config_path=config_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           **build_env(),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stop_tree(proc)
            raise LabkitError(f"{launcher} did not finish within {timeout_s:.0f} s; every process it started was "
                              f"stopped. Raise timeout_s, or run fewer steps. Log tail:\n"
                              f"{_tail(log_path)}") from None
        except BaseException:  # an interrupt (the notebook's stop button) or any other error: leave nothing behind
            stop_tree(proc)
            raise
    wall_s = time.perf_counter() - start
    text = log_path.read_text(errors="replace")
    if proc.returncode != 0 or not out_path.exists():
        raise LabkitError(f"{launcher} failed (exit code {proc.returncode}): the log's tail is below; command: "
                          f"{' '.join(command)}\n{_tail(log_path)}")
    payload = json.loads(out_path.read_text())
    extras = {k: v for k, v in payload.items() if k not in ("results", "import_to_end_s")}
    return LaunchResult(launcher, command, wall_s, payload["import_to_end_s"], payload["results"], extras, text)


def _tail(path: Path) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-LOG_TAIL_CHARS:]


def prepare_main() -> int:
    """``python -m labkit.chapters.ch06_distributed.launch`` (``make setup`` runs it): compile DeepSpeed's CPU op
    once. A failed build is reported and does not fail the setup: the first DeepSpeed launch tries again."""
    try:
        op = build_deepspeed_ops()
    except Exception as err:  # noqa: BLE001 (lab 06's first launch retries the build and shows why it failed)
        print(f"labkit: DeepSpeed's CPU op did not compile now ({type(err).__name__}: {err}); lab 06's first "
              "DeepSpeed launch will try again", file=sys.stderr)
        return 0
    if op is not None:
        print(f"DeepSpeed's CPU shared-memory op ready at {op}")
    return 0


if __name__ == "__main__":
    sys.exit(prepare_main())
