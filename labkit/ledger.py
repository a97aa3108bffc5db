"""The run ledger: every ``lk.train`` run, in any lab, as one row of a SQLite file.

A row holds the run's config, what the meters predicted and what was measured (peak memory, step time, tokens,
FLOPs), the hardware it ran on, a UTC timestamp, and what it takes to run it again: the versions of the kit and of
the libraries the numbers depend on, the git commit of the checkout, the hash of the training rows and the seed.
A ledger written by an older kit gains the new columns on its next write (empty for its old rows).

The file is ``runs.sqlite`` in the kit's cache folder (``lk.cache_dir()``); ``LABKIT_LEDGER`` names another file,
or turns the ledger off with ``0``/``off``.

Recording never breaks training. Each row is written in one transaction, so two processes writing at once lose
nothing (SQLite's own locking; a writer waits up to ``TIMEOUT_S``). A ledger that cannot be written (locked too
long, read-only disk) is skipped and the next run says so; a corrupt file is kept aside as
``runs.sqlite.corrupt-<time>`` and a fresh one started, with a message.

>>> import labkit as lk
>>> lk.ledger.read_runs().tail()  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

from .core import LabkitError, cache_dir

TIMEOUT_S = 10.0  # how long a writer waits for another process's transaction before giving up on this row
OFF = ("0", "off", "false", "no")
COLUMNS = {  # column -> SQLite type; the order is the table's
    "created_utc": "TEXT",  # ISO 8601, seconds
    "kit_version": "TEXT",
    "label": "TEXT",  # the run's name (TrainConfig.label)
    "model": "TEXT",  # the model's display name
    "method": "TEXT",  # the registered method applied, or "none"
    "config": "TEXT",  # JSON: the TrainConfig as it ran and the method's settings
    "device": "TEXT",  # "cpu", "cuda", "mps"
    "hardware": "TEXT",  # JSON: processor or GPU name, cores, threads, torch version
    "num_steps": "INTEGER",
    "tokens": "INTEGER",  # tokens seen in training (padding excluded)
    "flops": "REAL",  # meters.training_flops for those tokens
    "predicted_peak_gib": "REAL",  # meters.predict_memory for the run's settings, NULL where it has no formula
    "measured_peak_gib": "REAL",
    "time_s": "REAL",  # training time, evaluation excluded
    "step_time_s": "REAL",
    "final_loss": "REAL",
    "versions": "TEXT",  # JSON: labkit, python and PACKAGES' versions
    "git_commit": "TEXT",  # the checkout's commit, "+dirty" when tracked files differ; NULL outside a checkout
    "data_hash": "TEXT",  # data_hash of the training rows, in order
    "seed": "INTEGER",  # TrainConfig.seed (batch order, dropout; a method's init seed is in config)
}
PACKAGES = ("torch", "transformers", "peft", "trl", "datasets", "numpy")  # libraries a run's numbers depend on
REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout the kit runs from, when it is one
_CREATE = ("CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, "
           + ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items()) + ")")


def ledger_path() -> Path | None:
    """Where runs are recorded: ``LABKIT_LEDGER`` if set (None when it says off), else the cache folder's file."""
    value = os.environ.get("LABKIT_LEDGER", "").strip()
    if value.lower() in OFF:
        return None
    return Path(value).expanduser() if value else cache_dir() / "runs.sqlite"


def hardware() -> dict:
    """What this run ran on, for the ledger: the processor's (or GPU's) name, cores, torch threads, versions."""
    import torch

    info = {"processor": _cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count())
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict:
    """The kit's version and the versions of the libraries a run's numbers depend on (PACKAGES), plus Python's."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"labkit": _kit_version(), "python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def git_commit(root: Path | str = REPO_ROOT) -> str | None:
    """The checkout's commit (with "+dirty" when tracked files differ from it); None outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], check=False, cwd=root, capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], check=False, cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def data_hash(data) -> str:
    """SHA-256 of the rows in order (a Dataset or a list of dicts): the same data, in the same order, same hash."""
    rows = list(data) if not isinstance(data, (str, bytes, dict)) else None
    if rows is None or not all(isinstance(row, dict) for row in rows):
        raise LabkitError("data_hash needs a datasets.Dataset or a list of dicts (the rows trained on).")
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode() + b"\n")
    return digest.hexdigest()


