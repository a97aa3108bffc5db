"""The experiment tracker: TensorBoard event files, written by ``lk.train(..., report_to="tensorboard")``.

Why TensorBoard: it is one of the trackers Hugging Face's ``report_to`` speaks, it runs on localhost with no account
and no server to keep, and it installs light (MLflow resolved to an old 1.x release with a large dependency tree beside
this kit's pins). Each run is a folder under ``log_dir()``: its loss, learning rate and evaluation metrics per step,
and its settings as TensorBoard hparams, so the UI's HPARAMS tab lists every run with its config. The run ledger
(``labkit.ledger``) holds the same runs' measured costs; the tracker holds their curves.

>>> import labkit as lk
>>> result = lk.train(model, tokenizer, data, report_to="tensorboard", label="lora-r8")  # doctest: +SKIP
>>> lk.tracker.runs()  # one row per run: its settings and final metrics  # doctest: +SKIP
>>> lk.tracker.find_runs(method="lora", lr=1e-3)  # doctest: +SKIP
>>> with lk.tracker.ui() as url:  # TensorBoard on 127.0.0.1 until the block ends  # doctest: +SKIP
...     print(url)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .core import LabkitError, cache_dir

REPORT_TO = ("none", "tensorboard")  # what lk.train(report_to=...) accepts
START_TIMEOUT_S = 60.0  # how long ui() waits for TensorBoard to answer


def log_dir() -> Path:
    """The folder that holds one sub-folder per run: ``LABKIT_TRACKER_DIR`` if set, else the cache's ``tensorboard``."""
    value = os.environ.get("LABKIT_TRACKER_DIR", "").strip()
    return Path(value).expanduser() if value else cache_dir() / "tensorboard"


def _require_tensorboard():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's writer needs the tensorboard package
        raise LabkitError("The tracker needs TensorBoard: run `pip install tensorboard` (make setup installs it), "
                          "or train with report_to='none'.") from None
    return SummaryWriter


def _hparam(value):
    """A setting as TensorBoard's hparams accept it: numbers, strings and booleans as they are, others as JSON."""
    if isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, default=str)


class RunWriter:
    """Writes one training run: scalars while it runs, then its settings and final metrics as hparams.

    ``lk.train`` makes one when ``report_to="tensorboard"``; other code can too, to log its own runs.
    """

    def __init__(self, name: str, settings: dict):
        if not isinstance(name, str) or not re.fullmatch(r"[\w.+-]+", name):
            raise LabkitError(f"A run name is letters, digits and . _ + - only (it becomes a folder), got {name!r}.")
        if not isinstance(settings, dict):
            raise LabkitError(f"settings must be a dict of the run's config, got {type(settings).__name__}.")
        summary_writer = _require_tensorboard()
        root = log_dir()
        self.name = _free_name(root, name)
        self.path = root / self.name
        self.settings = {k: _hparam(v) for k, v in settings.items()}
        try:
            root.mkdir(parents=True, exist_ok=True)
            self._writer = summary_writer(log_dir=str(self.path))
        except OSError as error:
            raise LabkitError(f"The tracker cannot write to {root} ({error.strerror}): set LABKIT_TRACKER_DIR to a "
                              "folder you can write to.") from None
        self._writer.add_text("config", "```\n" + json.dumps(settings, indent=2, default=str) + "\n```")
        self._last: dict[str, float] = {}

    def log(self, step: int, metrics: dict) -> None:
        """Scalars at ``step``: ``{"train/loss": 2.3, "eval/accuracy": 0.8}``."""
        for tag, value in metrics.items():
            if value is not None and math.isfinite(float(value)):
                self._writer.add_scalar(tag, float(value), step)
                self._last[tag] = float(value)

    def close(self, final: dict | None = None) -> None:
        """Writes the settings as hparams with the final metrics (the last value of every tag unless given)."""
        metrics = {f"final/{tag}": value for tag, value in {**self._last, **(final or {})}.items()}
        self._writer.add_hparams(self.settings, metrics, run_name=".")  # "." keeps it in this run's folder
        self._writer.close()


