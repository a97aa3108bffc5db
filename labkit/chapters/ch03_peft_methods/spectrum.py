"""What an update learned: ΔW per layer from the trained weights, its singular values and effective rank."""

from __future__ import annotations

import copy

from ...core import LabkitError

ENERGY = 0.9  # the effective rank keeps this share of the update's energy (sum of squared singular values)


def effective_rank(singular_values, energy: float = ENERGY) -> int:
    """Smallest k whose top-k singular values hold ``energy`` of the total energy Σσ² (0 for an all-zero update).

    >>> effective_rank([3.0, 1.0, 0.0], 0.9)
    1
    """
    if not 0 < energy <= 1:
        raise LabkitError(f"energy must be in (0, 1], like 0.9 for 90%, got {energy!r}.")
    values = sorted((float(v) for v in singular_values), reverse=True)
    if any(v < 0 for v in values):
        raise LabkitError("singular values are never negative: pass the output of torch.linalg.svdvals.")
    total = sum(v * v for v in values)
    if total == 0:
        return 0
    running = 0.0
    for k, v in enumerate(values, start=1):
        running += v * v
        if running >= energy * total - 1e-12 * total:
            return k
    return len(values)


def linear_weights(model, layer_names=None) -> dict:
    """{full name -> weight (a CPU float32 copy)} of the decoder's linear layers, by the base model's names.

    ``layer_names`` keeps only those short names (e.g. ["q_proj", "down_proj"]); peft wrappers are seen through.
    """
    import torch

    out = {}
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or ".layers." not in name:
            continue
        short = name.rsplit(".", 1)[-1]
        if short in ("base_layer",):  # peft keeps the original Linear under <layer>.base_layer
            name, short = name.rsplit(".", 1)[0], name.rsplit(".", 2)[-2]
        if layer_names is not None and short not in layer_names:
            continue
        if any(part in name for part in ("lora_", "vera_", "hada_", "lokr_", "oft_")):
            continue
        key = name.removeprefix("base_model.model.").removesuffix(".base_layer")
        out[key] = module.weight.detach().float().cpu().clone()
    return out


def weight_deltas(trained, before: dict) -> dict:
    """ΔW = W_after - W_before for every weight in ``before``; an adapter model is merged on a copy first."""
    model = trained
    if getattr(trained, "peft_config", None):
        model = copy.deepcopy(trained).merge_and_unload()  # W + the method's update, whatever its form
    after = linear_weights(model, {k.rsplit(".", 1)[-1] for k in before})
    missing = sorted(set(before) - set(after))
    if missing:
        raise LabkitError(f"{len(missing)} layers (e.g. {missing[0]!r}) are not in the trained model: compare a "
                          "model with the base it was trained from.")
    return {name: after[name] - before[name] for name in before}


def spectra(deltas: dict, energy: float = ENERGY):
    """(table, singular values): per layer the effective rank, the top singular value and ‖ΔW‖_F."""
    import pandas as pd
    import torch

    rows, values = [], {}
    for name, delta in deltas.items():
        s = torch.linalg.svdvals(delta.double()).float()
        values[name] = s.tolist()
        parts = name.split(".")
        rows.append({"module": name, "layer": int(parts[2]) if parts[1] == "layers" else -1,
                     "kind": parts[-1], "effective_rank": effective_rank(s.tolist(), energy),
                     "max_rank": min(delta.shape), "sigma_max": float(s[0]) if len(s) else 0.0,
                     "frobenius": float(delta.norm())})
    return pd.DataFrame(rows), values


def compare_spectra(named: dict, energy: float = ENERGY):
    """One table for several runs: {run label -> deltas} in, a row per (run, layer) out, plus the singular values."""
    import pandas as pd

    tables, all_values = [], {}
    for label, deltas in named.items():
        table, values = spectra(deltas, energy)
        tables.append(table.assign(run=label))
        all_values[label] = values
    return pd.concat(tables, ignore_index=True), all_values
