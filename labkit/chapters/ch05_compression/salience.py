"""Outliers and salient weight channels: activation magnitudes per input channel on calibration text, then 3-bit
group quantization naive, with the top share of salient input channels kept in float, with a random share kept,
and with salient channels scaled up by a searched factor before quantizing (the AWQ idea, Lin et al. 2023).

MIT 6.5940 (Fall 2023) Lab 4, OPT-1.3B, 3-bit group-128 RTN: perplexity 14.47 (fp16) -> 123.9 (naive) -> 17.2
(1% salient channels kept in fp16) -> 101.3 (1% random channels kept). Source: https://hanlab.mit.edu/courses/2023-fall-65940
(Lab 4: LLM quantization, AWQ).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from ...core import LabkitError
from .rtn import fake_quantize, linear_layers, perplexity, replaced_weights

MIT_LAB4_OPT_1_3B = {"float": 14.47, "naive": 123.9, "salient 1%": 17.2, "random 1%": 101.3}


@contextlib.contextmanager
def _inputs_recorded(modules: dict, keep_rows: int):
    import torch

    stats = {name: {"abs_sum": None, "sq_sum": None, "count": 0, "sample": []} for name in modules}
    handles = []

    def hook(name):
        def record(_module, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).float()
            s = stats[name]
            s["abs_sum"] = x.abs().sum(0) if s["abs_sum"] is None else s["abs_sum"] + x.abs().sum(0)
            s["sq_sum"] = x.pow(2).sum(0) if s["sq_sum"] is None else s["sq_sum"] + x.pow(2).sum(0)
            s["count"] += x.shape[0]
            have = sum(len(t) for t in s["sample"])
            if have < keep_rows:
                s["sample"].append(x[: keep_rows - have].clone())
        return record

    try:
        for name, m in modules.items():
            handles.append(m.register_forward_pre_hook(hook(name)))
        with torch.no_grad():
            yield stats
    finally:
        for h in handles:
            h.remove()


@dataclass
class Calibration:
    """What calibration text showed each Linear layer: mean |x| and the L2 norm per input channel, and a sample of
    input rows (for the AWQ search)."""

    mean_abs: dict  # layer name -> (in_features,) mean absolute activation per input channel
    norm: dict  # layer name -> (in_features,) L2 norm of each input channel over all calibration tokens (Wanda's ‖X‖)
    sample: dict  # layer name -> (rows, in_features) input rows
    tokens: int


def calibrate(model, tokenizer, texts, *, layers=None, seq_len: int = 128, sample_rows: int = 256) -> Calibration:
    """Run ``texts`` (strings or a data set with 'text') through the model and record each chosen Linear's inputs."""
    import torch

    texts = list(texts["text"]) if hasattr(texts, "column_names") else list(texts or [])
    if not texts or not all(isinstance(t, str) and t for t in texts):
        raise LabkitError("The calibration set is empty: pass a few non-empty texts, e.g. "
                          "eval_texts('train', limit=16).")
    modules = linear_layers(model, layers)
    was = model.training
    model.eval()
    with _inputs_recorded(modules, sample_rows) as stats:
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=seq_len).input_ids
            model(ids.to(next(model.parameters()).device))
    model.train(was)
    count = next(iter(stats.values()))["count"]
    return Calibration({n: s["abs_sum"] / s["count"] for n, s in stats.items()},
                       {n: s["sq_sum"].sqrt() for n, s in stats.items()},
                       {n: torch.cat(s["sample"]) for n, s in stats.items()}, count)


def _check_share(share):
    if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0 <= share < 1:
        raise LabkitError(f"share must be a fraction in [0, 1), e.g. 0.01 for 1%, got {share!r}.")


def salient_channels(mean_abs, share: float = 0.01):
    """Indices of the input channels with the largest mean |activation| (at least one when share > 0)."""
    _check_share(share)
    k = max(1, round(share * mean_abs.numel())) if share > 0 else 0
    return mean_abs.topk(k).indices


def random_channels(n: int, share: float = 0.01, seed: int = 0):
    """As many random channels as ``salient_channels`` would keep."""
    import torch

    _check_share(share)
    k = max(1, round(share * n)) if share > 0 else 0
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k]


def quantize_keeping(weight, keep, bits: int = 3, group: int = 128, scheme: str = "zeropoint"):
    """Fake-quantize ``weight`` but put the input channels (columns) ``keep`` back in float."""
    out = fake_quantize(weight, bits, scheme, group)
    out[:, keep] = weight[:, keep]
    return out


def awq_search(weight, x_sample, mean_abs, bits: int = 3, group: int = 128, scheme: str = "zeropoint",
               grid: int = 11) -> tuple:
    """AWQ's scale search for one layer: s = mean_abs**alpha for alpha in [0, 1]; quantize W·diag(s), divide by s;
    keep the alpha whose output on the calibration rows is closest to the float output. Returns (weight, alpha)."""
    import torch

    ref = x_sample @ weight.T
    best = (float("inf"), 0.0, None)
    for alpha in torch.linspace(0, 1, grid).tolist():
        s = mean_abs.clamp(min=1e-5).pow(alpha)
        s = s / (s.max() * s.min()).sqrt()  # centre the scales around 1 (as AWQ's reference code does)
        w = fake_quantize(weight * s, bits, scheme, group) / s
        err = (x_sample @ w.T - ref).pow(2).mean().item()
        if err < best[0]:
            best = (err, alpha, w)
    return best[2], best[1]


def compare_salience(model, tokenizer, calib: Calibration, data, *, bits: int = 3, group: int = 128,
                     share: float = 0.01, layers=None, seq_len: int = 128, seed: int = 0):
    """Perplexity in float, naive RTN, salient share kept, random share kept, and AWQ-style scaling."""
    import pandas as pd

    modules = linear_layers(model, layers)
    missing = [n for n in modules if n not in calib.mean_abs]
    if missing:
        raise LabkitError(f"The calibration did not see {missing[0]}: calibrate with the same layers=.")
    ways = {
        "naive": lambda n, m: fake_quantize(m.weight.data, bits, "zeropoint", group),
        f"salient {share:.0%}": lambda n, m: quantize_keeping(m.weight.data, salient_channels(calib.mean_abs[n], share),
                                                               bits, group),
        f"random {share:.0%}": lambda n, m: quantize_keeping(m.weight.data, random_channels(m.in_features, share, seed),
                                                              bits, group),
    }
    alphas = {}

    def awq(n, m):
        w, alphas[n] = awq_search(m.weight.data, calib.sample[n], calib.mean_abs[n], bits, group)
        return w

    ways["AWQ scaling"] = awq
    rows = [{"method": "float", "perplexity": perplexity(model, tokenizer, data, seq_len=seq_len)}]
    for name, fn in ways.items():
        with replaced_weights(modules, fn):
            rows.append({"method": name, "perplexity": perplexity(model, tokenizer, data, seq_len=seq_len)})
    table = pd.DataFrame(rows).set_index("method")
    table.attrs["awq_alpha_mean"] = sum(alphas.values()) / max(len(alphas), 1)
    return table


def outlier_summary(calib: Calibration):
    """Per layer: the largest channel's mean |x| over the median channel's (how spiky the activations are)."""
    import pandas as pd

    rows = [{"layer": n, "max_over_median": (v.max() / v.median().clamp(min=1e-8)).item(),
             "top1pct_share_of_mass": (v.topk(max(1, v.numel() // 100)).values.sum() / v.sum()).item()}
            for n, v in calib.mean_abs.items()]
    return pd.DataFrame(rows).set_index("layer")
