"""Pruning: magnitude against Wanda (|W|·‖X‖, Sun et al. 2023) at 50% unstructured and 2:4 semi-structured sparsity,
a per-layer sensitivity scan, what the zeros cost in time on a dense kernel, and structured pruning: dropping the
decoder layers whose output is most similar to their input (Gromov et al. 2024, "The Unreasonable Ineffectiveness of
the Deeper Layers"; Men et al. 2024, ShortGPT)."""

from __future__ import annotations

import copy
import time

from ...core import LabkitError
from .rtn import linear_layers, perplexity, replaced_weights


def _check_sparsity(sparsity):
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0 <= sparsity < 1:
        raise LabkitError(f"sparsity must be a fraction in [0, 1), e.g. 0.5, got {sparsity!r}.")


def _check_nm(n, m):
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, m)) or not 0 < n < m:
        raise LabkitError(f"An N:M pattern keeps N of every M weights with 0 < N < M (e.g. 2:4), got {n}:{m}.")


def wanda_score(weight, x_norm):
    """Wanda's importance of each weight: |W_ij| · ‖X_j‖ (the input channel's L2 norm over calibration tokens)."""
    if x_norm.shape[-1] != weight.shape[1]:
        raise LabkitError(f"x_norm has {x_norm.shape[-1]} channels but the weight has {weight.shape[1]} inputs.")
    return weight.abs() * x_norm.reshape(1, -1)


def unstructured_mask(score, sparsity: float, *, per_row: bool = True):
    """True where a weight survives: the lowest-scoring ``sparsity`` share is removed, per output row (Wanda's
    comparison group) or over the whole matrix."""
    import torch

    _check_sparsity(sparsity)
    s = score if per_row else score.reshape(1, -1)
    k = int(s.shape[1] * sparsity)
    mask = torch.ones_like(s, dtype=torch.bool)
    if k:
        idx = s.topk(k, dim=1, largest=False).indices
        mask.scatter_(1, idx, False)
    return mask.reshape(score.shape)


def nm_mask(score, n: int = 2, m: int = 4):
    """True where a weight survives an N:M pattern: in every run of ``m`` consecutive inputs of a row, keep the ``n``
    highest scores."""
    import torch

    _check_nm(n, m)
    if score.shape[-1] % m:
        raise LabkitError(f"An {n}:{m} pattern needs a width divisible by {m}; this one is {score.shape[-1]}.")
    groups = score.reshape(-1, m)
    keep = groups.topk(n, dim=1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, keep, True)
    return mask.reshape(score.shape)


def layer_mask(weight, method: str, pattern, x_norm=None):
    """The mask for one weight: method 'magnitude' or 'wanda'; pattern a sparsity (0.5) or an (n, m) pair."""
    if method == "magnitude":
        score = weight.abs()
    elif method == "wanda":
        if x_norm is None:
            raise LabkitError("Wanda needs calibration activations: pass calib (from salience.calibrate).")
        score = wanda_score(weight, x_norm)
    else:
        raise LabkitError(f"method must be 'magnitude' or 'wanda', got {method!r}.")
    if isinstance(pattern, tuple):
        return nm_mask(score, *pattern)
    return unstructured_mask(score, pattern, per_row=True)


def pruned(model, method: str = "wanda", pattern=0.5, calib=None, layers=None):
    """Context manager: the chosen Linear weights with their pruned weights set to zero inside the block."""
    modules = linear_layers(model, layers)
    if method == "wanda" and calib is None:
        raise LabkitError("Wanda needs calibration activations: pass calib (from salience.calibrate).")
    return replaced_weights(modules, lambda n, m: m.weight.data * layer_mask(
        m.weight.data, method, pattern, None if calib is None else calib.norm[n]))


def pattern_name(pattern) -> str:
    return f"{pattern[0]}:{pattern[1]}" if isinstance(pattern, tuple) else f"{pattern:.0%} unstructured"


def compare_pruning(model, tokenizer, calib, data, *, patterns=(0.5, (2, 4)), layers=None, seq_len: int = 128):
    """Perplexity of magnitude and Wanda pruning at each pattern, with the share of zeros measured."""
    import pandas as pd

    rows = []
    for pattern in patterns:
        for method in ("magnitude", "wanda"):
            with pruned(model, method, pattern, calib, layers):
                mods = linear_layers(model, layers)
                zeros = sum((m.weight == 0).sum().item() for m in mods.values())
                total = sum(m.weight.numel() for m in mods.values())
                rows.append({"pattern": pattern_name(pattern), "method": method, "zeros": zeros / total,
                             "perplexity": perplexity(model, tokenizer, data, seq_len=seq_len)})
    return pd.DataFrame(rows)


