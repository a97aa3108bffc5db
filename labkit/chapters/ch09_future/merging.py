"""Merging instead of retraining: per-task LoRAs combined with peft's ``add_weighted_adapter`` (linear, TIES, DARE)
and scored on every task, against the separate adapters and against one multi-task LoRA.

>>> name = merge(model, ["convert_units", "reformat_date"], [0.5, 0.5], method="ties")  # doctest: +SKIP
"""

from __future__ import annotations

from ...core import LabkitError

# our name -> peft's combination_type (TIES: Yadav et al. 2023; DARE: Yu et al. 2024, drop-and-rescale then linear)
METHODS = {"linear": "linear", "ties": "ties", "dare": "dare_linear", "dare_ties": "dare_ties"}
DEFAULT_DENSITY = 0.5  # share of each update's entries TIES/DARE keep (peft's examples use 0.2-0.7)


def merge(model, adapters: list[str], weights: list[float], *, method: str = "linear",
          density: float = DEFAULT_DENSITY, name: str | None = None) -> str:
    """Add the merged adapter to ``model`` with peft's add_weighted_adapter, make it active, return its name."""
    loaded = list(getattr(model, "peft_config", {}) or {})
    if method not in METHODS:
        raise LabkitError(f"Unknown merge method {method!r}: use one of {', '.join(METHODS)}.")
    adapters, weights = list(adapters), list(weights)
    missing = [a for a in adapters if a not in loaded]
    if not adapters or missing:
        raise LabkitError(f"Adapter(s) {missing or adapters} not loaded: merge some of {', '.join(loaded) or 'none'}.")
    if len(weights) != len(adapters) or any(isinstance(w, bool) or not isinstance(w, (int, float)) for w in weights):
        raise LabkitError(f"Give one number per adapter: {len(adapters)} adapters ({', '.join(adapters)}) but "
                          f"weights={weights!r}.")
    if not 0 < density <= 1:
        raise LabkitError(f"density is the share of entries TIES/DARE keep: a number in (0, 1], got {density!r}.")
    name = name or (f"merged_{method}_" + "_".join(f"{w:g}" for w in weights)).replace(".", "p").replace("-", "m")
    if name in loaded:
        model.set_adapter(adapters[0])
        model.delete_adapter(name)
    kwargs = {"density": density} if method != "linear" else {}
    model.add_weighted_adapter(adapters, weights, name, combination_type=METHODS[method], **kwargs)
    model.set_adapter(name)
    return name


def compare_merges(model, tokenizer, tasks, *, methods=("linear", "ties", "dare"), weights=None,
                   density: float = DEFAULT_DENSITY, seq_len: int = 64, seed: int = 0):
    """Scores (exp(-answer loss)) on every task: each separate adapter, then each merge of all of them."""
    import pandas as pd
    import torch

    from .continual import score_tasks, use_adapter

    weights = weights or [1.0 / len(tasks.names)] * len(tasks.names)
    rows = []
    for n in tasks.names:
        use_adapter(model, n)
        rows.append({"adapter": f"separate: {n}", **score_tasks(model, tokenizer, tasks, seq_len=seq_len)})
    for method in methods:
        torch.manual_seed(seed)  # DARE drops entries at random
        name = merge(model, tasks.names, weights, method=method, density=density)
        rows.append({"adapter": f"merged: {method}", **score_tasks(model, tokenizer, tasks, seq_len=seq_len)})
        use_adapter(model, tasks.names[0])  # leave a task adapter active (peft warns when the active one is deleted)
        model.delete_adapter(name)
    table = pd.DataFrame(rows).set_index("adapter")
    table["mean"] = table[list(tasks.names)].mean(axis=1)
    return table


def plot_merges(table, tasks):
    """Grouped bars: score on each task for each adapter."""
    import plotly.graph_objects as go

    fig = go.Figure([go.Bar(name=n, x=list(table.index), y=table[n]) for n in tasks.names])
    fig.update_layout(barmode="group", yaxis_title="answer probability exp(-loss)", height=380,
                      title="Per-task scores: separate adapters, merges and multi-task training")
    return fig
