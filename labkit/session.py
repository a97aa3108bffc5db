"""``lk.setup``: seed everything, find the device, pick the plot renderer, and say so in one line."""

from __future__ import annotations

from dataclasses import dataclass

from .core import check_seed, fast_mode, in_colab, offline, resolve_device, seed_everything


@dataclass(frozen=True)
class Session:
    """What ``setup`` found: printed once at the top of every lab."""

    seed: int  # the seed given to python, numpy and torch
    device: str  # "cuda", "mps" or "cpu"
    fast: bool  # fast mode shrinks steps and eval sizes (CI)
    offline: bool  # no hub downloads
    colab: bool  # running inside Google Colab
    torch: str  # torch version
    transformers: str  # transformers version
    peft: str  # peft version

    def __str__(self) -> str:
        mode = "fast mode" if self.fast else "full mode"
        net = "offline" if self.offline else "online"
        where = "Colab, " if self.colab else ""
        return (f"labkit ready: device={self.device}, {where}{net}, {mode}, seed={self.seed} "
                f"(torch {self.torch}, transformers {self.transformers}, peft {self.peft})")


def setup(seed: int = 0, *, quiet: bool = False) -> Session:
    """Seed everything, detect device/Colab/offline/fast mode and print one line about it.

    >>> session = setup(seed=0)  # doctest: +SKIP
    labkit ready: device=cpu, offline, fast mode, seed=0 (...)
    """
    seed = check_seed(seed)  # a bad seed is refused before the slow imports
    import peft
    import torch
    import transformers

    from . import plots

    seed_everything(seed)
    session = Session(seed=seed, device=resolve_device("auto"), fast=fast_mode(), offline=offline(),
                      colab=in_colab(), torch=torch.__version__, transformers=transformers.__version__,
                      peft=peft.__version__)
    plots.use_best_renderer(colab=session.colab)
    if not quiet:
        print(session)
    return session