def _free_name(root: Path, name: str) -> str:
    """``name``, or ``name-2``, ``name-3``, … where an earlier run already took it."""
    candidate, n = name, 1
    while (root / candidate).exists():
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def _accumulator(run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _run_folder(run: str) -> Path:
    path = log_dir() / str(run)
    if not path.is_dir():
        known = ", ".join(sorted(p.name for p in log_dir().glob("*") if p.is_dir())[:10]) or "none yet"
        raise LabkitError(f"No tracked run {run!r} in {log_dir()} (runs: {known}). Train with "
                          "report_to='tensorboard', or see lk.tracker.runs().")
    return path


def scalars(run: str):
    """Every scalar of one run, read back from its event files: a DataFrame of tag, step and value."""
    import pandas as pd

    _require_tensorboard()
    acc = _accumulator(_run_folder(run))
    rows = [(tag, event.step, event.value) for tag in acc.Tags()["scalars"] for event in acc.Scalars(tag)]
    return pd.DataFrame(rows, columns=["tag", "step", "value"])


def _hparams(acc) -> dict:
    """The run's settings as TensorBoard stored them (the hparams plugin's session-start record); {} for a run that
    has none (stopped before its first write, or logged by another program)."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    try:
        contents = acc.PluginTagToContent("hparams")
    except KeyError:
        return {}
    for content in contents.values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            out = {}
            for key, value in data.session_start_info.hparams.items():
                kind = value.WhichOneof("kind")
                out[key] = getattr(value, kind) if kind else None
            return out
    return {}


def runs():
    """One row per tracked run: its name, settings (the hparams) and final metrics, oldest first."""
    import pandas as pd

    _require_tensorboard()
    rows = []
    folders = [p for p in log_dir().glob("*") if p.is_dir()] if log_dir().is_dir() else []
    for folder in sorted(folders, key=lambda p: p.stat().st_mtime):
        acc = _accumulator(folder)
        row = {"run": folder.name, **_hparams(acc)}
        for tag in acc.Tags()["scalars"]:
            if tag.startswith("final/"):
                row[tag.removeprefix("final/")] = acc.Scalars(tag)[-1].value
        rows.append(row)
    return pd.DataFrame(rows)


def find_runs(**settings):
    """The tracked runs whose settings match every keyword: ``find_runs(method="lora", lr=1e-3)``."""
    table = runs()
    if not settings:
        raise LabkitError("Name at least one setting to match, e.g. lk.tracker.find_runs(method='lora').")
    for key, value in settings.items():
        if key not in table.columns:
            raise LabkitError(f"No tracked run has a setting {key!r}; settings seen: "
                              f"{', '.join(c for c in table.columns if c != 'run') or 'none (no runs yet)'}.")
        column = table[key]
        if isinstance(value, float):
            table = table[column.apply(lambda x, v=value: isinstance(x, float) and math.isclose(x, v, rel_tol=1e-6))]
        else:
            table = table[column == _hparam(value)]
    return table.reset_index(drop=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def ui(port: int | None = None, *, timeout_s: float = START_TIMEOUT_S):
    """TensorBoard's UI over ``log_dir()`` on 127.0.0.1, from entering the block until it ends (also on an error).

    Yields the URL. ``port=None`` picks a free one.
    """
    _require_tensorboard()
    if port is not None and (not isinstance(port, int) or not 1024 <= port <= 65535):
        raise LabkitError(f"port must be a whole number from 1024 to 65535, or None for a free one, got {port!r}.")
    port = port or _free_port()
    log_dir().mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(log_dir()), "--host", "127.0.0.1",
               "--port", str(port), "--reload_interval", "5"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise LabkitError(f"TensorBoard stopped at start (exit {process.returncode}): "
                                  f"{(process.stdout.read() or '').strip()[-500:]} Is port {port} taken?")
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise LabkitError(f"TensorBoard did not answer on {url} within {timeout_s:.0f} s; "
                                      "try again with a larger timeout_s.") from None
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m labkit.tracker`` (``make tracker``): the UI until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m labkit.tracker", description=main.__doc__)
    parser.add_argument("--port", type=int, default=6006)
    args = parser.parse_args(argv)
    try:
        with ui(args.port) as url:
            print(f"TensorBoard on {url} over {log_dir()} (Ctrl-C stops it)", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    except LabkitError as error:
        print(f"labkit: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