def _kit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("peft-lab-kit")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _notice_path(path: Path) -> Path:
    return path.with_name(path.name + ".notice")


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=TIMEOUT_S, isolation_level=None)
    conn.execute(_CREATE)
    have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
    for name, kind in COLUMNS.items():  # a ledger from an older kit: add the columns it lacks
        if name not in have:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
    return conn


def _insert(path: Path, row: dict) -> int:
    conn = _connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")  # take the write lock now, so two writers queue instead of failing mid-way
        cur = conn.execute(f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                           [row.get(name) for name in COLUMNS])
        conn.execute("COMMIT")
        return cur.lastrowid
    finally:
        conn.close()


def record(row: dict, path: Path | None = None) -> int | None:
    """Append one run to the ledger and return its id; None if the ledger is off or could not be written.

    Never raises for the ledger's own trouble (training must not fail for it): it prints what happened, keeps a
    corrupt file aside, and leaves a notice that the next call prints. Keys outside ``COLUMNS`` are an error.
    """
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise LabkitError(f"The ledger has no column {min(unknown)!r}: use only {', '.join(COLUMNS)}.")
    path = path if path is not None else ledger_path()
    if path is None:
        return None
    notice = _notice_path(path)
    if notice.exists():
        print(f"labkit: {notice.read_text().strip()}")
        notice.unlink(missing_ok=True)
    row = {"created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "kit_version": _kit_version(), **row}
    row = {k: json.dumps(v, default=str) if isinstance(v, (dict, list, tuple)) else v for k, v in row.items()}
    try:
        return _insert(path, row)
    except sqlite3.DatabaseError as err:
        if not _is_corrupt(err):
            return _skip(notice, path, err)
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}")
    try:
        path.replace(aside)
        run_id = _insert(path, row)
    except (OSError, sqlite3.DatabaseError) as err:
        return _skip(notice, path, err)
    print(f"labkit: the run ledger {path} was not a readable SQLite file; it is kept as {aside.name} and a fresh "
          "ledger holds this run.")
    return run_id


def _is_corrupt(err: sqlite3.DatabaseError) -> bool:
    return not isinstance(err, sqlite3.OperationalError) or "malformed" in str(err) or "not a database" in str(err)


def _skip(notice: Path, path: Path, err: Exception) -> None:  # prints, leaves a notice; the caller returns None
    message = (f"the previous run was not recorded in the ledger {path} ({err}). Close other programs using it, "
               "or set LABKIT_LEDGER to another file (or to 0 to turn the ledger off).")
    print(f"labkit: {message}")
    try:
        notice.write_text(message)
    except OSError:
        pass


def read_runs(path: Path | str | None = None):
    """Every recorded run as a pandas DataFrame, oldest first; ``config``, ``hardware`` and ``versions`` decoded to
    dicts (empty for rows recorded before a column existed)."""
    import pandas as pd

    path = Path(path) if path is not None else ledger_path()
    if path is None:
        raise LabkitError("The ledger is off (LABKIT_LEDGER=0): unset LABKIT_LEDGER to record and read runs.")
    if not path.exists():
        return pd.DataFrame(columns=["id", *COLUMNS])
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=TIMEOUT_S)) as conn:
            frame = pd.read_sql_query("SELECT * FROM runs ORDER BY id", conn)
    except (sqlite3.DatabaseError, pd.errors.DatabaseError) as err:  # pandas wraps sqlite's error in its own
        if "no such table" in str(err):  # a file made by another program, or one that never got its first row
            return pd.DataFrame(columns=["id", *COLUMNS])
        raise LabkitError(f"The ledger {path} cannot be read ({err}): the next training run keeps it aside and "
                          "starts a fresh one, or delete it.") from None
    for name in COLUMNS:  # a ledger from an older kit, not written since: its rows lack the newer columns
        if name not in frame:
            frame[name] = None
    for column in ("config", "hardware", "versions"):
        frame[column] = frame[column].map(lambda text: json.loads(text) if isinstance(text, str) else {})
    return frame
