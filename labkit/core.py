"""Session set-up shared by every lab: seeds, device, fast mode, offline mode, cache folder."""

from __future__ import annotations

import importlib.util
import numbers
import os
import random
import sys
from pathlib import Path


class LabkitError(Exception):
    """A mistake the learner can fix; the message says how."""


def fast_mode() -> bool:
    """True when labs should shrink steps and eval sizes (``LABKIT_FAST=1`` or ``CI`` set)."""
    flag = os.environ.get("LABKIT_FAST")
    if flag is not None:
        return flag.strip().lower() not in ("", "0", "false", "no")
    return bool(os.environ.get("CI"))


def pick(fast, full):
    """Return ``fast`` in fast mode and ``full`` otherwise, e.g. ``num_steps = lk.pick(10, 200)``."""
    return fast if fast_mode() else full


def offline() -> bool:
    """True when the Hugging Face Hub must not be contacted (``HF_HUB_OFFLINE`` set)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def in_colab() -> bool:
    """True inside Google Colab."""
    if "google.colab" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("google.colab") is not None
    except ModuleNotFoundError:  # no "google" package at all
        return False


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where a live figure can be shown)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def cache_dir() -> Path:
    """Folder for converted models and other generated files (``LABKIT_CACHE`` overrides it)."""
    root = os.environ.get("LABKIT_CACHE")
    if root:
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "labkit"


def resolve_device(device: str = "auto") -> str:
    """Map ``"auto"`` to cuda, then mps, then cpu; check an explicit choice is usable here."""
    import torch

    known = ("auto", "cpu", "cuda", "mps")
    name = str(device)
    if name.split(":")[0] not in known:
        raise LabkitError(f"Unknown device {device!r}: use one of {', '.join(known)} (or 'cuda:N').")
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LabkitError(f"device={device!r} was asked for but no CUDA GPU is visible: use device='cpu' or 'auto'.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise LabkitError("device='mps' was asked for but Apple's MPS is not available: use device='cpu' or 'auto'.")
    return name


def resolve_dtype(dtype="auto", device: str = "cpu"):
    """Map ``"auto"`` to bf16 on GPUs that support it, fp16 on older GPUs (T4), fp32 elsewhere."""
    import torch

    names = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
             "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in names:
        raise LabkitError(f"Unknown dtype {dtype!r}: use 'auto', 'fp32', 'bf16' or 'fp16'.")
    return names[dtype]


def check_seed(seed) -> int:
    """``seed`` as an int, or a LabkitError saying what a seed must be (numpy takes 0 to 2**32 - 1)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
        raise LabkitError(f"seed must be a whole number from 0 to 2**32 - 1, e.g. seed=0; got {seed!r}.")
    return int(seed)


def seed_everything(seed: int = 0) -> None:
    """Seed python, numpy and torch (every GPU too); a seed that is not a whole number is refused."""
    import numpy as np
    import torch

    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