def sensitivity_scan(model, tokenizer, calib, data, *, method: str = "wanda", pattern=0.5, layers=None,
                     seq_len: int = 128, progress: bool = True):
    """Perplexity when only one decoder layer is pruned, for each layer in turn."""
    import pandas as pd
    from tqdm.auto import tqdm

    chosen = list(range(len(model.model.layers))) if layers is None else list(layers)
    rows = []
    for i in tqdm(chosen, desc="sensitivity", disable=not progress):
        with pruned(model, method, pattern, calib, [i]):
            rows.append({"layer": i, "perplexity": perplexity(model, tokenizer, data, seq_len=seq_len)})
    return pd.DataFrame(rows).set_index("layer")


def forward_time(model, tokenizer, text: str, *, repeats: int = 3, seq_len: int = 128) -> float:
    """Median seconds of one forward pass over ``text`` (no grad, after a warm-up)."""
    import statistics

    import torch

    if repeats < 1:
        raise LabkitError(f"repeats must be >= 1, got {repeats!r}.")
    ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=seq_len).input_ids
    times = []
    with torch.no_grad():
        model(ids)
        for _ in range(repeats):
            start = time.perf_counter()
            model(ids)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def semi_structured_status() -> str:
    """Whether PyTorch's 2:4 sparse kernel (torch.sparse.to_sparse_semi_structured) runs here: it needs CUDA."""
    import torch

    try:
        from torch.sparse import to_sparse_semi_structured

        w = torch.tensor([[1.0, 0.0, 2.0, 0.0]] * 64).repeat(1, 16)
        to_sparse_semi_structured(w.half() if torch.cuda.is_available() else w)
        return "runs"
    except Exception as err:  # noqa: BLE001  (report exactly what failed)
        return f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"


# ---- structured: remove whole decoder layers --------------------------------------------------------------------


def layer_similarity(model, tokenizer, texts, *, seq_len: int = 128):
    """Per decoder layer, the mean cosine similarity between its input and output hidden states (high = the layer
    changes little, a candidate to drop)."""
    import pandas as pd
    import torch

    texts = list(texts["text"]) if hasattr(texts, "column_names") else list(texts or [])
    if not texts:
        raise LabkitError("layer_similarity needs at least one text (e.g. eval_texts('train', limit=16)).")
    n = len(model.model.layers)
    sims = torch.zeros(n)

    def hook(i):
        def record(_module, args, kwargs, output):
            x = args[0] if args else kwargs["hidden_states"]
            y = output[0] if isinstance(output, tuple) else output
            sims[i] += torch.nn.functional.cosine_similarity(x[0].float(), y[0].float(), dim=-1).mean()
        return record

    handles = [layer.register_forward_hook(hook(i), with_kwargs=True) for i, layer in enumerate(model.model.layers)]
    try:
        with torch.no_grad():
            for text in texts:
                model(tokenizer(text, return_tensors="pt", truncation=True, max_length=seq_len).input_ids)
    finally:
        for h in handles:
            h.remove()
    return pd.DataFrame({"layer": range(n), "cosine_in_out": (sims / len(texts)).tolist()}).set_index("layer")


def drop_layers(model, drop):
    """A copy of the model without the decoder layers in ``drop`` (their KV-cache slots renumbered)."""
    import torch

    n = len(model.model.layers)
    drop = sorted(set(drop))
    if not drop or any(not 0 <= i < n for i in drop) or len(drop) >= n:
        raise LabkitError(f"drop must name some (not all) of the layers 0-{n - 1}, got {drop!r}.")
    small = copy.deepcopy(model)
    kept = [layer for i, layer in enumerate(small.model.layers) if i not in drop]
    small.model.layers = torch.nn.ModuleList(kept)
    for i, layer in enumerate(kept):
        layer.self_attn.layer_idx = i
    small.config.num_hidden_layers = len(kept)
    if getattr(small.config, "layer_types", None):
        small.config.layer_types = [t for i, t in enumerate(small.config.layer_types) if i not in drop]
    return small
