"""Reproducibility: the same seed gives the same losses bit for bit on the CPU; what breaks it; a run record with
versions, git commit, config, data hash, seed and hardware; and a run restored from its record."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import warnings
from pathlib import Path

from ... import ledger
from ...core import LabkitError, check_seed, fast_mode
from ...ledger import data_hash, git_commit, versions  # every ledger row records them too
from ...methods import apply_method
from ...models import load_model
from ...training import TrainConfig, train

# What a run record must hold to restore a run (the lab's exercise asks which of them a record lacks).
RECORD_FIELDS = ("versions", "git_commit", "config", "data_hash", "seed", "hardware")
_BASES: dict = {}  # model name -> (model, tokenizer) as loaded: each run trains a deep copy, so all start the same


@contextlib.contextmanager
def torch_settings(*, threads: int | None = None, deterministic: bool = False):
    """Set torch's thread count and deterministic mode for a block; put both back after it, also on errors."""
    import torch

    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise LabkitError(f"threads must be a positive whole number or None (leave as it is), got {threads!r}.")
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(bool(deterministic), warn_only=True)
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def shuffled(data, seed: int | None):
    """The rows in another order (seeded), or unchanged for None: the data order as the only change."""
    if seed is None:
        return data
    check_seed(seed)
    return data.shuffle(seed=seed) if hasattr(data, "shuffle") else data


def base_copy(model_name: str):
    """A fresh deep copy of ``model_name`` as load_model gives it (loaded once per process), with its tokenizer."""
    import copy

    if model_name not in _BASES:
        _BASES[model_name] = load_model(model_name)
    model, tokenizer = _BASES[model_name]
    return copy.deepcopy(model), tokenizer


def repro_run(model_name: str, data, *, seed: int = 0, init_seed: int = 0, threads: int | None = None,
              deterministic: bool = False, data_seed: int | None = None, lora_dropout: float = 0.0,
              num_steps: int = 4, batch_size: int = 4, seq_len: int = 64, lr: float = 1e-3, label: str = "run",
              live_plot: bool = False, report_to: str = "none"):
    """Load ``model_name`` fresh, seed the LoRA init with ``init_seed``, train with lk.train; return the TrainResult.

    Each argument is one thing that can change a run: ``seed`` (batch order and dropout masks), ``init_seed`` (the
    adapter's random start), ``threads``, ``deterministic`` (torch.use_deterministic_algorithms), ``data_seed`` (the
    rows shuffled before training) and ``lora_dropout``.
    """
    import torch

    check_seed(init_seed)
    with torch_settings(threads=threads, deterministic=deterministic):
        model, tokenizer = base_copy(model_name)
        torch.manual_seed(init_seed)
        model = apply_method(model, "lora", dropout=lora_dropout)
        return train(model, tokenizer, shuffled(data, data_seed), num_steps=num_steps, batch_size=batch_size,
                     seq_len=seq_len, lr=lr, seed=seed, label=label, live_plot=live_plot, progress=False,
                     report_to=report_to)


def compare_losses(a, b) -> dict:
    """Whether two runs' losses are equal bit for bit, and their largest difference."""
    la, lb = list(_losses(a)), list(_losses(b))
    if len(la) != len(lb):
        raise LabkitError(f"The runs have different numbers of steps ({len(la)} and {len(lb)}): compare runs of the "
                          "same length.")
    diffs = [abs(x - y) for x, y in zip(la, lb)]
    return {"identical": la == lb, "max_abs_diff": max(diffs) if diffs else 0.0}


def _losses(run):
    history = getattr(run, "history", None)
    return history["loss"].tolist() if history is not None else list(run)


def what_breaks_it(model_name: str, data, **sizes):
    """A table: each row changes one thing against a baseline run and says whether the losses stay bit-identical."""
    import pandas as pd
    from tqdm.auto import tqdm

    base = repro_run(model_name, data, label="baseline", **sizes)
    variants = {
        "the same settings again": {},
        "another seed (batch order, dropout masks)": {"seed": 1},
        "another LoRA init seed": {"init_seed": 1},
        "data order (rows shuffled, same seed)": {"data_seed": 1},
        "1 thread instead of the default": {"threads": 1},
        "deterministic algorithms on": {"deterministic": True},
        "LoRA dropout 0.1 (vs none)": {"lora_dropout": 0.1},
    }
    rows = []
    for name, change in tqdm(variants.items(), desc="what breaks it", disable=fast_mode()):
        run = repro_run(model_name, data, label=name, **sizes, **change)
        rows.append({"change": name, **compare_losses(base, run), "final_loss": run.final_loss})
    dropout_a = repro_run(model_name, data, label="dropout a", lora_dropout=0.1, **sizes)
    dropout_b = repro_run(model_name, data, label="dropout b", lora_dropout=0.1, **sizes)
    rows.append({"change": "LoRA dropout 0.1, run twice with the same seed", **compare_losses(dropout_a, dropout_b),
                 "final_loss": dropout_b.final_loss})
    return base, pd.DataFrame(rows)


def gpu_nondeterminism(size: int = 1 << 20, bins: int = 64) -> dict | None:
    """On CUDA: sum the same numbers into bins twice with index_add_ (atomic adds, order not fixed) and compare;
    then again under torch.use_deterministic_algorithms. None on a machine without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    gen = torch.Generator(device="cuda").manual_seed(0)
    values = torch.randn(size, device="cuda", generator=gen)
    index = torch.randint(0, bins, (size,), device="cuda", generator=gen)

    def binned():
        return torch.zeros(bins, device="cuda").index_add_(0, index, values)

    free = (binned() - binned()).abs().max().item()
    with torch_settings(deterministic=True):
        fixed = (binned() - binned()).abs().max().item()
    return {"max_diff_default": free, "max_diff_deterministic": fixed}


def make_record(result, *, model_name: str, data, init_seed: int = 0, method: str = "lora",
                method_config: dict | None = None) -> dict:
    """The record that restores ``result``: versions, git commit, config, data hash, seed and hardware."""
    if not hasattr(result, "config") or not hasattr(result, "history"):
        raise LabkitError("make_record needs the TrainResult that lk.train returned.")
    runs_id = None
    if ledger.ledger_path() is not None and ledger.ledger_path().exists():
        runs = ledger.read_runs()
        runs_id = int(runs["id"].iloc[-1]) if len(runs) else None
    return {"versions": versions(), "git_commit": git_commit(), "model_name": model_name, "method": method,
            "method_config": dict(method_config or {}), "config": dataclasses.asdict(result.config),
            "data_hash": data_hash(data), "data_rows": len(data), "seed": result.config.seed, "init_seed": init_seed,
            "hardware": ledger.hardware(), "ledger_id": runs_id, "losses": result.history["loss"].tolist()}


def missing_fields(record: dict) -> list[str]:
    """The fields of RECORD_FIELDS that ``record`` lacks or leaves empty, in RECORD_FIELDS' order."""
    if not isinstance(record, dict):
        raise LabkitError(f"A run record is a dict, got {type(record).__name__}.")
    return [name for name in RECORD_FIELDS if _empty(record.get(name))]


def _empty(value) -> bool:
    """None, NaN (pandas' missing number) or an empty text, dict or list; a number such as numpy's 0 is a value."""
    if isinstance(value, (str, dict, list, tuple)):
        return len(value) == 0
    return value is None or isinstance(value, float) and math.isnan(value)


def restore_run(record: dict, data, *, label: str = "restored"):
    """Train again from ``record`` on ``data``: the same model, method, config, seeds; returns (result, notes).

    Refuses data whose hash differs. A record from another kit or library version warns, then tries: the losses
    may differ, and the notes say which versions moved.
    """
    import torch

    missing = [name for name in ("config", "data_hash", "seed", "model_name") if not record.get(name)
               and record.get(name) != 0]
    if missing:
        raise LabkitError(f"This record lacks {', '.join(missing)}: record runs with make_record(result, ...) so they "
                          "can be restored.")
    if data_hash(data) != record["data_hash"]:
        raise LabkitError("The data differs from the run's (its hash does not match the record's data_hash): pass the "
                          "same rows in the same order, e.g. the split and selection the run used.")
    now = versions()
    moved = {k: (v, now.get(k)) for k, v in record.get("versions", {}).items() if now.get(k) != v}
    notes = []
    if moved:
        text = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in moved.items())
        warnings.warn(f"This record comes from other versions ({text}); restoring anyway: the losses may differ.",
                      stacklevel=2)
        notes.append(f"versions moved: {text}")
    cfg = dict(record["config"], label=label, live_plot=False, progress=False)
    config = TrainConfig(**{k: v for k, v in cfg.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}})
    model, tokenizer = load_model(record["model_name"])
    torch.manual_seed(record.get("init_seed", 0))
    model = apply_method(model, record.get("method", "lora"), **record.get("method_config", {}))
    result = train(model, tokenizer, data, config=config)
    same = result.history["loss"].tolist() == record.get("losses")
    notes.append("losses identical to the record's, bit for bit" if same else "losses differ from the record's")
    return result, notes


def save_record(record: dict, path) -> Path:
    """Write ``record`` as JSON next to the run's outputs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, default=str))
    return path


def load_record(path) -> dict:
    """Read a record written by save_record."""
    path = Path(path)
    if not path.exists():
        raise LabkitError(f"No run record at {path}: write one with save_record(make_record(result, ...), path).")
    return json.loads(path.read_text())
